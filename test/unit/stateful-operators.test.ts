/**
 * Stateful operators as Spark 3.4+/3.5 runs them (issue "Trustworthy engine"): chained operators with
 * watermark propagation, late rows judged by the previous batch's watermark, dedupe late rows, state
 * schema checks on restart, emitted rows that never change afterwards, NaN/Infinity grouping keys, and the
 * refusals Spark makes. Each expected output is worked out by hand next to the test, from Spark's rules:
 *  - the watermark after batch N = max event time seen − delay; batch N+1 evicts with it;
 *  - since Spark 3.4 (SPARK-40925) a stateful operator drops a row as late when its event time is at or
 *    behind the *previous* batch's watermark (its "watermark for late events"), and evicts state with the
 *    current one (its "watermark for eviction"); both are propagated through the plan
 *    (WatermarkPropagator.scala, PropagateWatermarkSimulator);
 *  - a no-data batch runs when an operator's input watermark moved past the one it last evicted with.
 * Times are 2025-01-01 UTC; `t('12:07')` is 12:07:00.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  SluiceSession, UnsupportedOperationError, avg, col, collect_list, count, session_window, sum, window, window_time,
} from '../../src/index.js';
import type { DataFrame, OutputMode, StreamingQuery, TriggerOptions } from '../../src/index.js';

const t = (hhmm: string): Date => new Date(`2025-01-01T${hhmm}:00Z`);
const hm = (d: unknown): string => (d as Date).toISOString().slice(11, 16);
const win = (r: Record<string, unknown>): string => {
  const w = r.window as { start: Date; end: Date };
  return `${hm(w.start)}-${hm(w.end)}`;
};
const tmp = (): string => mkdtempSync(join(tmpdir(), 'sluice-ops-'));

function newSession(): SluiceSession {
  const s = new SluiceSession('ops');
  s.out = () => {};
  s.log = () => {};
  return s;
}

interface Line {
  batch: number;
  input: number;
  watermark: string;
  out: string[];
  dropped: number[];
}

/**
 * Runs `build(stream)` into a memory sink. Each step adds rows and waits for every batch they cause; with
 * `once`, each step is a new run of the query with Trigger.Once on the same checkpoint (one data batch per
 * step, none between: how two data batches come back to back).
 */
async function run(
  build: (df: DataFrame) => DataFrame,
  mode: OutputMode,
  steps: Array<Array<Record<string, unknown>>>,
  show: (r: Record<string, unknown>) => string,
  opts: { once?: boolean; schema?: string; checkpoint?: string } = {},
): Promise<{ lines: Line[]; queries: StreamingQuery[] }> {
  const s = newSession();
  const input = s.memoryStream(opts.schema ?? 'id STRING, ts TIMESTAMP');
  const checkpoint = opts.checkpoint ?? tmp();
  const start = (trigger?: TriggerOptions): Promise<StreamingQuery> => {
    let w = build(input.toDF()).writeStream.format('memory').queryName('out').outputMode(mode).option('checkpointLocation', checkpoint);
    if (trigger) w = w.trigger(trigger);
    return w.start();
  };
  const queries: StreamingQuery[] = [];
  if (opts.once) {
    for (const rows of steps) {
      input.addData(rows);
      const q = await start({ once: true });
      await q.awaitTermination();
      queries.push(q);
    }
  } else {
    const q = await start();
    for (const rows of steps) {
      input.addData(rows);
      await q.processAllAvailable();
    }
    await q.stop();
    queries.push(q);
  }
  const table = s.memoryTable('out');
  const lines = queries.flatMap((q) =>
    q.recentProgress.map((p) => ({
      batch: p.batchId,
      input: p.numInputRows,
      watermark: p.eventTime.watermark ? hm(new Date(p.eventTime.watermark)) : '',
      out: (table.batches.get(p.batchId) ?? []).map(show),
      dropped: p.stateOperators.map((o) => o.numRowsDroppedByWatermark),
    })),
  );
  return { lines, queries };
}

