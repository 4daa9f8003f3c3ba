// %% [markdown]
// # Lesson 11 — Late events
//
// A watermark drops rows that arrive after their window was closed. Spark drops them silently (you only
// see a count). Sluice can write them to a **late-events topic** instead — with the watermark that was in
// force and the operator that dropped them — so they can be counted, inspected and **replayed** into a
// correction, without keeping a copy of every event.
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
const hm = (d: Date | string): string => new Date(d).toISOString().slice(11, 16);
const producer = new AckedProducer(conn.kafka);
/** Produces one click per event time, keyed by user, and waits for the broker's acknowledgement. */
async function clicks(...events: Array<[user: string, time: string]>): Promise<void> {
  await producer.send(events.map(([user, time]) => ({ topic: 'lesson11-clicks', key: Buffer.from(user), value: Buffer.from(JSON.stringify({ user_id: user, timestamp: t(time) })) })));
  await producer.flush();
}
console.log('topics recreated');

// %% [markdown]
// ## The query
//
// `option('lateEvents.topic', …)` is all it takes. The late rows are written as JSON (the row as it reached
// the aggregation), in the same batch that dropped them and before that batch commits — like dead letters,
// at-least-once.

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
  `batch ${p.batchId}: ${p.numInputRows} rows, watermark ${p.eventTime.watermark!.startsWith('1970') ? '—' : hm(p.eventTime.watermark!)}, dropped ${p.stateOperators[0].numRowsDroppedByWatermark}, written ${p.sink.numOutputRows}`).join('\n'));

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
// In Sluice, `numRowsDroppedByWatermark` in each batch's progress counts the same rows the topic holds: one per
// late input row. **Spark counts differently:** it drops late rows after partial aggregation, so its number is
// one per late *group* per input partition — two late rows of one window in one Kafka partition count as 1 in
// Spark's progress. Sluice keeps the input-row count on purpose (it does not depend on how the input is
// partitioned, and it matches the late-events topic); docs/decisions.md has the reasoning. The late-events
// topic itself is a Sluice feature: Spark has no such option.

// %%
const droppedTotal = query.recentProgress.reduce((n, p) => n + p.stateOperators[0].numRowsDroppedByWatermark, 0);
console.log(`dropped by the watermark (progress): ${droppedTotal}; records in lesson11-late: ${late.length}`);

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
// ## Check

// %%
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
assert.equal(droppedTotal, late.length);
assert.equal(query.lastProgress!.stateOperators[0].numRowsTotal, 2); // 12:05-12:10 and 12:10-12:15 still open
assert.deepEqual(fixes, [{ window: '12:00', onTime: 2, late: 2, corrected: 4 }]);
await query.stop();
await producer.close();
console.log('lesson 11 checks passed');
