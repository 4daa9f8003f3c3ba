// %% [markdown]
// # Lesson 04 — Event time, windows, watermarks, output modes
//
// Count events per 10-minute window of **event time** (when the event happened, not when it arrived),
// with a 10-minute watermark, and watch append, update and complete mode handle the same input batch by
// batch. The input is a memory stream, so every batch is exactly the rows we add — the same query reads
// Kafka unchanged (lesson 11 does).
//
// The rules (Spark's):
// - **watermark** = max event time seen − delay, computed at the end of a batch, used from the next batch;
//   it never goes back;
// - a window is **final** when the watermark reaches its end; rows for final windows are **late**: dropped
//   and counted;
// - **append** writes a window once, when final; **update** writes windows that changed in this batch;
//   **complete** writes every window, every batch, and keeps them all.
//
// **In PySpark 3.5** the query reads the same (PySpark has no memory stream: there `clicks` would be a Kafka
// stream parsed with `from_json`, as in lesson 11):
//
// ```python
// from pyspark.sql.functions import col, count, window
// per_window = (clicks.withWatermark("timestamp", "10 minutes")
//               .groupBy(window(col("timestamp"), "10 minutes"))
//               .agg(count("*").alias("events")))
// q = (per_window.writeStream.format("memory").queryName("lesson04_append")
//      .outputMode("append")                      # or "update", "complete"
//      .option("checkpointLocation", "checkpoints/lesson04/append")
//      .trigger(processingTime="10 seconds")       # optional; without it (as here) a batch starts when one ends
//      .start())
// q.processAllAvailable()
// spark.table("lesson04_append").show(truncate=False)   # the memory sink's table: every row written so far
// ```
//
// Sluice differs in two small ways used below: its memory table also keeps each batch's rows apart
// (`memoryTable(name).batches`; in Spark, use `foreachBatch` to see them), and it writes a batch's rows
// ordered by window (Spark gives no order).

// %%
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { SluiceSession, col, count, window, type DataFrame, type StreamingQuery } from 'sluice';

rmSync('checkpoints/lesson04', { recursive: true, force: true });
const sluice = SluiceSession.builder().appName('lesson04').getOrCreate();
const t = (hhmm: string): Date => new Date(`2025-08-22T${hhmm}:00Z`);
/** hh:mm, or — for the epoch (the watermark before any data: progress shows 1970-01-01T00:00:00.000Z). */
const hm = (d: Date): string => (d.getTime() === 0 ? '—' : d.toISOString().slice(11, 16));
const clicks = sluice.memoryStream('user_id STRING, timestamp TIMESTAMP');
const perWindow = (df: DataFrame): DataFrame =>
  df.withWatermark('timestamp', '10 minutes').groupBy(window(col('timestamp'), '10 minutes')).agg(count('*').alias('events'));

const queries: Record<string, StreamingQuery> = {};
for (const mode of ['append', 'update', 'complete'] as const) {
  queries[mode] = await perWindow(clicks.toDF()).writeStream.format('memory').queryName(`lesson04_${mode}`).outputMode(mode)
    .option('checkpointLocation', `checkpoints/lesson04/${mode}`).start();
}
const tables = Object.fromEntries(Object.keys(queries).map((m) => [m, sluice.memoryTable(`lesson04_${m}`)]));
const show = (rows: Array<Record<string, unknown>> = []): string =>
  rows.map((r) => { const w = r.window as { start: Date; end: Date }; return `${hm(w.start)}-${hm(w.end)}:${r.events}`; }).join(' ') || '—';
const seen = new Set<string>();
/** Adds rows, waits for every batch they cause, prints what each mode wrote per batch. */
async function step(rows: Array<{ user_id: string; timestamp: Date }>): Promise<void> {
  clicks.addData(rows);
  for (const q of Object.values(queries)) await q.processAllAvailable();
  for (const p of queries.update.recentProgress) {
    if (seen.has(`u${p.batchId}`)) continue;
    seen.add(`u${p.batchId}`);
    console.log(`batch ${p.batchId} (${p.numInputRows} rows, watermark ${hm(new Date(p.eventTime.watermark!))})  append: ${show(tables.append.batches.get(p.batchId))}  |  update: ${show(tables.update.batches.get(p.batchId))}`);
  }
  const c = queries.complete.lastProgress!;
  console.log(`   complete after batch ${c.batchId}: ${show(tables.complete.batches.get(c.batchId))}`);
}