describe('chained stateful operators (Spark 3.4+ watermark propagation)', () => {
  it('a windowed aggregation, then dropDuplicates, in append mode: each final window comes out once', async () => {
    const build = (df: DataFrame): DataFrame =>
      df.withWatermark('ts', '10 minutes').groupBy(window(col('ts'), '10 minutes')).agg(count('*').alias('n')).dropDuplicates();
    const { lines } = await run(build, 'append', [[{ id: 'a', ts: t('12:07') }, { id: 'b', ts: t('12:08') }], [{ id: 'c', ts: t('12:21') }]], (r) => `${win(r)}:${String(r.n)}`);
    expect(lines).toEqual([
      // 12:07, 12:08 → 12:00-12:10 = 2 in the aggregation's state. Next watermark 12:08 − 10 min = 11:58.
      { batch: 0, input: 2, watermark: '00:00', out: [], dropped: [0, 0] },
      { batch: 1, input: 0, watermark: '11:58', out: [], dropped: [0, 0] },
      // 12:21 → 12:20-12:30. Next watermark 12:11.
      { batch: 2, input: 1, watermark: '11:58', out: [], dropped: [0, 0] },
      // No-data batch: the aggregation evicts 12:00-12:10 (end 12:10 <= 12:11) and emits it. The dedupe after it
      // judges lateness by the previous batch's watermark, 11:58: 12:10 is not late, so the window passes (it
      // used to be dropped here, judged by 12:11 — an append query that never wrote anything).
      { batch: 3, input: 0, watermark: '12:11', out: ['12:00-12:10:2'], dropped: [0, 0] },
    ]);
  });

  it('a second aggregation over the first one\'s windows (window_time), in append mode', async () => {
    // Per 10 minutes and id, then per hour: how many (window, id) groups there were, and their events.
    const build = (df: DataFrame): DataFrame =>
      df
        .withWatermark('ts', '10 minutes')
        .groupBy(window(col('ts'), '10 minutes'), col('id'))
        .agg(count('*').alias('n'))
        .groupBy(window(window_time(col('window')), '1 hour'))
        .agg(sum('n').alias('events'), count('*').alias('groups'));
    const { lines } = await run(
      build,
      'append',
      [
        [{ id: 'a', ts: t('12:07') }, { id: 'b', ts: t('12:08') }, { id: 'a', ts: t('12:15') }],
        [{ id: 'c', ts: t('12:31') }],
        [{ id: 'd', ts: t('13:20') }],
      ],
      (r) => `${win(r)}:${String(r.events)}:${String(r.groups)}`,
    );
    expect(lines).toEqual([
      // First aggregation: (12:00-12:10, a) 1, (12:00-12:10, b) 1, (12:10-12:20, a) 1. Next watermark 12:05.
      { batch: 0, input: 3, watermark: '00:00', out: [], dropped: [0, 0] },
      { batch: 1, input: 0, watermark: '12:05', out: [], dropped: [0, 0] },
      // (12:30-12:40, c) 1. Next watermark 12:21.
      { batch: 2, input: 1, watermark: '12:05', out: [], dropped: [0, 0] },
      // Evicts the three windows ending by 12:21; their window_time (12:09:59.999999, 12:19:59.999999) falls in
      // 12:00-13:00, which is not late (13:00 > 12:05) and not final (13:00 > 12:21): held in the second state.
      { batch: 3, input: 0, watermark: '12:21', out: [], dropped: [0, 0] },
      // (13:20-13:30, d). Next watermark 13:10.
      { batch: 4, input: 1, watermark: '12:21', out: [], dropped: [0, 0] },
      // Evicts (12:30-12:40, c) into 12:00-13:00, which is now final (13:00 <= 13:10): 4 events in 4 groups.
      { batch: 5, input: 0, watermark: '13:10', out: ['12:00-13:00:4:4'], dropped: [0, 0] },
    ]);
  });

  it('window_time() is the window end minus 1 microsecond, and refuses a column that is not a window', async () => {
    const s = newSession();
    const df = s.createDataFrame([{ ts: t('12:07') }], 'ts TIMESTAMP').groupBy(window(col('ts'), '10 minutes')).agg(count('*').alias('n'));
    const [row] = await df.select(window_time(col('window')).alias('wt')).collect();
    expect((row!.wt as Date).toISOString()).toBe('2025-01-01T12:09:59.999Z');
    expect((row!.wt as Date & { microsOfMilli?: number }).microsOfMilli).toBe(999);
    await expect(s.createDataFrame([{ ts: t('12:07') }], 'ts TIMESTAMP').select(window_time(col('ts'))).collect()).rejects.toThrow(/not a window column/);
  });

  it('window_time() of a window that just closed is not late for the next operator, to the microsecond', async () => {
    // The first row is at 12:09:59.999, so batch 2 judges late rows by 12:09:59.999 (delay 0). The window
    // 12:00-12:10 closes in batch 3; its window_time is 12:09:59.999999, 999 µs after that watermark: not late.
    // (Compared in milliseconds it was 12:09:59.999 <= 12:09:59.999, and the dedupe dropped it.)
    const build = (df: DataFrame): DataFrame =>
      df.withWatermark('ts', '0 seconds').groupBy(window(col('ts'), '10 minutes')).agg(count('*').alias('n'))
        .select(window_time(col('window')).alias('wt'), col('n')).dropDuplicates(['wt']);
    const first = new Date('2025-01-01T12:09:59.999Z');
    const { lines } = await run(build, 'append', [[{ id: 'a', ts: first }], [{ id: 'b', ts: t('12:20') }]], (r) => `${(r.wt as Date).toISOString()}:${String(r.n)}`);
    expect(lines.map((l) => [l.batch, l.out, l.dropped])).toEqual([
      [0, [], [0, 0]],
      [1, [], [0, 0]],
      [2, [], [0, 0]],
      [3, ['2025-01-01T12:09:59.999Z:1'], [0, 0]],
    ]);
  });

  it('refuses a second withWatermark after a watermarked stream, as Spark 3.5 ("Redefining watermark is disallowed")', async () => {
    // It used to start, wait for the second watermark — which sees no rows until the aggregation emits — and write nothing.
    const build = (df: DataFrame): DataFrame =>
      df.withWatermark('ts', '0 seconds').groupBy(window(col('ts'), '10 minutes')).agg(count('*').alias('n'))
        .select(col('window.end').alias('wend'), col('n')).withWatermark('wend', '0 seconds').dropDuplicates(['wend']);
    await expect(run(build, 'append', [], String)).rejects.toThrow(/withWatermark\('wend', …\) on a stream that already has a watermark[\s\S]*Redefining watermark is disallowed/);
    // Spark refuses it even with nothing stateful between (its test "overriding watermark should not be allowed by default").
    const twice = (df: DataFrame): DataFrame => df.withWatermark('ts', '1 minute').withWatermark('ts', '10 minutes').groupBy(window(col('ts'), '10 minutes')).count();
    await expect(run(twice, 'append', [], String)).rejects.toThrow(/Redefining watermark is disallowed/);
  });

  it('lists stateOperators from the sink down, as Spark (an aggregation before the dedupe beneath it)', async () => {
    const build = (df: DataFrame): DataFrame => df.withWatermark('ts', '10 minutes').dropDuplicates(['id', 'ts']).groupBy(col('id')).agg(count('*').alias('n'));
    const { queries } = await run(build, 'update', [[{ id: 'a', ts: t('12:00') }]], String);
    expect(queries[0]!.lastProgress!.stateOperators.map((o) => o.operatorName)).toEqual(['stateStoreSave', 'dedupe']);
  });

  it('a dedupe before a complete-mode aggregation still forgets keys behind the watermark, and asks for the no-data batch (Spark does)', async () => {
    const build = (df: DataFrame): DataFrame => df.withWatermark('ts', '10 minutes').dropDuplicates(['id', 'ts']).groupBy(col('id')).agg(count('*').alias('n'));
    const { queries } = await run(build, 'complete', [[{ id: 'a', ts: t('12:00') }, { id: 'b', ts: t('12:30') }]], (r) => `${String(r.id)}:${String(r.n)}`);
    // Batch 0: the dedupe keeps (a, 12:00) and (b, 12:30); next watermark 12:20. Batch 1, a no-data batch the
    // dedupe asks for even in complete mode: (a, 12:00) expires (12:00 <= 12:20); the aggregation keeps a and b.
    // stateOperators lists them from the sink down, as Spark does: the aggregation, then the dedupe beneath it.
    expect(queries[0]!.recentProgress.map((p) => [p.batchId, p.numInputRows, p.stateOperators[1]!.operatorName, p.stateOperators[1]!.numRowsTotal])).toEqual([
      [0, 2, 'dedupe', 2],
      [1, 0, 'dedupe', 1],
    ]);
  });

  it('refuses a stateful operator after an aggregation in update or complete mode, with the reason (Spark 3.5 too)', async () => {
    const chained = (df: DataFrame): DataFrame =>
      df.withWatermark('ts', '10 minutes').groupBy(window(col('ts'), '10 minutes')).agg(count('*').alias('n')).groupBy(col('window')).agg(sum('n').alias('n'));
    for (const mode of ['update', 'complete'] as const) {
      await expect(run(chained, mode, [], String)).rejects.toThrow(UnsupportedOperationError);
      await expect(run(chained, mode, [], String)).rejects.toThrow(/after a streaming aggregation, in (update|complete) mode.*correctness/);
    }
    // A dedupe that keeps no event time is not stateful in Spark's sense: it may follow in update mode.
    const deduped = (df: DataFrame): DataFrame => df.groupBy(col('id')).agg(count('*').alias('n')).dropDuplicates(['id']);
    const { lines } = await run(deduped, 'update', [[{ id: 'a', ts: t('12:00') }]], (r) => `${String(r.id)}:${String(r.n)}`);
    expect(lines[0]!.out).toEqual(['a:1']);
  });
});

