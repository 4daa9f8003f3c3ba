/**
 * Event-time semantics, batch by batch, on memory sources. Every expected output below is worked out by
 * hand from Spark's documented rules (Structured Streaming guide, "Handling Late Data and Watermarking"):
 *  - watermark after batch N = max(previous, max event time seen − delay); batch N+1 uses it;
 *  - a window is late/evictable when window.end <= watermark; append emits a window in the batch whose
 *    watermark passes its end, and that batch is often a no-data batch Spark runs because the watermark moved;
 *  - update emits changed groups each batch; complete emits all groups and never evicts.
 * Times are 2025-01-01 UTC; `t('12:07')` is 12:07:00.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  SluiceSession, UnsupportedOperationError, col, count, sum, approx_count_distinct, countDistinct, window, collect_list, max, avg, first, last, min,
  collect_set, session_window, when, lit,
} from '../../src/index.js';
import type { DataFrame, OutputMode, StreamingQuery } from '../../src/index.js';

const t = (hhmm: string): Date => new Date(`2025-01-01T${hhmm}:00Z`);
const hm = (d: unknown): string => (d as Date).toISOString().slice(11, 16);
/** A window row as `12:00-12:10`, for compact expectations. */
const w = (r: Record<string, unknown>): string => {
  const win = r.window as { start: Date; end: Date };
  return `${hm(win.start)}-${hm(win.end)}`;
};

let provider = 'memory';
/** eventtime-workers.test.ts runs this whole file again with aggregation state in worker threads. */
const WORKERS = process.env.SLUICE_TEST_AGGREGATION_WORKERS ?? '1';
function newSession(): SluiceSession {
  const s = new SluiceSession('et');
  s.conf.set('sluice.sql.streaming.stateStore.provider', provider);
  s.conf.set('sluice.sql.streaming.aggregation.workers', WORKERS);
  s.out = () => {};
  s.log = () => {};
  return s;
}

interface Trace {
  batch: number;
  input: number;
  watermark: string;
  out: string[];
  dropped: number;
}

/**
 * Runs `build(stream)` as a memory-sink query; each step adds rows and waits until every batch they cause
 * (including no-data batches) has run. Returns one line per batch.
 */
async function trace(
  build: (df: DataFrame) => DataFrame,
  mode: OutputMode,
  steps: Array<Array<Record<string, unknown>>>,
  show: (r: Record<string, unknown>) => string,
  checkpoint = mkdtempSync(join(tmpdir(), 'sluice-et-')),
  schema = 'id STRING, ts TIMESTAMP',
): Promise<{ traces: Trace[]; query: StreamingQuery }> {
  const s = newSession();
  const input = s.memoryStream(schema);
  const q = await build(input.toDF()).writeStream.format('memory').queryName('out').outputMode(mode).option('checkpointLocation', checkpoint).start();
  for (const rows of steps) {
    input.addData(rows);
    await q.processAllAvailable();
  }
  await q.stop();
  const table = s.memoryTable('out');
  const traces = q.recentProgress.map((p) => ({
    batch: p.batchId,
    input: p.numInputRows,
    watermark: p.eventTime.watermark ? hm(new Date(p.eventTime.watermark)) : '',
    out: (table.batches.get(p.batchId) ?? []).map(show),
    dropped: p.stateOperators[0]?.numRowsDroppedByWatermark ?? 0,
  }));
  return { traces, query: q };
}

const tumbling = (df: DataFrame): DataFrame => df.withWatermark('ts', '10 minutes').groupBy(window(col('ts'), '10 minutes')).agg(count('*').alias('n'));
const steps = [
  [{ id: 'a', ts: t('12:07') }, { id: 'b', ts: t('12:08') }],
  [{ id: 'c', ts: t('12:14') }],
  [{ id: 'd', ts: t('12:21') }, { id: 'e', ts: t('12:01') }],
  [{ id: 'f', ts: t('11:55') }, { id: 'g', ts: t('12:05') }],
];
const countLine = (r: Record<string, unknown>): string => `${w(r)}:${String(r.n)}`;

