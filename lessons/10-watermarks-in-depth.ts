// %% [markdown]
// # Lesson 10 — Watermarks in depth, and debugging them
//
// Lesson 04 showed what the watermark does to windows. This one follows it batch by batch, reads it where
// the engine keeps it (progress and the checkpoint), plots it against event time, and shows what happens
// when there is none.
//
// The rule, once more (Spark's, and Sluice's): at the **end** of batch N the engine computes
// `max event time seen − delay`; if that is later than the current watermark, it becomes the watermark of
// batch **N+1** (it never goes back). A watermark never affects the batch whose data moved it.

// %%
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import * as tslab from 'tslab';
import { SluiceSession, col, count, window, type Row, type StreamingQuery } from 'sluice';

rmSync('checkpoints/lesson10', { recursive: true, force: true });
const sluice = SluiceSession.builder().appName('lesson10').getOrCreate();
const t = (hhmm: string): Date => new Date(`2025-08-22T${hhmm}:00Z`);
const hm = (d: Date | string | number): string => (d === 0 || d === '1970-01-01T00:00:00.000Z' ? '—' : new Date(d).toISOString().slice(11, 16));
const win = (r: Row): string => { const w = r.window as { start: Date; end: Date }; return `${hm(w.start)}-${hm(w.end)}:${r.events}`; };
const clicks = sluice.memoryStream('user_id STRING, timestamp TIMESTAMP');
const add = async (q: StreamingQuery, ...times: string[]): Promise<void> => {
  clicks.addData(times.map((x, i) => ({ user_id: `u${i}`, timestamp: t(x) })));
  await q.processAllAvailable();
};
console.log('ready');

// %% [markdown]
// ## Set the watermark before the aggregation
//
// `withWatermark` marks a column as event time **for the operators after it**. Placed before
// `groupBy(window(…))`, the aggregation knows when a window is final (append mode), which rows are late, and
// which state to drop. A 5-minute watermark, 5-minute windows, append mode:
//
// ```python
// # PySpark 3.5 (clicks: a streaming DataFrame, e.g. Kafka parsed with from_json)
// from pyspark.sql.functions import col, count, window
// q = (clicks.withWatermark("timestamp", "5 minutes")
//      .groupBy(window(col("timestamp"), "5 minutes")).agg(count("*").alias("events"))
//      .writeStream.format("memory").queryName("lesson10").outputMode("append")
//      .option("checkpointLocation", "checkpoints/lesson10/windows").start())
// ```

// %%
const query = await clicks.toDF()
  .withWatermark('timestamp', '5 minutes')
  .groupBy(window(col('timestamp'), '5 minutes')).agg(count('*').alias('events'))
  .writeStream.format('memory').queryName('lesson10').outputMode('append')
  .option('checkpointLocation', 'checkpoints/lesson10/windows').start();
await add(query, '12:01', '12:04');
await add(query, '12:07', '12:02');
await add(query, '12:12');
await add(query, '12:03', '12:09');
await add(query, '12:20');
const out = sluice.memoryTable('lesson10'); // its .batches (each batch's rows apart) is Sluice's: Spark's memory sink keeps one table

// %% [markdown]
// ## When exactly does the watermark move?
//
// Each line is a batch. `used` is the watermark the batch ran with (progress `eventTime.watermark`, also
// logged as `batchWatermarkMs` in `offsets/N` before the batch ran); `next` is what the batch computed at its
// end (logged as `nextBatchWatermarkMs` in `commits/N`). Both fields are Spark's, in the same files, so the
// same reading works on a Spark checkpoint. Batches with 0 rows are **no-data batches**: the engine runs one
// when the watermark moved, because a window may now be final.