describe('late rows are judged by the watermark for late events (the previous batch\'s)', () => {
  it('two data batches back to back: a row behind the current watermark but not the previous one still counts', async () => {
    const build = (df: DataFrame): DataFrame => df.withWatermark('ts', '10 minutes').groupBy(window(col('ts'), '10 minutes')).agg(count('*').alias('n'));
    const { lines } = await run(
      build,
      'append',
      [[{ id: 'a', ts: t('12:07') }, { id: 'b', ts: t('12:30') }], [{ id: 'c', ts: t('12:05') }], [{ id: 'd', ts: t('12:06') }]],
      (r) => `${win(r)}:${String(r.n)}`,
      { once: true },
    );
    expect(lines).toEqual([
      // Trigger.Once: one batch per run. 12:00-12:10 = 1, 12:30-12:40 = 1. Next watermark 12:30 − 10 = 12:20.
      { batch: 0, input: 2, watermark: '00:00', out: [], dropped: [0] },
      // Batch 1 evicts with 12:20 but judges late rows by batch 0's watermark (00:00): 12:05's window ends 12:10,
      // not late, so it joins 12:00-12:10 before that window is emitted: 2. (Before Spark 3.4, and in Sluice before
      // this change, the current watermark judged both: the row was dropped and the window came out as 1.)
      { batch: 1, input: 1, watermark: '12:20', out: ['12:00-12:10:2'], dropped: [0] },
      // Batch 2: batch 1's watermark (12:20) judges late rows now: 12:06's window ended at 12:10, so it is dropped.
      { batch: 2, input: 1, watermark: '12:20', out: [], dropped: [1] },
    ]);
  });
});