describe.each(['memory', 'lmdb'])('watermark and append mode (tumbling windows, %s state store)', (kind) => {
  it('emits a window once, in the batch whose watermark passes its end; late rows are dropped and counted', async () => {
    provider = kind;
    const { traces } = await trace(tumbling, 'append', steps, countLine);
    provider = 'memory';
    expect(traces).toEqual([
      // 12:07, 12:08 → window 12:00-12:10 = 2. Batch 0 runs with watermark 0 (epoch); after it: 12:08 − 10 min = 11:58.
      { batch: 0, input: 2, watermark: '00:00', out: [], dropped: 0 },
      // The watermark moved, so Spark runs a no-data batch with 11:58: no window ends by then.
      { batch: 1, input: 0, watermark: '11:58', out: [], dropped: 0 },
      // 12:14 → 12:10-12:20 = 1. Next watermark 12:04.
      { batch: 2, input: 1, watermark: '11:58', out: [], dropped: 0 },
      { batch: 3, input: 0, watermark: '12:04', out: [], dropped: 0 },
      // 12:21 → 12:20-12:30; 12:01 is out of order but not late: its window ends 12:10 > 12:04, so 12:00-12:10 = 3.
      // Next watermark 12:21 − 10 = 12:11.
      { batch: 4, input: 2, watermark: '12:04', out: [], dropped: 0 },
      // No-data batch with 12:11 ≥ 12:10: 12:00-12:10 is final, emitted once, and its state removed.
      { batch: 5, input: 0, watermark: '12:11', out: ['12:00-12:10:3'], dropped: 0 },
      // 11:55 (window ends 12:00) and 12:05 (ends 12:10) are behind 12:11: dropped. The watermark stays, so no
      // no-data batch follows.
      { batch: 6, input: 2, watermark: '12:11', out: [], dropped: 2 },
    ]);
  });

  it('reports eventTime min/max/avg/watermark and state operator metrics as Spark does', async () => {
    const { query } = await trace(tumbling, 'append', steps.slice(0, 1), countLine);
    const p0 = query.recentProgress[0]!;
    expect(p0.eventTime).toEqual({ min: '2025-01-01T12:07:00.000Z', max: '2025-01-01T12:08:00.000Z', avg: '2025-01-01T12:07:30.000Z', watermark: '1970-01-01T00:00:00.000Z' });
    expect(p0.stateOperators).toEqual([
      expect.objectContaining({ operatorName: 'stateStoreSave', numRowsTotal: 1, numRowsUpdated: 1, numRowsRemoved: 0, numRowsDroppedByWatermark: 0, numShufflePartitions: 4 }),
    ]);
    expect(query.recentProgress[1]!.eventTime).toEqual({ watermark: '2025-01-01T11:58:00.000Z' });
    expect(query.explain()).toContain(`state operator 0 (stateStoreSave): 4 partitions in ${WORKERS === '1' ? "the query's thread" : '2 worker threads'}`);
  });

  it('sliding windows: each row counts in every window that contains it; each window is emitted when final', async () => {
    const sliding = (df: DataFrame): DataFrame => df.withWatermark('ts', '5 minutes').groupBy(window(col('ts'), '10 minutes', '5 minutes')).agg(count('*').alias('n'));
    const { traces } = await trace(sliding, 'append', [[{ id: 'a', ts: t('12:07') }], [{ id: 'b', ts: t('12:13') }], [{ id: 'c', ts: t('12:16') }], [{ id: 'd', ts: t('12:26') }]], countLine);
    expect(traces.map((x) => [x.batch, x.watermark, x.out])).toEqual([
      [0, '00:00', []], // 12:07 ∈ 12:00-12:10, 12:05-12:15. Next watermark 12:02.
      [1, '12:02', []],
      [2, '12:02', []], // 12:13 ∈ 12:05-12:15, 12:10-12:20. Next 12:08.
      [3, '12:08', []],
      [4, '12:08', []], // 12:16 ∈ 12:10-12:20, 12:15-12:25. Next 12:11.
      [5, '12:11', ['12:00-12:10:1']], // 12:10 <= 12:11
      [6, '12:11', []], // 12:26 ∈ 12:20-12:30, 12:25-12:35. Next 12:21.
      [7, '12:21', ['12:05-12:15:2', '12:10-12:20:2']], // both end by 12:21; 12:15-12:25 does not
    ]);
  });
});

describe('rows without an event time', () => {
  it('are left out of window and session aggregations (as Spark filters them), counted, and a warning says why', async () => {
    for (const by of [window(col('ts'), '10 minutes'), session_window(col('ts'), '5 minutes')]) {
      const s = newSession();
      const logs: string[] = [];
      s.log = (l) => logs.push(l);
      const input = s.memoryStream('id STRING, ts TIMESTAMP');
      // With a key beside the window: Spark refuses a session window alone on a stream (a global session).
      const q = await input.toDF().withWatermark('ts', '10 minutes').groupBy(lit('all').alias('k'), by).agg(count('*').alias('n'))
        .writeStream.format('memory').queryName('nulls').outputMode('complete').option('checkpointLocation', mkdtempSync(join(tmpdir(), 'sluice-null-'))).start();
      input.addData([{ id: 'a', ts: t('12:01') }, { id: 'b', ts: null }, { id: 'c', ts: null }]);
      await q.processAllAvailable();
      await q.stop();
      // Only 12:01 is counted; before, the null rows made a group with a null window that never closed.
      expect(s.memoryTable('nulls').rows.map((r) => r.n)).toEqual([1]);
      expect(q.lastProgress!.stateOperators[0]!.customMetrics).toMatchObject({ numRowsWithNullEventTime: 2 });
      expect(logs.join('\n')).toMatch(/WARN Batch 0: 2 row\(s\) had a null event time and were left out of the window aggregation/);
    }
  });
});

