// %% [markdown]
// # Lesson 11 — Late events
//
// `withWatermark` alone drops nothing. It tells the **stateful operators** after it — aggregations,
// deduplication, stream-stream joins — how old an event time may be; it is they that drop a row that comes
// too late for its window, key or join bound, and count it. A query with no stateful operator keeps no
// state and drops nothing, with or without a watermark (shown first, below).
//
// Spark drops late rows silently: you only see a count. Sluice can also write them to a **late-events
// topic** — a Sluice feature, Spark has no such option — with the watermark that was in force and the
// operator that dropped them, so they can be counted, inspected and **replayed** into a correction, without
// keeping a copy of every event.
//
// This lesson reads click events from Kafka (JSON), counts them per 5-minute window with a 5-minute
// watermark in append mode, writes the counts to Kafka, and routes late rows to `lesson11-late`.

// %%
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import {
  SluiceSession, KafkaAdmin, AckedProducer, connection, readTopic, col, count, window, from_json, to_json, struct, type Row,
} from 'sluice';

const conn = connection();
const admin = new KafkaAdmin(conn.kafka);
for (const topic of ['lesson11-clicks', 'lesson11-counts', 'lesson11-late']) await admin.recreateTopic(topic, 1);
rmSync('checkpoints/lesson11', { recursive: true, force: true });
const sluice = SluiceSession.builder().appName('lesson11').getOrCreate();
const t = (hhmm: string): string => `2025-08-22T${hhmm}:00.000Z`;
/** hh:mm, or — for the epoch (the watermark before any data). */
const hm = (d: Date | string): string => (new Date(d).getTime() === 0 ? '—' : new Date(d).toISOString().slice(11, 16));
const producer = new AckedProducer(conn.kafka);
/** Produces one click per event time, keyed by user, and waits for the broker's acknowledgement. */
async function clicks(...events: Array<[user: string, time: string]>): Promise<void> {
  await producer.send(events.map(([user, time]) => ({ topic: 'lesson11-clicks', key: Buffer.from(user), value: Buffer.from(JSON.stringify({ user_id: user, timestamp: t(time) })) })));
  await producer.flush();
}
console.log('topics recreated');

// %% [markdown]
// ## First: does `withWatermark` drop late rows by itself?
//
// No. A query that only reads, parses, filters or projects has no state: each row goes through on its own,
// and nothing in it asks how old the row is. `withWatermark` on such a query still computes a watermark
// (progress shows it), but no operator uses it. Here: a row at 12:20 moves the watermark to 12:15, then a
// row at 12:01 arrives — 14 minutes behind it. It is written like any other, nothing is counted as dropped,
// and progress lists no state operators at all. (A memory stream and a memory sink, as in lesson 10; Spark
// behaves the same.)

// %%
const raw = sluice.memoryStream('user_id STRING, timestamp TIMESTAMP');
const passThrough = await raw.toDF().withWatermark('timestamp', '5 minutes')
  .writeStream.format('memory').queryName('lesson11_stateless').outputMode('append')
  .option('checkpointLocation', 'checkpoints/lesson11/stateless').start();
raw.addData([{ user_id: 'ada', timestamp: new Date(t('12:20')) }]);
await passThrough.processAllAvailable();
raw.addData([{ user_id: 'bob', timestamp: new Date(t('12:01')) }]); // behind the watermark (12:15)
await passThrough.processAllAvailable();
const statelessTrace = passThrough.recentProgress.map((p) =>
  `batch ${p.batchId}: ${p.numInputRows} row, watermark ${hm(p.eventTime.watermark!)}, stateOperators ${JSON.stringify(p.stateOperators)}`);
const passedThrough = sluice.memoryTable('lesson11_stateless').rows.map((r: Row) => `${r.user_id} ${hm(r.timestamp as Date)}`);
console.log(statelessTrace.join('\n'));
console.log('written:', passedThrough);
await passThrough.stop();

