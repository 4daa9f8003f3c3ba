/**
 * Joins, batch by batch, on memory streams. Expected outputs are worked out by hand from Spark 3.5's rules
 * (StreamingSymmetricHashJoinExec, StreamingJoinHelper; the Structured Streaming guide's "Stream-stream Joins"):
 *  - each side's rows at or behind the watermark for late events (the previous batch's) are dropped;
 *  - a left row joins the right rows in state (earlier batches), a right row the left rows in state (this
 *    batch's included), so a pair is emitted once;
 *  - a side's state watermark from a range condition: `right.t >= left.t` gives the right side W − 1 ms;
 *    `right.t <= left.t + 1h` gives the left side W − 1h − 1 ms (a non-strict bound evicts 1 ms less);
 *    rows with event time <= their side's state watermark are evicted at the end of the batch, and an
 *    outer side's unmatched rows are then emitted with nulls;
 *  - the global watermark is the minimum of the inputs' (max event time − delay); a no-data batch runs
 *    when it moved and the join holds state.
 * Times are 2025-01-01 UTC; `t('10:00')` is 10:00:00.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SluiceSession, UnsupportedOperationError, col, expr } from '../../src/index.js';
import type { DataFrame, OutputMode, StreamingQuery } from '../../src/index.js';

const t = (hhmm: string): Date => new Date(`2025-01-01T${hhmm}:00Z`);
const hm = (d: unknown): string => (d == null ? 'null' : (d as Date).toISOString().slice(11, 16));
const tmp = (): string => mkdtempSync(join(tmpdir(), 'sluice-join-'));

let provider = 'memory';
function newSession(): SluiceSession {
  const s = new SluiceSession('joins');
  s.conf.set('sluice.sql.streaming.stateStore.provider', provider);
  s.out = () => {};
  s.log = () => {};
  return s;
}

interface Step {
  left?: Array<Record<string, unknown>>;
  right?: Array<Record<string, unknown>>;
}
interface Line {
  batch: number;
  watermark: string;
  out: string[];
  dropped: number;
  state: number;
}

const IMPRESSIONS = 'imp_ad STRING, imp_time TIMESTAMP';
const CLICKS = 'click_ad STRING, click_time TIMESTAMP';

/**
 * Runs `build(left, right)` into a memory sink; each step adds rows to either stream and waits for every batch
 * they cause. With `restart`, every step runs in a new query (new session, same checkpoint), as after a crash.
 */
async function run(
  build: (left: DataFrame, right: DataFrame) => DataFrame,
  steps: Step[],
  show: (r: Record<string, unknown>) => string,
  opts: { mode?: OutputMode; restart?: boolean; schemas?: [string, string] } = {},
): Promise<{ lines: Line[]; queries: StreamingQuery[] }> {
  const checkpoint = tmp();
  const [ls, rs] = opts.schemas ?? [IMPRESSIONS, CLICKS];
  const queries: StreamingQuery[] = [];
  const lines: Line[] = [];
  const runSteps = async (upTo: number, from: number): Promise<void> => {
    const s = newSession();
    const left = s.memoryStream(ls);
    const right = s.memoryStream(rs);
    // A restarted query's memory streams hold everything so far; the checkpoint says what was read.
    for (const step of steps.slice(0, from)) {
      if (step.left) left.addData(step.left);
      if (step.right) right.addData(step.right);
    }
    const q = await build(left.toDF(), right.toDF()).writeStream.format('memory').queryName('j').outputMode(opts.mode ?? 'append').option('checkpointLocation', checkpoint).start();
    for (const step of steps.slice(from, upTo)) {
      if (step.left) left.addData(step.left);
      if (step.right) right.addData(step.right);
      await q.processAllAvailable();
    }
    await q.stop();
    if (q.exception) throw q.exception;
    queries.push(q);
    const table = s.memoryTable('j');
    for (const p of q.recentProgress) {
      lines.push({
        batch: p.batchId,
        watermark: p.eventTime.watermark ? hm(new Date(p.eventTime.watermark)) : '',
        out: (table.batches.get(p.batchId) ?? []).map(show).sort(),
        dropped: p.stateOperators[0]?.numRowsDroppedByWatermark ?? 0,
        state: p.stateOperators[0]?.numRowsTotal ?? 0,
      });
    }
  };
  if (opts.restart) for (let i = 0; i < steps.length; i++) await runSteps(i + 1, i);
  else await runSteps(steps.length, 0);
  return { lines, queries };
}