describe('dropDuplicates with a watermark on a column that is not a key', () => {
  it('drops and counts rows behind the watermark, as Spark does, though it cannot expire keys', async () => {
    const build = (df: DataFrame): DataFrame => df.withWatermark('ts', '10 minutes').dropDuplicates(['id']);
    const { lines, queries } = await run(
      build,
      'append',
      [[{ id: 'a', ts: t('12:00') }, { id: 'b', ts: t('12:30') }], [{ id: 'c', ts: t('12:10') }, { id: 'a', ts: t('12:40') }]],
      (r) => `${String(r.id)}@${hm(r.ts)}`,
    );
    expect(lines).toEqual([
      { batch: 0, input: 2, watermark: '00:00', out: ['a@12:00', 'b@12:30'], dropped: [0] },
      // The watermark moved to 12:20: Spark runs a no-data batch for the dedupe too.
      { batch: 1, input: 0, watermark: '12:20', out: [], dropped: [0] },
      // c@12:10 is behind the watermark for late events (12:20, batch 1's): dropped and counted. a@12:40 is a
      // duplicate of a (ts is not a key, so a is remembered forever): dropped, not counted as late.
      { batch: 2, input: 2, watermark: '12:20', out: [], dropped: [1] },
      // a@12:40 moved the watermark to 12:30: another no-data batch.
      { batch: 3, input: 0, watermark: '12:30', out: [], dropped: [0] },
    ]);
    expect(queries[0]!.lastProgress!.stateOperators[0]).toMatchObject({ operatorName: 'dedupe', numRowsTotal: 2 });
  });
});