// %%
const cp = 'checkpoints/lesson10/windows';
const nextOf = (b: number): number => JSON.parse(readFileSync(`${cp}/commits/${b}`, 'utf8').split('\n')[1]).nextBatchWatermarkMs;
const usedOf = (b: number): number => JSON.parse(readFileSync(`${cp}/offsets/${b}`, 'utf8').split('\n')[1]).batchWatermarkMs;
const trace = query.recentProgress.map((p) => ({
  batch: p.batchId,
  rows: p.numInputRows,
  eventTime: p.eventTime.max ? `${hm(p.eventTime.min!)}..${hm(p.eventTime.max)}` : '',
  used: hm(p.eventTime.watermark!),
  next: hm(nextOf(p.batchId)),
  dropped: p.stateOperators[0].numRowsDroppedByWatermark,
  output: (out.batches.get(p.batchId) ?? []).map(win).join(' '),
}));
console.table(trace);
console.log(`commits/2 holds: ${readFileSync(`${cp}/commits/2`, 'utf8').split('\n')[1]}  → offsets/3 holds batchWatermarkMs ${usedOf(3)} (${hm(usedOf(3))})`);

// %% [markdown]
// Reading the trace:
// - batch 0 sees 12:01..12:04 and runs with no watermark; at its end: 12:04 − 5 min = **11:59**, used from batch 1;
// - batch 2's 12:02 is out of order but **not late**: its window ends 12:05, after the watermark it runs with (11:59);
// - the 12:00–12:05 window is written by batch 5 — a no-data batch — the first to run with a watermark ≥ 12:05;
// - batch 6's 12:03 is **late** (its window ended at 12:05 ≤ 12:07): dropped and counted. Its 12:09 is not the
//   new maximum (12:12 was), so the watermark stays and no no-data batch follows;
// - 12:20 moves it to 12:15, closing two windows at once.
//
// ## Event time vs watermark, plotted
//
// The same figures from progress: each batch's event times (min–max bar, dot at max) and the watermark it
// ran with (the step line). Rows below the line when they arrive are late.