const pair = (r: Record<string, unknown>): string => `${String(r.imp_ad)}@${hm(r.imp_time)}+${String(r.click_ad)}@${hm(r.click_time)}`;

/** Impressions ⟕ clicks within an hour after the impression, watermarks 2 h and 3 h (Spark's guide example). */
const withinAnHour = (how: string) => (imps: DataFrame, clicks: DataFrame): DataFrame =>
  imps.withWatermark('imp_time', '2 hours').join(
    clicks.withWatermark('click_time', '3 hours'),
    expr('click_ad = imp_ad AND click_time >= imp_time AND click_time <= imp_time + interval 1 hour'),
    how,
  );

const outerSteps: Step[] = [
  { left: [{ imp_ad: 'A', imp_time: t('10:00') }], right: [{ click_ad: 'Z', click_time: t('11:00') }] },
  { left: [{ imp_ad: 'B', imp_time: t('13:00') }], right: [{ click_ad: 'B', click_time: t('13:20') }] },
  { left: [{ imp_ad: 'C', imp_time: t('14:30') }], right: [{ click_ad: 'D', click_time: t('14:00') }] },
  { right: [{ click_ad: 'E', click_time: t('15:00') }, { click_ad: 'A', click_time: t('10:59') }] },
];

describe.each(['memory', 'lmdb'])('stream-stream joins (%s state store)', (kind) => {
  it('inner without watermarks: every pair once, same-batch pairs included; state is never evicted', async () => {
    provider = kind;
    const build = (o: DataFrame, p: DataFrame): DataFrame => o.join(p, expr('click_ad = imp_ad'));
    const { lines, queries } = await run(
      build,
      [
        { left: [{ imp_ad: 'A', imp_time: t('10:00') }, { imp_ad: 'B', imp_time: t('10:01') }] },
        { right: [{ click_ad: 'A', click_time: t('10:05') }] },
        { left: [{ imp_ad: 'C', imp_time: t('10:10') }], right: [{ click_ad: 'C', click_time: t('10:11') }, { click_ad: 'A', click_time: t('10:12') }] },
      ],
      pair,
    );
    provider = 'memory';
    expect(lines).toEqual([
      { batch: 0, watermark: '', out: [], dropped: 0, state: 2 },
      // The click joins the impression in state.
      { batch: 1, watermark: '', out: ['A@10:00+A@10:05'], dropped: 0, state: 3 },
      // C's impression and click arrive together: emitted once (by the right side's pass over left state);
      // the second click on A joins the impression kept from batch 0.
      { batch: 2, watermark: '', out: ['A@10:00+A@10:12', 'C@10:10+C@10:11'], dropped: 0, state: 6 },
    ]);
    expect(queries[0]!.explain()).toMatch(/left rows kept forever[\s\S]*right rows kept forever/);
    expect(queries[0]!.lastProgress!.stateOperators[0]!.customMetrics).toEqual({ numLeftRows: 3, numRightRows: 3, leftRowsKeptForever: 1, rightRowsKeptForever: 1 });
  });

  it('left outer with a time range: the null row comes out when the watermark passes the impression\'s bound, not before', async () => {
    provider = kind;
    const { lines } = await run(withinAnHour('left_outer'), outerSteps, pair);
    provider = 'memory';
    expect(lines).toEqual([
      // A@10:00 and Z@11:00 are stored. Watermark after: min(10:00 − 2h, 11:00 − 3h) = 08:00.
      { batch: 0, watermark: '00:00', out: [], dropped: 0, state: 2 },
      // No-data batch: left state watermark 08:00 − 1h − 1ms = 06:59:59.999, right 07:59:59.999: nothing leaves.
      { batch: 1, watermark: '08:00', out: [], dropped: 0, state: 2 },
      // B's click (13:20) is within an hour of B's impression (13:00): emitted. Watermark after: min(11:00, 10:20).
      { batch: 2, watermark: '08:00', out: ['B@13:00+B@13:20'], dropped: 0, state: 4 },
      // Left bound 09:19:59.999, right 10:19:59.999: A@10:00 and Z@11:00 stay.
      { batch: 3, watermark: '10:20', out: [], dropped: 0, state: 4 },
      // C and D match nothing. Watermark after: min(14:30 − 2h, 14:00 − 3h) = 11:00.
      { batch: 4, watermark: '10:20', out: [], dropped: 0, state: 6 },
      // Left bound 09:59:59.999: A@10:00 survives by 1 ms (the bound is non-strict). Right bound 10:59:59.999.
      { batch: 5, watermark: '11:00', out: [], dropped: 0, state: 6 },
      // The click on A at 10:59 is behind the watermark for late events (11:00): dropped, so it cannot rescue A.
      // Watermark after: min(12:30, 15:00 − 3h) = 12:00.
      { batch: 6, watermark: '11:00', out: [], dropped: 1, state: 7 },
      // Left bound 10:59:59.999 passes A@10:00, which never matched: (A, null). Z@11:00 leaves the right side silently.
      { batch: 7, watermark: '12:00', out: ['A@10:00+null@null'], dropped: 0, state: 5 },
    ]);
  });

  it('gives the same batches when restarted after every step (state from the files)', async () => {
    provider = kind;
    const straight = await run(withinAnHour('left_outer'), outerSteps, pair);
    const restarted = await run(withinAnHour('left_outer'), outerSteps, pair, { restart: true });
    provider = 'memory';
    expect(restarted.lines).toEqual(straight.lines);
  });
});