// %% [markdown]
// ## Batch by batch
//
// 12:07 and 12:08 arrive. Update writes the window **at once** — it does not wait 10 minutes. Append
// writes nothing: the window 12:00–12:10 is not final. After the batch, the watermark becomes
// 12:08 − 10 min = 11:58; the engine runs a **no-data batch** to apply it (nothing is final yet).

// %%
await step([{ user_id: 'ada', timestamp: t('12:07') }, { user_id: 'bob', timestamp: t('12:08') }]);

// %% [markdown]
// The first batch shows the watermark as "—": there is none yet (progress reports the epoch,
// `1970-01-01T00:00:00.000Z`). And complete mode's batch ids run behind the other two from here on: **complete
// mode never asks for a no-data batch**. It writes every window every batch and removes none, so a moved
// watermark gives it nothing to emit or evict; Spark's aggregation asks for a no-data batch only in append and
// update mode. Complete runs one batch per `addData` (0–3), append and update seven (0–6).
//
// 12:14 opens 12:10–12:20. Then 12:21 and an **out-of-order** 12:01: not late (its window ends 12:10, after
// the watermark 12:04), so 12:00–12:10 now counts 3 — update **writes that window again** with the new
// count. The watermark moves to 12:21 − 10 = 12:11 ≥ 12:10: in the no-data batch that follows, **append
// writes 12:00–12:10 — once, final** — and update drops it from state without writing.

// %%
await step([{ user_id: 'cy', timestamp: t('12:14') }]);
await step([{ user_id: 'dee', timestamp: t('12:21') }, { user_id: 'ada', timestamp: t('12:01') }]);

// %% [markdown]
// 12:05 arrives now: its window is final (12:10 ≤ watermark 12:11). Append and update **drop it and count
// it**; complete mode keeps every window forever, so it still counts it.

// %%
await step([{ user_id: 'eve', timestamp: t('12:05') }]);
console.log('dropped by the watermark (update):', queries.update.lastProgress!.stateOperators[0].numRowsDroppedByWatermark);

// %% [markdown]
// ## Why do I see no output in append mode?
//
// Because no window is final yet. Progress says why: the watermark (used by this batch) has not reached
// the end of the open windows.
//
// ```python
// p = q.lastProgress                                   # PySpark 3.5: a dict
// p["eventTime"]                                       # {'avg': ..., 'max': ..., 'min': ..., 'watermark': '2025-08-22T12:11:00.000Z'}
// p["stateOperators"][0]["numRowsTotal"]               # windows still in state
// p["stateOperators"][0]["numRowsDroppedByWatermark"]  # late rows dropped in this batch (Spark counts them after
//                                                      # merging a batch's rows per window; lesson 11)
// ```

// %%
const ap = queries.append.lastProgress!;
console.log({ batch: ap.batchId, eventTime: ap.eventTime, openWindows: ap.stateOperators[0].numRowsTotal });
console.log('open windows end at 12:20 and 12:30; the watermark must reach them — an event at 12:30 or later moves it to 12:20');

// %% [markdown]
// ## Sliding windows
//
// `window(col, '10 minutes', '5 minutes')`: windows start every 5 minutes and last 10, so each event
// counts in two windows. PySpark: `window(col("ts"), "10 minutes", "5 minutes")`.

// %%
const sliding = await sluice.createDataFrame(
  [{ ts: t('12:07') }, { ts: t('12:13') }, { ts: t('12:16') }],
  'ts TIMESTAMP',
).groupBy(window(col('ts'), '10 minutes', '5 minutes')).agg(count('*').alias('events')).collect();
console.log(show(sliding.map((r) => ({ window: r.window, events: r.events }))));

// %% [markdown]
// ## Session windows
//
// `session_window(col, gap)`: a user's session lasts while events keep coming less than `gap` apart. Each
// event opens [t, t + gap); sessions of the same key that overlap or touch merge. So a session's length
// depends on the data — here ada's first session grows to 12:11 because 12:03 and 12:06 each arrive within
// 5 minutes of the one before. On a stream, append mode writes a session once the watermark passes its
// end; update mode is refused (as in Spark): a merged session replaces two earlier rows, which an upsert by
// key cannot retract. PySpark: `from pyspark.sql.functions import session_window`, then
// `groupBy(col("user_id"), session_window(col("ts"), "5 minutes"))`.