// %% [markdown]
// So the rows a watermark "drops" are the ones a stateful operator refuses. The query below has one: the
// count per window.
//
// And a second `withWatermark` does not replace the first. A Spark 3.5 query whose stream has two fails at its
// first batch (`AnalysisException: Redefining watermark is disallowed`) — even with nothing stateful between
// them: Spark's own test for that message chains `withWatermark(…).select("*").withWatermark(…)`.
// Sluice refuses it too, and earlier: `start()` fails ("withWatermark('…', …) on a stream that already has a
// watermark is not supported"), wherever the second one is. Set the watermark once, where the event time is parsed.
//
// ## The query
//
// `option('lateEvents.topic', …)` is all it takes. The late rows are written as JSON (the row as it reached
// the aggregation), in the same batch that dropped them and before that batch commits — like dead letters,
// at-least-once.
//
// **In PySpark 3.5** the same query, without the late-events topic (Spark has no such option):
//
// ```python
// from pyspark.sql.functions import col, count, from_json, struct, to_json, window
// counts = (spark.readStream.format("kafka")
//           .option("kafka.bootstrap.servers", "localhost:9092")
//           .option("subscribe", "lesson11-clicks")
//           .option("startingOffsets", "earliest")         # a new query only; after that the checkpoint decides
//           .load()
//           .select(from_json(col("value").cast("string"), "user_id STRING, timestamp TIMESTAMP").alias("e")).select("e.*")
//           .withWatermark("timestamp", "5 minutes")
//           .groupBy(window(col("timestamp"), "5 minutes")).agg(count("*").alias("clicks"))
//           .select(to_json(struct(col("window.start").alias("start"), col("window.end").alias("end"), "clicks")).alias("value")))
// query = (counts.writeStream.format("kafka")
//          .option("kafka.bootstrap.servers", "localhost:9092")
//          .option("topic", "lesson11-counts")
//          .option("checkpointLocation", "checkpoints/lesson11/counts")
//          .outputMode("append")
//          .start())
// ```

// %%
const query = await sluice.readStream.format('kafka').options(conn.kafkaOptions)
  .option('subscribe', 'lesson11-clicks').option('startingOffsets', 'earliest').load()
  .select(from_json(col('value').cast('string'), 'user_id STRING, timestamp TIMESTAMP').alias('e')).select('e.*')
  .withWatermark('timestamp', '5 minutes')
  .groupBy(window(col('timestamp'), '5 minutes')).agg(count('*').alias('clicks'))
  .select(to_json(struct(col('window.start').alias('start'), col('window.end').alias('end'), 'clicks')).alias('value'))
  .writeStream.format('kafka').options(conn.kafkaOptions)
  .option('topic', 'lesson11-counts')
  .option('lateEvents.topic', 'lesson11-late')
  .option('checkpointLocation', 'checkpoints/lesson11/counts')
  .outputMode('append').start();

await clicks(['ada', '12:01'], ['bob', '12:02'], ['cy', '12:06']);
await query.processAllAvailable();
await clicks(['dee', '12:12']); // watermark → 12:07: window 12:00-12:05 closes
await query.processAllAvailable();
await clicks(['eve', '12:03'], ['fay', '12:04'], ['gus', '12:08']); // 12:03 and 12:04 are late
await query.processAllAvailable();
console.log(query.recentProgress.map((p) =>
  `batch ${p.batchId}: ${p.numInputRows} rows, watermark ${hm(p.eventTime.watermark!)}, dropped ${p.stateOperators[0].numRowsDroppedByWatermark}, written ${p.sink.numOutputRows}`).join('\n'));

// %% [markdown]
// ## What reached the late-events topic
//
// Each record says when and why it was dropped: the watermark at drop time (`sluice.late.watermark`), the
// stateful operator, the query and the batch.

// %%
const headersOf = (r: { headers?: Array<Record<string, Buffer | string>> }): Record<string, string> =>
  Object.assign({}, ...(r.headers ?? []).map((h) => Object.fromEntries(Object.entries(h).map(([k, v]) => [k, v.toString()]))));
const late = await readTopic(conn.kafka, 'lesson11-late');
console.log(late.map((r) => {
  const h = headersOf(r);
  return `${r.value!.toString()}  watermark ${hm(h['sluice.late.watermark'])}, ${h['sluice.late.operator']}, batch ${h['sluice.batch.id']}`;
}).join('\n'));
const counts = (await readTopic(conn.kafka, 'lesson11-counts')).map((r) => r.value!.toString());
console.log('counts written:', counts);

// %% [markdown]
// ## Count them
//
// Both engines report `numRowsDroppedByWatermark` per stateful operator in each batch's progress (PySpark:
// `q.lastProgress["stateOperators"][0]["numRowsDroppedByWatermark"]`), but they count different things:
// - **Sluice counts late input rows**: here 2 in batch 4 (eve 12:03 and fay 12:04), the same rows the
//   late-events topic holds.
// - **Spark counts after its partial aggregation** has merged the batch's rows of each window, and checks
//   lateness on those merged rows (apache/spark#28607: the count "might be reduced"). Eve's and fay's rows
//   both belong to 12:00–12:05, so Spark's progress reports **1** for the same batch.
//
// Sluice keeps the input-row count on purpose: it is what "dropped rows" means to a reader, it does not
// depend on how a batch's rows happen to be grouped, and it matches the late-events topic record for record
// (docs/decisions.md, "numRowsDroppedByWatermark counts input rows"). So a Sluice number can be larger than
// Spark's for the same input, never smaller.