describe('other stream-stream join types', () => {
  it('right outer and full outer: each side\'s unmatched rows come out with nulls when evicted', async () => {
    // Same steps, range and watermarks. The right side's state watermark is W − 1 ms (from click >= imp): Z@11:00
    // is evicted in batch 7 (bound 11:59:59.999), unmatched. In full outer, A@10:00 comes out too.
    const right = await run(withinAnHour('right_outer'), outerSteps, pair);
    expect(right.lines.filter((l) => l.out.length).map((l) => [l.batch, l.out])).toEqual([
      [2, ['B@13:00+B@13:20']],
      [7, ['null@null+Z@11:00']],
    ]);
    const full = await run(withinAnHour('full_outer'), outerSteps, pair);
    expect(full.lines.filter((l) => l.out.length).map((l) => [l.batch, l.out])).toEqual([
      [2, ['B@13:00+B@13:20']],
      [7, ['A@10:00+null@null', 'null@null+Z@11:00']],
    ]);
  });

  it('left semi: an impression comes out once, at its first click, and only its own columns', async () => {
    const steps: Step[] = [
      { left: [{ imp_ad: 'A', imp_time: t('10:00') }, { imp_ad: 'B', imp_time: t('10:00') }] },
      { right: [{ click_ad: 'A', click_time: t('10:10') }, { click_ad: 'A', click_time: t('10:20') }] },
      { left: [{ imp_ad: 'B', imp_time: t('10:30') }], right: [{ click_ad: 'B', click_time: t('10:40') }] },
    ];
    const { lines } = await run(withinAnHour('left_semi'), steps, (r) => `${String(r.imp_ad)}@${hm(r.imp_time)}${'click_ad' in r ? '+click' : ''}`);
    // Batch 1: two clicks on A: A is emitted once. Batch 2 (after a no-data batch): B@10:30 and its click arrive
    // together; the click also falls within an hour of B@10:00, so both B impressions come out, once each.
    expect(lines.filter((l) => l.out.length).map((l) => l.out)).toEqual([['A@10:00'], ['B@10:00', 'B@10:30']]);
  });

  it('what Spark 3.5 refuses for streams, with what to add', async () => {
    const s = newSession();
    const imps = s.memoryStream(IMPRESSIONS).toDF();
    const clicks = s.memoryStream(CLICKS).toDF();
    const start = (df: DataFrame, mode: OutputMode = 'append') => df.writeStream.format('memory').queryName('r').outputMode(mode).start();
    await expect(start(imps.join(clicks, expr('click_ad = imp_ad'), 'left'))).rejects.toThrow(
      /Stream-stream LeftOuter join .* not supported without a watermark in the join keys, or a watermark on the nullable side and an appropriate range condition/,
    );
    await expect(start(imps.join(clicks, expr('click_ad = imp_ad')), 'update')).rejects.toThrow(/not supported in update output mode, only in Append/);
    await expect(start(imps.join(clicks, expr('click_time > imp_time')))).rejects.toThrow(/without equality predicate is not supported/);
    await expect(start(imps.join(clicks, expr('click_ad = imp_ad'), 'left_anti'))).rejects.toThrow(UnsupportedOperationError);
    const ads = s.createDataFrame([{ ad: 'A', campaign: 'spring' }], 'ad STRING, campaign STRING');
    await expect(start(ads.join(imps, expr('ad = imp_ad'), 'left'))).rejects.toThrow(/LeftOuter join with a streaming DataFrame\/Dataset on the right and a static DataFrame\/Dataset on the left is not supported/);
    await expect(start(imps.join(ads, expr('ad = imp_ad'), 'full'))).rejects.toThrow(/FullOuter joins with streaming DataFrames\/Datasets on the left/);
  });

  it('refuses col(x) == col(x) when both sides have x, with the fix', async () => {
    const s = newSession();
    const orders = s.memoryStream('order_id STRING, ts TIMESTAMP').toDF();
    const payments = s.memoryStream('order_id STRING, paid TIMESTAMP').toDF();
    const q = orders.join(payments, col('order_id').eq(col('order_id'))).writeStream.format('memory').queryName('x').start();
    await expect(q).rejects.toThrow(/Column `order_id` is ambiguous[\s\S]*join\(other, 'order_id'\)[\s\S]*alias\('o'\)/);
  });
});