describe('update and complete modes on the same input', () => {
  it('update emits changed windows every batch and evicts final ones silently; it does not wait for the watermark', async () => {
    const { traces } = await trace(tumbling, 'update', steps.slice(0, 3), countLine);
    expect(traces.map((x) => [x.batch, x.out])).toEqual([
      [0, ['12:00-12:10:2']], // output at once: update does not wait 10 minutes
      [1, []], // no-data batch (watermark 11:58): nothing changed
      [2, ['12:10-12:20:1']],
      [3, []],
      [4, ['12:00-12:10:3', '12:20-12:30:1']], // 12:01 updates the first window again: a later output revises it
      [5, []], // watermark 12:11 evicts 12:00-12:10 without output
    ]);
  });

  it('complete emits every window every batch, keeps all state, and drops nothing as late', async () => {
    const { traces, query } = await trace(tumbling, 'complete', steps, countLine);
    expect(traces.map((x) => [x.batch, x.out])).toEqual([
      [0, ['12:00-12:10:2']],
      [1, ['12:00-12:10:2', '12:10-12:20:1']],
      [2, ['12:00-12:10:3', '12:10-12:20:1', '12:20-12:30:1']],
      // 11:55 and 12:05 still count: complete mode never finalises a window (no no-data batches either).
      [3, ['11:50-12:00:1', '12:00-12:10:4', '12:10-12:20:1', '12:20-12:30:1']],
    ]);
    expect(query.lastProgress!.stateOperators[0]!.numRowsTotal).toBe(4);
  });

  it('a watermark on a column that is not a grouping key bounds nothing: update mode keeps every key', async () => {
    const byId = (df: DataFrame): DataFrame => df.withWatermark('ts', '1 minute').groupBy('id').agg(count('*').alias('n'));
    const { traces, query } = await trace(byId, 'update', [[{ id: 'a', ts: t('12:00') }], [{ id: 'a', ts: t('13:00') }, { id: 'b', ts: t('13:00') }]], (r) => `${String(r.id)}:${String(r.n)}`);
    expect(traces.map((x) => x.out)).toEqual([['a:1'], [], ['a:2', 'b:1'], []]);
    expect(query.lastProgress!.stateOperators[0]!.numRowsTotal).toBe(2); // nothing evicted, whatever the watermark
  });
});

describe('deduplication', () => {
  it('without a watermark keeps every key forever', async () => {
    const { traces, query } = await trace((df) => df.dropDuplicates(['id']), 'append', [[{ id: 'a', ts: t('12:00') }, { id: 'b', ts: t('12:00') }, { id: 'a', ts: t('12:01') }], [{ id: 'a', ts: t('13:00') }, { id: 'c', ts: t('13:00') }]], (r) => String(r.id));
    expect(traces.map((x) => x.out)).toEqual([['a', 'b'], ['c']]);
    expect(query.lastProgress!.stateOperators[0]).toMatchObject({ operatorName: 'dedupe', numRowsTotal: 3 });
  });

  it('with a watermark and the event time among the keys, forgets keys behind the watermark and drops late rows', async () => {
    const dedupe = (df: DataFrame): DataFrame => df.withWatermark('ts', '10 minutes').dropDuplicates(['id', 'ts']);
    const line = (r: Record<string, unknown>): string => `${String(r.id)}@${hm(r.ts)}`;
    const { traces, query } = await trace(dedupe, 'append', [
      [{ id: 'a', ts: t('12:00') }, { id: 'a', ts: t('12:00') }, { id: 'b', ts: t('12:05') }],
      [{ id: 'a', ts: t('12:00') }, { id: 'c', ts: t('12:20') }],
      [{ id: 'a', ts: t('12:00') }],
    ], line);
    expect(traces.map((x) => [x.batch, x.watermark, x.out, x.dropped])).toEqual([
      [0, '00:00', ['a@12:00', 'b@12:05'], 0], // next watermark 11:55
      [1, '11:55', [], 0],
      [2, '11:55', ['c@12:20'], 0], // a@12:00 is a duplicate. Next watermark 12:10
      [3, '12:10', [], 0], // evicts a@12:00 and b@12:05 (<= 12:10)
      [4, '12:10', [], 1], // a@12:00 again: late (12:00 <= 12:10), dropped — not re-emitted though its key was forgotten
    ]);
    expect(query.lastProgress!.stateOperators[0]!.numRowsTotal).toBe(1);
  });

  it('dropDuplicatesWithinWatermark: a key is a duplicate while its first event time + delay is ahead of the watermark', async () => {
    const dedupe = (df: DataFrame): DataFrame => df.withWatermark('ts', '10 minutes').dropDuplicatesWithinWatermark(['id']);
    const line = (r: Record<string, unknown>): string => `${String(r.id)}@${hm(r.ts)}`;
    const { traces } = await trace(dedupe, 'append', [
      [{ id: 'a', ts: t('12:00') }, { id: 'b', ts: t('12:05') }],
      [{ id: 'a', ts: t('12:08') }, { id: 'c', ts: t('12:30') }],
      [{ id: 'a', ts: t('12:25') }],
    ], line);
    expect(traces.map((x) => [x.batch, x.watermark, x.out])).toEqual([
      [0, '00:00', ['a@12:00', 'b@12:05']], // a kept until 12:10, b until 12:15. Next watermark 11:55
      [1, '11:55', []],
      [2, '11:55', ['c@12:30']], // a@12:08 is a duplicate of a@12:00 (12:00 + 10 min > 11:55). Next 12:20
      [3, '12:20', []], // a (12:10) and b (12:15) expire
      [4, '12:20', ['a@12:25']], // a again, not late (12:25 > 12:20): a new first occurrence
    ]);
  });
});