// %%
const droppedTotal = query.recentProgress.reduce((n, p) => n + p.stateOperators[0].numRowsDroppedByWatermark, 0);
console.log(`dropped by the watermark (Sluice's count, one per input row): ${droppedTotal}; records in lesson11-late: ${late.length}`);

// %% [markdown]
// ## Is it wise to keep all events without a watermark just to find the late ones?
//
// No. Without a watermark nothing is ever late — and nothing is ever removed: every window stays in state
// forever (and every event, if you keep them to compare later). With the watermark, the state holds only the
// windows still open, and the late-events topic holds only the late rows. The bound, in this run:

// %%
const inputTotal = query.recentProgress.reduce((n, p) => n + p.numInputRows, 0);
console.log({
  eventsRead: inputTotal,
  lateRowsKept: late.length,
  windowsInStateNow: query.lastProgress!.stateOperators[0].numRowsTotal,
  windowsClosedAndRemoved: query.recentProgress.reduce((n, p) => n + p.stateOperators[0].numRowsRemoved, 0),
});

// %% [markdown]
// ## Replay them
//
// The late topic is an ordinary Kafka topic: a second query (here `availableNow`: read what is there, then
// stop) turns late rows into per-window **corrections**, which a consumer adds to the on-time counts. This
// query has no watermark: the late rows are late by definition, and its state is as small as the late data.
// PySpark 3.5 writes the trigger as `.trigger(availableNow=True)` and waits with `query.awaitTermination()`.

// %%
const corrections = await sluice.readStream.format('kafka').options(conn.kafkaOptions)
  .option('subscribe', 'lesson11-late').option('startingOffsets', 'earliest').load()
  .select(from_json(col('value').cast('string'), 'user_id STRING, timestamp TIMESTAMP').alias('e')).select('e.*')
  .groupBy(window(col('timestamp'), '5 minutes')).agg(count('*').alias('late_clicks'))
  .writeStream.format('memory').queryName('lesson11_corrections').outputMode('complete')
  .option('checkpointLocation', 'checkpoints/lesson11/corrections')
  .trigger({ availableNow: true }).start();
await corrections.awaitTermination();
const onTime = new Map(counts.map((c) => JSON.parse(c) as { start: string; clicks: number }).map((c) => [hm(c.start), c.clicks]));
const fixes = sluice.memoryTable('lesson11_corrections').rows.map((r: Row) => {
  const start = hm((r.window as { start: Date }).start);
  return { window: start, onTime: onTime.get(start) ?? 0, late: r.late_clicks as number, corrected: (onTime.get(start) ?? 0) + (r.late_clicks as number) };
});
console.table(fixes);

// %% [markdown]
// ## Late only because a partition is behind
//
// A watermark is one number for the whole query: the **largest** event time seen, across every partition,
// minus the delay. When one partition's events are read ahead of another's, the slow partition's rows are
// compared with the fast one's time, and dropped as late though they came in order. `maxOffsetsPerTrigger`
// makes this happen by design: it splits each batch's limit among partitions **in proportion to their
// backlog** (Spark's rule, which Sluice keeps), so a partition with 4× the backlog advances 4× as many
// minutes per batch. A probe that caught up a backlog this way saw 21.6% of its rows dropped, while 5% were
// truly late. Spark 3.5 does exactly the same.
//
// Below, partition 0 holds one click a minute from 12:00 to 12:39, partition 1 from 12:00 to 12:09 — each in
// order, nothing truly late. With `maxOffsetsPerTrigger` 10, each batch takes 8 clicks (8 minutes) from
// partition 0 and 2 from partition 1. By hand, with a 5-minute delay (rows are judged by the previous batch's
// watermark):
//
// | batch | partition 0 | partition 1 | late if window end ≤ | dropped |
// |---|---|---|---|---|
// | 0 | 12:00–12:07 | 12:00–12:01 | — | 0 |
// | 1 | 12:08–12:15 | 12:02–12:03 | — (batch 0 ran with none) | 0 |
// | 2 | 12:16–12:23 | 12:04–12:05 | 12:02 | 0 |
// | 3 | 12:24–12:31 | 12:06–12:07 | 12:10 | 2 (window 12:05–12:10) |
// | 4 | 12:32–12:39 | 12:08–12:09 | 12:18 | 2 |
//
// The remedies, in order of preference:
// - **A delay that covers the drift**, not only real lateness: here 30 minutes drops nothing. The drift is
//   bounded by how unequal the backlogs are, times the batches a catch-up takes.
// - **No `maxOffsetsPerTrigger` while catching up** (or one large enough for the backlog): one batch reads
//   every partition to its end, so no partition's time runs ahead inside the query.
// - A per-partition watermark (Flink's per-split watermarks, the minimum over partitions) would avoid it, but
//   Spark has none, and a query would then stall on an idle partition; Sluice does not build one
//   (docs/reliability.md).