describe('stream-static joins', () => {
  const users = (s: SluiceSession): DataFrame =>
    s.createDataFrame([{ user_id: 'u1', name: 'Ann' }, { user_id: 'u2', name: 'Bob' }], 'user_id STRING, name STRING');

  it('inner and left outer (stream on the left): stateless, each event enriched in its own batch', async () => {
    for (const [how, expected] of [
      ['inner', [['e1:u1:Ann'], ['e3:u2:Bob']]],
      ['left_outer', [['e1:u1:Ann', 'e2:u9:null'], ['e3:u2:Bob']]],
      ['left_semi', [['e1:u1:null'], ['e3:u2:null']]],
      ['left_anti', [['e2:u9:null'], []]],
    ] as const) {
      const s = newSession();
      const events = s.memoryStream('event STRING, user_id STRING');
      const q = await events.toDF().join(users(s), 'user_id', how).writeStream.format('memory').queryName('e').option('checkpointLocation', tmp()).start();
      events.addData([{ event: 'e1', user_id: 'u1' }, { event: 'e2', user_id: 'u9' }]);
      await q.processAllAvailable();
      events.addData([{ event: 'e3', user_id: 'u2' }]);
      await q.processAllAvailable();
      await q.stop();
      const out = [0, 1].map((b) => (s.memoryTable('e').batches.get(b) ?? []).map((r) => `${String(r.event)}:${String(r.user_id)}:${String(r.name ?? null)}`).sort());
      expect(out, how).toEqual(expected);
      expect(q.lastProgress!.stateOperators, how).toEqual([]);
    }
  });
});

describe('join column names', () => {
  it('three sides with the same column: every one is qualified, a bare name is ambiguous; o.* is one side\'s columns', async () => {
    const s = newSession();
    const a = s.createDataFrame([{ id: 1, x: 'a' }], 'id INT, x STRING').alias('a');
    const b = s.createDataFrame([{ id: 1, y: 'b' }], 'id INT, y STRING').alias('b');
    const c = s.createDataFrame([{ id: 1, z: 'c' }], 'id INT, z STRING').alias('c');
    const abc = a.join(b, col('a.id').eq(col('b.id'))).join(c, col('a.id').eq(col('c.id')));
    expect(await abc.collect()).toEqual([{ 'a.id': 1, x: 'a', 'b.id': 1, y: 'b', 'c.id': 1, z: 'c' }]);
    await expect(abc.select('id').collect()).rejects.toThrow(/Column `id` is ambiguous: both sides of the join have it, as `a.id` and `b.id` and `c.id`/);
    expect(await abc.select('b.*').collect()).toEqual([{ 'b.id': 1, y: 'b' }]);
  });
});