/**
 * Session windows (Spark's session_window), gap 5 minutes, watermark 10 minutes, grouped by id, append mode.
 * A row at t opens [t, t+5min); sessions of one id that overlap or touch (start <= other's end) merge. A row is
 * late when its own session would end at or before the watermark; a session is emitted, once, when the
 * watermark reaches its end.
 */
const sessions = (df: DataFrame): DataFrame =>
  df.withWatermark('ts', '10 minutes').groupBy(session_window(col('ts'), '5 minutes'), col('id')).agg(count('*').alias('n'));
const sessionSteps = [
  [{ id: 'a', ts: t('12:00') }, { id: 'a', ts: t('12:03') }, { id: 'b', ts: t('12:02') }],
  [{ id: 'a', ts: t('12:10') }, { id: 'b', ts: t('12:07') }],
  [{ id: 'a', ts: t('12:13') }, { id: 'c', ts: t('12:30') }],
  [{ id: 'a', ts: t('12:14') }, { id: 'a', ts: t('12:17') }],
  [{ id: 'd', ts: t('12:40') }],
];
const sessionLine = (r: Record<string, unknown>): string => {
  const s = r.session_window as { start: Date; end: Date };
  return `${hm(s.start)}-${hm(s.end)} ${String(r.id)}:${String(r.n)}`;
};