describe('a changed query on old state (state/<id>/_metadata/schema)', () => {
  const rows = [{ id: 'a', v: 1 }, { id: 'a', v: 2 }];
  const schema = 'id STRING, v INT';
  it('restarts with the same aggregation, and refuses other aggregates or keys with what changed', async () => {
    const checkpoint = tmp();
    const sumOnly = (df: DataFrame): DataFrame => df.groupBy(col('id')).agg(sum('v').alias('total'));
    const first = await run(sumOnly, 'update', [rows], (r) => `${String(r.id)}:${String(r.total)}`, { schema, checkpoint });
    expect(first.lines[0]!.out).toEqual(['a:3']);
    // A new memory stream holds the rows the checkpoint has read already, then the new one.
    const again = await run(sumOnly, 'update', [[...rows, { id: 'a', v: 4 }]], (r) => `${String(r.id)}:${String(r.total)}`, { schema, checkpoint });
    expect(again.lines.at(-1)!.out).toEqual(['a:7']); // the same query continues from its state

    // [sum] → [count, sum] used to give wrong numbers silently; [avg] crashed with "b is not iterable".
    const changes: Array<[string, (df: DataFrame) => DataFrame, RegExp]> = [
      ['count, sum', (df) => df.groupBy(col('id')).agg(count('*').alias('n'), sum('v').alias('total')), /values were \[total: sum\(int\)\], this query's are \[n: count\(int\), total: sum\(int\)\]/],
      ['avg', (df) => df.groupBy(col('id')).agg(avg('v').alias('total')), /values were \[total: sum\(int\)\], this query's are \[total: avg\(int\)\]/],
      ['another key type', (df) => df.groupBy(col('v')).agg(sum('v').alias('total')), /keys were \[id: string\], this query's are \[v: int\]/],
      ['a dedupe instead', (df) => df.dropDuplicates(['id']), /written by a stateStoreSave operator, and operator 0 of this query is dedupe/],
    ];
    for (const [what, build, message] of changes) {
      const attempt = run(build, 'update', [[...rows, { id: 'a', v: 4 }, { id: 'a', v: 5 }]], String, { schema, checkpoint });
      await expect(attempt, what).rejects.toThrow(message);
      await expect(attempt, what).rejects.toThrow(/Start the changed query with a new checkpointLocation/);
    }
  });
});

describe('values emitted never change afterwards', () => {
  it('collect_list and collect_set hand out copies: an earlier batch in the memory sink keeps its rows', async () => {
    const build = (df: DataFrame): DataFrame => df.groupBy(col('id')).agg(collect_list('v').alias('l'));
    const s = newSession();
    const input = s.memoryStream('id STRING, v INT');
    const q = await build(input.toDF()).writeStream.format('memory').queryName('lists').outputMode('update').option('checkpointLocation', tmp()).start();
    input.addData([{ id: 'a', v: 1 }]);
    await q.processAllAvailable();
    input.addData([{ id: 'a', v: 2 }]);
    await q.processAllAvailable();
    await q.stop();
    const batches = s.memoryTable('lists').batches;
    // Batch 0 emitted [1]; batch 1 [1, 2]. Batch 0's row used to become [1, 2] too: it shared the state's array.
    expect(batches.get(0)).toEqual([{ id: 'a', l: [1] }]);
    expect(batches.get(1)).toEqual([{ id: 'a', l: [1, 2] }]);
  });
});

describe('NaN and infinities as grouping keys', () => {
  it('are groups of their own (NaN = NaN, as Spark groups them), in a stream and in a batch', async () => {
    const rows = [NaN, NaN, Infinity, -Infinity, null, 1].map((x, i) => ({ id: String(i), x }));
    const show = (r: Record<string, unknown>): string => `${String(r.x)}:${String(r.n)}`;
    const build = (df: DataFrame): DataFrame => df.groupBy(col('x')).agg(count('*').alias('n'));
    const { lines } = await run(build, 'complete', [rows], show, { schema: 'id STRING, x DOUBLE' });
    // They used to encode as null in state keys: NaN, NaN, Infinity, -Infinity and null were one group of 5.
    const expected = ['-Infinity:1', 'Infinity:1', 'NaN:2', 'null:1', '1:1'];
    expect([...lines[0]!.out].sort()).toEqual([...expected].sort());
    const s = newSession();
    const batch = await build(s.createDataFrame(rows, 'id STRING, x DOUBLE')).collect();
    expect(batch.map(show).sort()).toEqual([...expected].sort());
  });
});

describe('session windows without another key', () => {
  it('are refused on a stream, as Spark refuses them, with what to do; a batch DataFrame may still use them', async () => {
    const global = (df: DataFrame): DataFrame => df.withWatermark('ts', '10 minutes').groupBy(session_window(col('ts'), '5 minutes')).agg(count('*').alias('n'));
    await expect(run(global, 'append', [], String)).rejects.toThrow(/Global aggregation with session window in streaming query is not supported.*groupBy\(col\('user_id'\)/s);
    const s = newSession();
    const out = await global(s.createDataFrame([{ id: 'a', ts: t('12:00') }, { id: 'b', ts: t('12:03') }], 'id STRING, ts TIMESTAMP')).collect();
    expect(out.map((r) => String(r.n))).toEqual(['2']);
  });
});