describe('join review mends', () => {
  it('a batch join with a cached side joins both as batches (every join type)', async () => {
    const s = newSession();
    const a = s.createDataFrame([{ id: 1, x: 'a1' }, { id: 2, x: 'a2' }], 'id INT, x STRING');
    const b = s.createDataFrame([{ id: 1, y: 'b1' }, { id: 3, y: 'b3' }], 'id INT, y STRING');
    const show = (rows: Array<Record<string, unknown>>): string[] => rows.map((r) => `${String(r.id)}:${String(r.x ?? null)}:${String(r.y ?? null)}`).sort();
    expect(show(await a.join(b.cache(), 'id', 'right_outer').collect())).toEqual(['1:a1:b1', '3:null:b3']);
    expect(show(await a.join(b.cache(), 'id', 'full_outer').collect())).toEqual(['1:a1:b1', '2:a2:null', '3:null:b3']);
    expect(show(await a.cache().join(b, 'id', 'left_outer').collect())).toEqual(['1:a1:b1', '2:a2:null']);
    expect(show(await a.cache().join(b, 'id', 'left_semi').collect())).toEqual(['1:a1:null']);
    expect(show(await a.cache().join(b, 'id', 'left_anti').collect())).toEqual(['2:a2:null']);
  });

  it('a null-safe key (<=>) matches null with null, as Spark; = does not', async () => {
    const s = newSession();
    const l = s.createDataFrame([{ k: null, v: 'l-null' }, { k: 1, v: 'l-1' }], 'k INT, v STRING').alias('l');
    const r = s.createDataFrame([{ k: null, w: 'r-null' }, { k: 1, w: 'r-1' }], 'k INT, w STRING').alias('r');
    const pairs = async (cond: string): Promise<string[]> => (await l.join(r, expr(cond)).collect()).map((x) => `${String(x.v)}+${String(x.w)}`).sort();
    expect(await pairs('l.k <=> r.k')).toEqual(['l-1+r-1', 'l-null+r-null']);
    expect(await pairs('l.k = r.k')).toEqual(['l-1+r-1']);
  });

  it('a restarted stream-stream join runs the no-data batch its moved watermark asks for', async () => {
    // Four Trigger.Once runs: one batch each, no no-data batch between (worked out as in the left outer trace;
    // the last step has only the click on E). After batch 3 the watermark is min(14:30 − 2h, 15:00 − 3h) = 12:00,
    // while batch 3 ran with 11:00. A restart with no new data runs batch 4 with 12:00: A@10:00 (bound
    // 10:59:59.999) leaves unmatched — (A, null).
    const checkpoint = tmp();
    const steps: Step[] = [...outerSteps.slice(0, 3), { right: [{ click_ad: 'E', click_time: t('15:00') }] }];
    const s = newSession();
    const left = s.memoryStream(IMPRESSIONS);
    const right = s.memoryStream(CLICKS);
    const start = (trigger?: { once: true }) => {
      let w = withinAnHour('left_outer')(left.toDF(), right.toDF()).writeStream.format('memory').queryName('r').option('checkpointLocation', checkpoint);
      if (trigger) w = w.trigger(trigger);
      return w.start();
    };
    for (const step of steps) {
      if (step.left) left.addData(step.left);
      if (step.right) right.addData(step.right);
      await (await start({ once: true })).awaitTermination();
    }
    const q = await start();
    await q.processAllAvailable();
    await q.stop();
    expect(q.recentProgress.map((p) => [p.batchId, p.numInputRows, hm(new Date(p.eventTime.watermark!))])).toEqual([[4, 0, '12:00']]);
    expect((s.memoryTable('r').batches.get(4) ?? []).map(pair)).toEqual(['A@10:00+null@null']);
  });

  it('a full outer join needs both sides bounded (Spark accepts one; the other side\'s nulls would never come)', async () => {
    const s = newSession();
    const imps = s.memoryStream(IMPRESSIONS).toDF().withWatermark('imp_time', '2 hours');
    const clicks = s.memoryStream(CLICKS).toDF().withWatermark('click_time', '3 hours');
    const q = imps.join(clicks, expr('click_ad = imp_ad AND click_time >= imp_time'), 'full').writeStream.format('memory').queryName('f').start();
    await expect(q).rejects.toThrow(/FullOuter join .*nothing bounds the left side/);
  });
});