describe.each(['memory', 'lmdb'])('session windows (%s state store)', (kind) => {
  it('append: sessions merge within the gap, are emitted once when the watermark passes their end; late rows are dropped', async () => {
    provider = kind;
    const { traces, query } = await trace(sessions, 'append', sessionSteps, sessionLine);
    provider = 'memory';
    expect(traces.map((x) => [x.batch, x.input, x.watermark, x.out, x.dropped])).toEqual([
      // a: [12:00,12:05) + [12:03,12:08) overlap → [12:00,12:08) n=2; b: [12:02,12:07) n=1. Next watermark 12:03 − 10 = 11:53.
      [0, 3, '00:00', [], 0],
      [1, 0, '11:53', [], 0], // no-data batch: no session ends by 11:53
      // a@12:10 starts after 12:08: a new session [12:10,12:15). b@12:07 touches [12:02,12:07) → [12:02,12:12) n=2. Next 12:00.
      [2, 2, '11:53', [], 0],
      [3, 0, '12:00', [], 0],
      // a@12:13 → [12:10,12:18) n=2; c: [12:30,12:35). Next 12:30 − 10 = 12:20.
      [4, 2, '12:00', [], 0],
      // 12:08, 12:12 and 12:18 are <= 12:20: three sessions close, ordered by start.
      [5, 0, '12:20', ['12:00-12:08 a:2', '12:02-12:12 b:2', '12:10-12:18 a:2'], 0],
      // a@12:14 would end 12:19 <= 12:20: late, dropped. a@12:17 ends 12:22: a new session. Max stays 12:30: no no-data batch.
      [6, 2, '12:20', [], 1],
      // d@12:40 moves the watermark to 12:30, which closes a's [12:17,12:22); c's [12:30,12:35) stays open.
      [7, 1, '12:20', [], 0],
      [8, 0, '12:30', ['12:17-12:22 a:1'], 0],
    ]);
    expect(query.recentProgress[6]!.stateOperators[0]).toEqual(expect.objectContaining({ operatorName: 'sessionWindowStateStoreSaveExec', numRowsDroppedByWatermark: 1 }));
    // After batch 4: a has [12:00,12:08) and [12:10,12:18), b [12:02,12:12), c [12:30,12:35): 4 sessions in 3 groups.
    expect(query.recentProgress[4]!.stateOperators[0]!.numRowsTotal).toBe(4);
  });

  it('complete: a row that bridges two sessions merges them into one, aggregates combined in event-time order', async () => {
    provider = kind;
    const bridged = (df: DataFrame): DataFrame =>
      df.groupBy(col('id'), session_window(col('ts'), '5 minutes')).agg(count('*').alias('n'), collect_list('ts').alias('times'));
    const line = (r: Record<string, unknown>): string => {
      const s = r.session_window as { start: Date; end: Date };
      return `${String(r.id)} ${hm(s.start)}-${hm(s.end)}:${String(r.n)} [${(r.times as Date[]).map(hm).join(' ')}]`;
    };
    const { traces } = await trace(bridged, 'complete', [
      [{ id: 'a', ts: t('12:00') }, { id: 'a', ts: t('12:08') }],
      [{ id: 'a', ts: t('12:04') }], // [12:04,12:09) overlaps [12:00,12:05) and [12:08,12:13)
    ], line);
    provider = 'memory';
    expect(traces.map((x) => x.out)).toEqual([
      ['a 12:00-12:05:1 [12:00]', 'a 12:08-12:13:1 [12:08]'],
      ['a 12:00-12:13:3 [12:00 12:04 12:08]'],
    ]);
  });
});

describe('session windows with a gap per row', () => {
  it('each row opens a session as long as its own gap; rows without a valid gap are left out and counted', async () => {
    const s = newSession();
    const input = s.memoryStream('id STRING, ts TIMESTAMP');
    // a: 5-minute gap, b: 1-minute gap, c: a gap that is not a duration.
    const gap = when(col('id').eq('a'), lit('5 minutes')).when(col('id').eq('b'), lit('1 minute')).otherwise(lit('soon'));
    const q = await input.toDF().groupBy(col('id'), session_window(col('ts'), gap)).agg(count('*').alias('n'))
      .writeStream.format('memory').queryName('gaps').outputMode('complete').option('checkpointLocation', mkdtempSync(join(tmpdir(), 'sluice-gap-'))).start();
    input.addData([
      { id: 'a', ts: t('12:00') }, { id: 'a', ts: t('12:04') }, // [12:00,12:05) + [12:04,12:09) → [12:00,12:09)
      { id: 'b', ts: t('12:00') }, { id: 'b', ts: t('12:02') }, // [12:00,12:01) and [12:02,12:03): 2 sessions
      { id: 'c', ts: t('12:00') },
    ]);
    await q.processAllAvailable();
    await q.stop();
    const line = (r: Record<string, unknown>): string => {
      const w = r.session_window as { start: Date; end: Date };
      return `${String(r.id)} ${hm(w.start)}-${hm(w.end)}:${String(r.n)}`;
    };
    expect(s.memoryTable('gaps').rows.map(line)).toEqual(['a 12:00-12:09:2', 'b 12:00-12:01:1', 'b 12:02-12:03:1']);
    expect(q.lastProgress!.stateOperators[0]!.customMetrics).toEqual({ numRowsWithNullEventTime: 0, numRowsWithInvalidSessionGap: 1 });
  });
});

describe.each(['memory', 'lmdb'])('restart in the middle of a windowed query (%s state store)', (kind) => {
  it.each([
    ['tumbling windows', tumbling, steps, countLine],
    ['session windows', sessions, sessionSteps, sessionLine],
  ] as const)('%s: gives the same output as a run without restart (state restored from its files; worker threads or not)', async (_name, query, input, line) => {
    provider = kind;
    const whole = (await trace(query, 'append', input, line)).traces;
    const cp = mkdtempSync(join(tmpdir(), 'sluice-et-restart-'));
    // Same input, but the "process" stops after each step; every run sees all data added so far.
    const outs: Trace[] = [];
    for (let i = 1; i <= input.length; i++) {
      const s = newSession();
      // Every other run with the aggregation state in 2 worker threads: the files are the same either way.
      if (i % 2 === 0) s.conf.set('sluice.sql.streaming.aggregation.workers', WORKERS === '1' ? '2' : '1');
      const stream = s.memoryStream('id STRING, ts TIMESTAMP');
      stream.addData(input.slice(0, i).flat());
      const q = await query(stream.toDF()).writeStream.format('memory').queryName('out').outputMode('append').option('checkpointLocation', cp).start();
      await q.processAllAvailable();
      await q.stop();
      const table = s.memoryTable('out');
      outs.push(...q.recentProgress.map((p) => ({ batch: p.batchId, input: p.numInputRows, watermark: hm(new Date(p.eventTime.watermark!)), out: (table.batches.get(p.batchId) ?? []).map(line), dropped: p.stateOperators[0]?.numRowsDroppedByWatermark ?? 0 })));
    }
    expect(outs).toEqual(whole);
    provider = 'memory';
  });
});