// %%
function plot(rows: typeof trace, progress = query.recentProgress): string {
  const W = 640, H = 260, L = 60, B = 30;
  const times = progress.flatMap((p) => [p.eventTime.min, p.eventTime.max, p.eventTime.watermark].filter((x): x is string => !!x && !x.startsWith('1970')).map((x) => Date.parse(x)));
  const lo = Math.min(...times) - 120_000, hi = Math.max(...times) + 120_000;
  const step = (W - L - 10) / rows.length;
  const x = (b: number): number => L + (b + 0.5) * step;
  const y = (ms: number): number => H - B - ((ms - lo) / (hi - lo)) * (H - B - 10);
  const parts: string[] = [];
  for (let m = Math.ceil(lo / 300_000) * 300_000; m <= hi; m += 300_000) {
    parts.push(`<line x1="${L}" x2="${W - 10}" y1="${y(m)}" y2="${y(m)}" stroke="#eee"/><text x="${L - 6}" y="${y(m) + 4}" font-size="11" text-anchor="end">${hm(m)}</text>`);
  }
  let line = '';
  progress.forEach((p, i) => {
    const wm = Date.parse(p.eventTime.watermark!);
    if (wm > 0) line += `${line ? 'L' : 'M'}${x(i) - step / 2},${y(wm)} L${x(i) + step / 2},${y(wm)} `;
    if (p.eventTime.max) {
      const a = Date.parse(p.eventTime.min!), b = Date.parse(p.eventTime.max);
      parts.push(`<line x1="${x(i)}" x2="${x(i)}" y1="${y(a)}" y2="${y(b)}" stroke="#1f77b4" stroke-width="3"/><circle cx="${x(i)}" cy="${y(b)}" r="4" fill="#1f77b4"/>`);
    }
    parts.push(`<text x="${x(i)}" y="${H - 12}" font-size="11" text-anchor="middle">${p.batchId}</text>`);
  });
  parts.push(`<path d="${line}" fill="none" stroke="#d62728" stroke-width="2"/>`);
  parts.push(`<text x="${L}" y="14" font-size="12" fill="#1f77b4">event time in batch (min–max)</text><text x="${L + 220}" y="14" font-size="12" fill="#d62728">watermark used by the batch</text><text x="${L - 6}" y="${H - 12}" font-size="11" text-anchor="end">batch</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif"><rect width="${W}" height="${H}" fill="white"/>${parts.join('')}</svg>`;
}
const svg = plot(trace);
tslab.display.svg(svg);

// %% [markdown]
// ## Several inputs: whose watermark?
//
// Clicks from the web and from the app arrive on two streams, unioned. Each input has its own
// `withWatermark` (the app's clients buffer offline, so it gets a longer delay) and so its own watermark;
// the query's **global** watermark is their **minimum** by default — the slowest input holds everyone back,
// so none of its rows is dropped because the other one ran ahead. `sluice.sql.streaming.multipleWatermarkPolicy
// = max` follows the fastest input instead: windows close sooner, and the slow input's rows become late sooner.
// (An input that has not sent anything yet counts as 0, the epoch: with `min` it holds the watermark back
// until it speaks. That is Spark 3.5's rule too: its WatermarkTracker puts 0 for an input that has seen no
// data.)
//
// ```python
// # PySpark 3.5: the same union; the policy is a session setting, fixed by the query's checkpoint after its first batch
// spark.conf.set("spark.sql.streaming.multipleWatermarkPolicy", "max")    # Sluice: sluice.sql.streaming.multipleWatermarkPolicy
// both = web.withWatermark("timestamp", "5 minutes").union(app.withWatermark("timestamp", "15 minutes"))
// ```
//
// Sluice's policy is fixed by the checkpoint the same way. It reads only its own `sluice.*` name: setting
// `spark.sql.streaming.multipleWatermarkPolicy` on a Sluice session does nothing.

// %%
async function twoInputs(policy: 'min' | 'max'): Promise<string[]> {
  const session = SluiceSession.builder().appName(`lesson10-${policy}`).getOrCreate();
  session.conf.set('sluice.sql.streaming.multipleWatermarkPolicy', policy);
  const web = session.memoryStream('user_id STRING, timestamp TIMESTAMP');
  const app = session.memoryStream('user_id STRING, timestamp TIMESTAMP');
  const q = await web.toDF().withWatermark('timestamp', '5 minutes')
    .union(app.toDF().withWatermark('timestamp', '15 minutes'))
    .groupBy(window(col('timestamp'), '5 minutes')).agg(count('*').alias('events'))
    .writeStream.format('memory').queryName(`lesson10_${policy}`).outputMode('append')
    .option('checkpointLocation', `checkpoints/lesson10/two-inputs-${policy}`).start();
  web.addData([{ user_id: 'w', timestamp: t('12:20') }]);
  app.addData([{ user_id: 'a', timestamp: t('12:16') }]);
  await q.processAllAvailable();
  app.addData([{ user_id: 'a', timestamp: t('12:12') }]); // the app's stragglers
  await q.processAllAvailable();
  await q.stop();
  const table = session.memoryTable(`lesson10_${policy}`);
  return q.recentProgress.map((p) => `batch ${p.batchId}: ${p.numInputRows} rows, watermark ${hm(p.eventTime.watermark!)}, ` +
    `dropped ${p.stateOperators[0].numRowsDroppedByWatermark}, output ${(table.batches.get(p.batchId) ?? []).map(win).join(' ') || '—'}`);
}
const minTrace = await twoInputs('min');
const maxTrace = await twoInputs('max');
console.log(['policy min (default): web 12:20 − 5 = 12:15, app 12:16 − 15 = 12:01 → 12:01', ...minTrace,
  '', 'policy max: max(12:15, 12:01) → 12:15', ...maxTrace].join('\n'));

// %% [markdown]
// With `min`, the app's 12:12 arrives while the watermark is 12:01: counted. With `max`, the watermark is
// already 12:15 and the 12:10–12:15 window is final: the same row is **dropped**. Each input's own watermark
// is kept in the checkpoint (`operatorWatermarksMs` in `commits/N`), so a restart does not forget that the
// app was behind — Spark keeps these in memory only.

// %% [markdown]
// ## What if there is no watermark?
//
// Then the aggregation has no event time to judge by: append mode is refused (no window would ever be
// final — lesson 04), and in update mode **nothing is ever late and nothing is ever removed**. (A
// `withWatermark` placed *after* the aggregation does not help it either: it marks event time only for the
// operators after it.) Same input, no `withWatermark`, on a stream of its own:

// %%
const unbounded = sluice.memoryStream('user_id STRING, timestamp TIMESTAMP');
const q2 = await unbounded.toDF()
  .groupBy(window(col('timestamp'), '5 minutes')).agg(count('*').alias('events'))
  .writeStream.format('memory').queryName('lesson10_unbounded').outputMode('update')
  .option('checkpointLocation', 'checkpoints/lesson10/unbounded').start();
for (const batch of [['12:01', '12:04'], ['12:07', '12:02'], ['12:12'], ['12:03', '12:09'], ['12:20']]) {
  unbounded.addData(batch.map((x) => ({ user_id: 'u', timestamp: t(x) })));
  await q2.processAllAvailable();
}
const ops = q2.recentProgress.map((p) => p.stateOperators[0]);
console.log('batches:', q2.recentProgress.length, '(no no-data batches: no watermark to move)');
console.log('windows in state after each batch:', ops.map((o) => o.numRowsTotal).join(' → '), '— never removed');
console.log('rows dropped as late:', ops.reduce((n, o) => n + o.numRowsDroppedByWatermark, 0), '— 12:03 was counted into 12:00-12:05 long after');
console.log('eventTime in progress:', JSON.stringify(q2.lastProgress!.eventTime), '(empty: no watermark is tracked)');

// %% [markdown]
// ## Debugging: "the watermark does not move"
//
// Read `lastProgress.eventTime` (PySpark: `q.lastProgress["eventTime"]`, a dict; Spark leaves the key out when
// the query has no watermark, where Sluice shows `{}`). `max` is the newest event time of the **last batch
// only**; `watermark` is the one the batch used. Typical causes of a stuck watermark:
// - **no new data**: the watermark moves only when a batch sees a later event time (a quiet source freezes it;
//   with several inputs and the default `min` policy, the slowest input decides — see above);
// - **event times in the future or far in the past**: one event dated next year moves the watermark a year
//   ahead and every later row is late; check `eventTime.max` against the wall clock;
// - **the wrong column**: event time parsed as a string, or the Kafka `timestamp` (arrival) instead of the
//   event's own field.

// %%
const lp = query.lastProgress!;
console.log(JSON.stringify({ batchId: lp.batchId, numInputRows: lp.numInputRows, eventTime: lp.eventTime }, null, 1));

// %% [markdown]
// ## Check

// %%
assert.deepEqual(trace.map((r) => [r.batch, r.rows, r.used, r.next, r.dropped, r.output]), [
  [0, 2, '—', '11:59', 0, ''],
  [1, 0, '11:59', '11:59', 0, ''],
  [2, 2, '11:59', '12:02', 0, ''],
  [3, 0, '12:02', '12:02', 0, ''],
  [4, 1, '12:02', '12:07', 0, ''],
  [5, 0, '12:07', '12:07', 0, '12:00-12:05:3'],
  [6, 2, '12:07', '12:07', 1, ''],
  [7, 1, '12:07', '12:15', 0, ''],
  [8, 0, '12:15', '12:15', 0, '12:05-12:10:2 12:10-12:15:1'],
]);
assert.equal(hm(usedOf(3)), '12:02');
assert.deepEqual(minTrace, [
  'batch 0: 2 rows, watermark —, dropped 0, output —',
  'batch 1: 0 rows, watermark 12:01, dropped 0, output —',
  'batch 2: 1 rows, watermark 12:01, dropped 0, output —',
]);
assert.deepEqual(maxTrace, [
  'batch 0: 2 rows, watermark —, dropped 0, output —',
  'batch 1: 0 rows, watermark 12:15, dropped 0, output —',
  'batch 2: 1 rows, watermark 12:15, dropped 1, output —',
]);
assert.match(svg, /^<svg[\s\S]*<path d="M/);
assert.deepEqual(ops.map((o) => o.numRowsTotal), [1, 2, 3, 3, 4]);
assert.equal(ops.reduce((n, o) => n + o.numRowsDroppedByWatermark, 0), 0);
await query.stop();
await q2.stop();
console.log('lesson 10 checks passed');