// %%
import { session_window } from 'sluice';
const sessions = await sluice.createDataFrame(
  [
    { user_id: 'ada', ts: t('12:00') }, { user_id: 'ada', ts: t('12:03') }, { user_id: 'ada', ts: t('12:06') },
    { user_id: 'ada', ts: t('12:20') }, { user_id: 'bob', ts: t('12:02') },
  ],
  'user_id STRING, ts TIMESTAMP',
).groupBy(col('user_id'), session_window(col('ts'), '5 minutes')).agg(count('*').alias('events')).collect();
const showSession = (r: Record<string, unknown>): string => {
  const s = r.session_window as { start: Date; end: Date };
  return `${r.user_id} ${hm(s.start)}-${hm(s.end)}:${r.events}`;
};
console.log(sessions.map(showSession).join('\n'));

// %% [markdown]
// ## Must the watermark column be in the groupBy?
//
// No — a query may set a watermark and group by something else. But then **this aggregation** cannot use
// it: no group ever becomes final, so append mode is refused, and update mode keeps every group forever.
// "If I don't group by the watermark column the watermark is useless" is therefore **true for that
// aggregation** (no late-row dropping, no state cleanup) — and **false in general**: the watermark is still
// computed (see progress), and operators that key on event time — deduplication, stream-stream joins —
// use it. Spark refuses the append query the same way, at `start()` (an `AnalysisException`: "Append output
// mode not supported when there are streaming aggregations … without watermark"); the wording below is Sluice's.

// %%
const byUser = clicks.toDF().withWatermark('timestamp', '10 minutes').groupBy('user_id').agg(count('*').alias('events'));
try {
  await byUser.writeStream.format('memory').queryName('lesson04_refused').outputMode('append').start();
} catch (e) {
  console.log((e as Error).message);
}
const perUser = await byUser.writeStream.format('memory').queryName('lesson04_by_user').outputMode('update').option('checkpointLocation', 'checkpoints/lesson04/by-user').start();
await perUser.processAllAvailable();
console.log('watermark computed:', perUser.lastProgress!.eventTime.watermark, '— users in state:', perUser.lastProgress!.stateOperators[0].numRowsTotal, '(never evicted)');
await perUser.stop();

// %% [markdown]
// ## Check
// The outputs above, asserted against what the input gives by hand: the watermark each batch ran with is
// none, then max event time − 10 minutes (12:08 → 11:58, 12:14 → 12:04, 12:21 → 12:11; 12:05 moves nothing),
// and complete mode ran one batch per `addData`.

// %%
const rowsOf = (m: string) => [...tables[m].batches.entries()].filter(([, r]) => r.length).map(([b, r]) => `${b}: ${show(r)}`);
assert.deepEqual(rowsOf('append'), ['5: 12:00-12:10:3']);
assert.deepEqual(rowsOf('update'), ['0: 12:00-12:10:2', '2: 12:10-12:20:1', '4: 12:00-12:10:3 12:20-12:30:1']);
assert.equal(show(tables.complete.rows.slice(-4)), '12:00-12:10:4 12:10-12:20:1 12:20-12:30:1');
assert.equal(queries.update.lastProgress!.stateOperators[0].numRowsDroppedByWatermark, 1);
assert.deepEqual(queries.update.recentProgress.map((p) => hm(new Date(p.eventTime.watermark!))), ['—', '11:58', '11:58', '12:04', '12:04', '12:11', '12:11']);
assert.deepEqual(queries.complete.recentProgress.map((p) => `${p.batchId}:${p.numInputRows}`), ['0:2', '1:1', '2:2', '3:1']);
assert.equal(show(sliding.map((r) => ({ window: r.window, events: r.events }))), '12:00-12:10:1 12:05-12:15:2 12:10-12:20:2 12:15-12:25:1');
assert.deepEqual(sessions.map(showSession), ['ada 12:00-12:11:3', 'ada 12:20-12:25:1', 'bob 12:02-12:07:1']);
for (const q of Object.values(queries)) await q.stop();
console.log('lesson 04 checks passed');