describe('aggregate functions', () => {
  it('compute per group, in batch and in streaming', async () => {
    const s = newSession();
    const df = s.createDataFrame(
      [
        { k: 'x', v: 3 },
        { k: 'x', v: 1 },
        { k: 'y', v: 5 },
        { k: 'x', v: null },
        { k: 'x', v: 3 },
      ],
      'k STRING, v INT',
    );
    const rows = await df
      .groupBy('k')
      .agg(count('*').alias('n'), count('v').alias('nv'), sum('v').alias('s'), avg('v').alias('a'), min('v').alias('lo'), max('v').alias('hi'), first('v').alias('f'), last('v').alias('l'), collect_list('v').alias('list'), collect_set('v').alias('set'), countDistinct('v').alias('d'))
      .collect();
    expect(rows).toEqual([
      { k: 'x', n: 4, nv: 3, s: 7, a: 7 / 3, lo: 1, hi: 3, f: 3, l: 3, list: [3, 1, 3], set: [3, 1], d: 2 },
      { k: 'y', n: 1, nv: 1, s: 5, a: 5, lo: 5, hi: 5, f: 5, l: 5, list: [5], set: [5], d: 1 },
    ]);
    expect(await df.groupBy('k').count().collect()).toEqual([{ k: 'x', count: 4 }, { k: 'y', count: 1 }]);
  });

  it('approx_count_distinct stays within its stated error of the exact count', async () => {
    const s = newSession();
    for (const n of [100, 20_000]) {
      const rows = Array.from({ length: n * 2 }, (_, i) => ({ u: `user-${i % n}` }));
      const [r] = await s.createDataFrame(rows, 'u STRING').groupBy().agg(approx_count_distinct('u').alias('approx'), countDistinct('u').alias('exact')).collect();
      expect(r!.exact).toBe(n);
      // rsd 0.05 → 2^9 registers, standard error 1.04/√512 = 4.6%; allow two standard errors.
      expect(Math.abs((r!.approx as number) - n) / n).toBeLessThan(0.092);
    }
  });
});

describe('what streaming aggregation refuses, with the reason', () => {
  const stream = (): DataFrame => newSession().memoryStream('id STRING, ts TIMESTAMP').toDF();
  const start = (df: DataFrame, mode: OutputMode) => df.writeStream.format('memory').queryName('r').outputMode(mode).start();

  it('countDistinct on a stream', async () => {
    await expect(start(stream().groupBy('id').agg(countDistinct('ts')), 'update')).rejects.toThrow(/exact distinct aggregations are not supported on streams[\s\S]*approx_count_distinct/);
  });
  it('append with an aggregation and no watermark', async () => {
    await expect(start(stream().groupBy(window(col('ts'), '5 minutes')).count(), 'append')).rejects.toThrow(/no withWatermark\(\), so no group ever becomes final/);
  });
  it('append with a watermark that is not on a grouping key', async () => {
    await expect(start(stream().withWatermark('ts', '1 minute').groupBy('id').count(), 'append')).rejects.toThrow(UnsupportedOperationError);
    await expect(start(stream().withWatermark('ts', '1 minute').groupBy('id').count(), 'append')).rejects.toThrow(/no key of the aggregation grouped by `id` is that column, a window\(\) of it/);
  });
  it('two aggregations, and sorting outside complete mode', async () => {
    // Spark 3.4+ chains aggregations in append mode only (stateful-operators.test.ts); in complete mode the first
    // one re-emits groups, which the second would count again.
    await expect(start(stream().groupBy('id').count().groupBy('count').agg(max('id').alias('m')), 'complete')).rejects.toThrow(
      /a second aggregation after a streaming aggregation, in complete mode/,
    );
    await expect(start(stream().groupBy('id').count().orderBy('count'), 'update')).rejects.toThrow(/Sorting is not supported/);
    const q = await start(stream().groupBy('id').count().orderBy('count'), 'complete');
    await q.stop();
  });
  it('update mode over session windows, session_window() outside groupBy, and two time windows in one groupBy', async () => {
    const sw = session_window(col('ts'), '5 minutes');
    await expect(start(stream().withWatermark('ts', '1 minute').groupBy(sw).count(), 'update')).rejects.toThrow(/Update output mode is not supported for an aggregation over session_window\(\)[\s\S]*outputMode\("append"\)/);
    await expect(start(stream().select(sw), 'append')).rejects.toThrow(/session_window\(\) only makes sense in groupBy\(\)/);
    await expect(start(stream().withWatermark('ts', '1 minute').groupBy(sw, window(col('ts'), '5 minutes')).count(), 'append')).rejects.toThrow(/2 time windows/);
  });
  it('a watermark on a column that is not a timestamp', async () => {
    await expect(start(stream().withWatermark('id', '1 minute').groupBy('id').count(), 'update')).rejects.toThrow(/needs a timestamp column, but it is string/);
  });
});