// %%
await admin.recreateTopic('lesson11-drift', 2);
const minute = (i: number): string => `12:${String(i).padStart(2, '0')}`;
const inOrder = (partition: number, minutes: number) => Array.from({ length: minutes }, (_, i) => ({
  topic: 'lesson11-drift', partition, key: Buffer.from(`p${partition}`),
  value: Buffer.from(JSON.stringify({ user_id: `p${partition}`, timestamp: t(minute(i)) })),
}));
await producer.send([...inOrder(0, 40), ...inOrder(1, 10)]);
await producer.flush();
/** Runs the windowed count over the whole topic, 10 offsets per batch; returns the rows dropped per batch. */
async function catchUp(delay: string, name: string): Promise<number[]> {
  const q = await sluice.readStream.format('kafka').options(conn.kafkaOptions)
    .option('subscribe', 'lesson11-drift').option('startingOffsets', 'earliest').option('maxOffsetsPerTrigger', 10).load()
    .select(from_json(col('value').cast('string'), 'user_id STRING, timestamp TIMESTAMP').alias('e')).select('e.*')
    .withWatermark('timestamp', delay)
    .groupBy(window(col('timestamp'), '5 minutes')).agg(count('*').alias('clicks'))
    .writeStream.format('memory').queryName(name).outputMode('append')
    .option('checkpointLocation', `checkpoints/lesson11/${name}`)
    .trigger({ availableNow: true }).start();
  await q.awaitTermination();
  return q.recentProgress.filter((p) => p.numInputRows > 0).map((p) => p.stateOperators[0].numRowsDroppedByWatermark);
}
const drift5 = await catchUp('5 minutes', 'lesson11_drift5');
const drift30 = await catchUp('30 minutes', 'lesson11_drift30');
console.log(`dropped per batch, 5-minute delay:  ${JSON.stringify(drift5)} (none of the 50 clicks was truly late)`);
console.log(`dropped per batch, 30-minute delay: ${JSON.stringify(drift30)}`);

// %% [markdown]
// ## Check
// Against what the input gives by hand: the stateless query wrote both rows and dropped nothing; the counts
// per batch; two late rows, eve's and fay's. `droppedTotal` is Sluice's count (one per late input row);
// Spark's progress would show 1 for batch 4. The catch-up drops what the drift table says, and nothing with
// a delay that covers the drift.

// %%
assert.deepEqual(statelessTrace, [
  'batch 0: 1 row, watermark —, stateOperators []',
  'batch 1: 1 row, watermark 12:15, stateOperators []', // 12:20 − 5 minutes; no no-data batch: nothing is stateful
]);
assert.deepEqual(passedThrough, ['ada 12:20', 'bob 12:01']); // the 12:01 row is written, not dropped
assert.deepEqual(query.recentProgress.map((p) => [p.batchId, p.numInputRows, p.stateOperators[0].numRowsDroppedByWatermark, p.sink.numOutputRows]), [
  [0, 3, 0, 0], // 12:01 12:02 12:06 — watermark after: 12:01
  [1, 0, 0, 0], // no-data batch with 12:01: nothing final
  [2, 1, 0, 0], // 12:12 — watermark after: 12:07
  [3, 0, 0, 1], // no-data batch with 12:07: 12:00-12:05 (2 clicks) written
  [4, 3, 2, 0], // 12:03, 12:04 late (12:05 <= 12:07); 12:08 counted in 12:05-12:10
]);
assert.deepEqual(counts.map((c) => JSON.parse(c)), [{ start: t('12:00'), end: t('12:05'), clicks: 2 }]);
assert.deepEqual(late.map((r) => JSON.parse(r.value!.toString())), [{ user_id: 'eve', timestamp: t('12:03') }, { user_id: 'fay', timestamp: t('12:04') }]);
assert.ok(late.every((r) => headersOf(r)['sluice.late.watermark'] === t('12:07')));
assert.equal(droppedTotal, 2);           // Sluice's count: eve 12:03 and fay 12:04, one per input row
assert.equal(droppedTotal, late.length); // and the topic holds exactly those rows
assert.equal(query.lastProgress!.stateOperators[0].numRowsTotal, 2); // 12:05-12:10 and 12:10-12:15 still open
assert.deepEqual(fixes, [{ window: '12:00', onTime: 2, late: 2, corrected: 4 }]);
assert.deepEqual(drift5, [0, 0, 0, 2, 2]);  // the table above: partition 1's last 4 clicks, all in order
assert.deepEqual(drift30, [0, 0, 0, 0, 0]); // a delay that covers the drift drops nothing
await query.stop();
await producer.close();
console.log('lesson 11 checks passed');