/**
 * Two inputs, each with its own watermark (A: 10 minutes, B: 5 minutes), unioned, counted per 10-minute
 * window in append mode. Spark's rule (WatermarkTracker): after each batch, every input that saw data has
 * its own watermark (max event time − its delay, never going back); the query's watermark is their minimum
 * — the slowest input holds everyone back — or their maximum with multipleWatermarkPolicy=max.
 */
describe('several inputs: union, per-input watermarks and the global watermark policy', () => {
  const script = [['a', '12:20'], ['b', '12:12'], null, ['a', '12:31'], null, ['b', '12:26'], null, ['b', '12:15'], null] as const;

  /** Runs the script; with `restart`, every step is a new run (new session, same checkpoint) that re-reads all input so far. */
  async function run(policy: 'min' | 'max', restart = false) {
    const cp = mkdtempSync(join(tmpdir(), 'sluice-union-'));
    const sent: Record<'a' | 'b', Date[]> = { a: [], b: [] };
    const lines: unknown[][] = [];
    let live: { s: SluiceSession; a: ReturnType<SluiceSession['memoryStream']>; b: ReturnType<SluiceSession['memoryStream']>; q: StreamingQuery } | undefined;
    const start = async () => {
      const s = newSession();
      s.conf.set('sluice.sql.streaming.multipleWatermarkPolicy', policy);
      const a = s.memoryStream('id STRING, ts TIMESTAMP');
      const b = s.memoryStream('id STRING, ts TIMESTAMP');
      const q = await a.toDF().withWatermark('ts', '10 minutes')
        .union(b.toDF().withWatermark('ts', '5 minutes'))
        .groupBy(window(col('ts'), '10 minutes')).agg(count('*').alias('n'))
        .writeStream.format('memory').queryName('u').outputMode('append').option('checkpointLocation', cp).start();
      return { s, a, b, q };
    };
    const finish = async (x: NonNullable<typeof live>) => {
      await x.q.stop();
      if (x.q.exception) throw x.q.exception;
      const table = x.s.memoryTable('u');
      lines.push(...x.q.recentProgress.map((p) => [p.batchId, p.numInputRows, hm(new Date(p.eventTime.watermark!)), (table.batches.get(p.batchId) ?? []).map(countLine), p.stateOperators[0]!.numRowsDroppedByWatermark]));
    };
    let pending: Array<['a' | 'b', string]> = [];
    for (const step of script) {
      if (step) {
        pending.push([step[0], step[1]]);
        continue;
      }
      if (!live || restart) live = await start();
      const x = live;
      for (const [src, tm] of pending) sent[src].push(t(tm));
      if (restart) {
        x.a.addData(sent.a.map((ts) => ({ id: 'a', ts })));
        x.b.addData(sent.b.map((ts) => ({ id: 'b', ts })));
      } else {
        for (const [src, tm] of pending) x[src].addData([{ id: src, ts: t(tm) }]);
      }
      pending = [];
      await x.q.processAllAvailable();
      if (restart) await finish(x);
    }
    if (!restart) await finish(live!);
    return lines;
  }

  it('min (default): the slower input holds the watermark back', async () => {
    expect(await run('min')).toEqual([
      // A 12:20 (→ its watermark 12:10), B 12:12 (→ 12:07): global min 12:07.
      [0, 2, '00:00', [], 0],
      [1, 0, '12:07', [], 0],
      // A 12:31 → A's watermark 12:21, but B's is still 12:07: the global one does not move, no no-data batch.
      [2, 1, '12:07', [], 0],
      // B 12:26 → B's 12:21: min(12:21, 12:21) = 12:21.
      [3, 1, '12:07', [], 0],
      [4, 0, '12:21', ['12:10-12:20:1'], 0],
      // B 12:15: its window ended 12:20 <= 12:21, late.
      [5, 1, '12:21', [], 1],
    ]);
  });

  it('max: the faster input moves the watermark; rows of the slower one become late sooner', async () => {
    expect(await run('max')).toEqual([
      [0, 2, '00:00', [], 0], // max(12:10, 12:07) = 12:10
      [1, 0, '12:10', [], 0],
      [2, 1, '12:10', [], 0], // A 12:31 → 12:21
      [3, 0, '12:21', ['12:10-12:20:1'], 0],
      [4, 1, '12:21', [], 0], // B 12:26 → window 12:20-12:30 (ends after 12:21): counted
      [5, 1, '12:21', [], 1],
    ]);
  });

  it('an input that has sent nothing yet holds the min watermark back (as in the WatermarkTracker of Spark), not the max one', async () => {
    const runOne = async (policy: 'min' | 'max') => {
      const s = newSession();
      s.conf.set('sluice.sql.streaming.multipleWatermarkPolicy', policy);
      const a = s.memoryStream('id STRING, ts TIMESTAMP');
      const b = s.memoryStream('id STRING, ts TIMESTAMP');
      const q = await a.toDF().withWatermark('ts', '10 minutes').union(b.toDF().withWatermark('ts', '5 minutes'))
        .groupBy(window(col('ts'), '10 minutes')).agg(count('*').alias('n'))
        .writeStream.format('memory').queryName('quiet').outputMode('append').option('checkpointLocation', mkdtempSync(join(tmpdir(), 'sluice-quiet-'))).start();
      a.addData([{ id: 'a', ts: t('12:20') }]);
      await q.processAllAvailable();
      b.addData([{ id: 'b', ts: t('12:12') }]);
      await q.processAllAvailable();
      await q.stop();
      return q.recentProgress.map((p) => [p.batchId, p.numInputRows, hm(new Date(p.eventTime.watermark!))]);
    };
    // min: after batch 0, A's watermark is 12:10 but B has none yet (0): the global one stays at the start.
    // B's 12:12 then gives min(12:10, 12:07) = 12:07.
    expect(await runOne('min')).toEqual([[0, 1, '00:00'], [1, 1, '00:00'], [2, 0, '12:07']]);
    // max: A alone moves it to 12:10; B's 12:07 does not move it back.
    expect(await runOne('max')).toEqual([[0, 1, '00:00'], [1, 0, '12:10'], [2, 1, '12:10']]);
  });

  it('a restart after any batch gives the same batches: the watermark of each input is logged in commits/N', async () => {
    // Spark keeps per-input watermarks in memory only: restarted after batch 2 (A 12:31, B still at 12:07),
    // it would know only what batch 3's input (B) says and compute min(12:21) alone; here both are restored.
    expect(await run('min', true)).toEqual(await run('min'));
  });

  it('union by position or by name, in batch; mismatches and stream + batch refused with the reason', async () => {
    const s = newSession();
    const x = s.createDataFrame([{ k: 'a', v: 1 }], 'k STRING, v INT');
    const y = s.createDataFrame([{ v: 2, k: 'b' }], 'v INT, k STRING');
    expect(await x.unionByName(y).collect()).toEqual([{ k: 'a', v: 1 }, { k: 'b', v: 2 }]);
    expect(await x.union(x).collect()).toEqual([{ k: 'a', v: 1 }, { k: 'a', v: 1 }]);
    const z = s.createDataFrame([{ k: 'c' }], 'k STRING');
    expect(await x.unionByName(z, true).collect()).toEqual([{ k: 'a', v: 1 }, { k: 'c', v: null }]);
    // Columns only the second input has are added after the first's, null on the first side (Spark's rule).
    expect(await z.unionByName(x, true).collect()).toEqual([{ k: 'c', v: null }, { k: 'a', v: 1 }]);
    await expect(x.union(y).collect()).rejects.toThrow(/column 1 \(`k`\) is string in the first input but int \(`v`\) in input 2[\s\S]*unionByName/);
    await expect(x.unionByName(z).collect()).rejects.toThrow(/input 2 lacks `v`[\s\S]*allowMissingColumns/);
    await expect(x.union(z).collect()).rejects.toThrow(/input 2 has 1 columns, the first has 2/);
    const stream = s.memoryStream('k STRING, v INT').toDF();
    await expect(stream.union(x).writeStream.format('memory').queryName('bad').start()).rejects.toThrow(/union\(\) of a streaming and a batch DataFrame is not supported/);
  });
});
