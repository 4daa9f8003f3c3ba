// %% [markdown]
// # Lesson 01 — First pipeline: Kafka → schema → transform → Kafka
//
// Read `user-events`, parse each JSON value with a **declared schema**, flatten it, filter, derive
// columns, and write JSON to `processed-user-events` — with a console sink beside it for debugging.
// Then look at a running query: its status, its progress, and how to stop it.

// %%
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import {
  SluiceSession, KafkaAdmin, connection, readTopic, produceEvents, AckedProducer, sampleEvents,
  col, from_json, to_json, struct, hour, to_date, when, lit,
} from 'sluice';

const conn = connection();
const admin = new KafkaAdmin(conn.kafka);
await admin.recreateTopic('lesson01-user-events', 3);
await admin.recreateTopic('lesson01-processed-user-events', 3);
rmSync('checkpoints/lesson01', { recursive: true, force: true });

// The five sample events, then 45 generated ones: all JSON, keyed by user.
const p = new AckedProducer(conn.kafka);
await p.send(sampleEvents().map((e) => ({ topic: 'lesson01-user-events', key: Buffer.from(e.user_id), value: Buffer.from(JSON.stringify({ ...e, timestamp: new Date(e.timestamp).toISOString() })) })));
await p.flush();
await p.close();
await produceEvents(45, { topic: 'lesson01-user-events', kafka: conn.kafka, format: 'json', seed: 7 });
const sluice = SluiceSession.builder().appName('lesson01').getOrCreate();

// %% [markdown]
// ## The source and its options
//
// | option | what it does |
// |---|---|
// | `kafka.bootstrap.servers` | where the brokers are; any `kafka.*` option goes to the Kafka client (security settings too) |
// | `subscribe` | the topic(s) to read (`subscribePattern` takes a regex, `assign` exact partitions) |
// | `startingOffsets` | where a **new** query starts: `earliest`, `latest` (the default) or JSON per partition. Once the query has a checkpoint, it is ignored: offsets come from the checkpoint |
// | `failOnDataLoss` | `true` (default): stop if records were deleted (retention) before the query read them; `false`: log and skip ahead |
// | `maxOffsetsPerTrigger` | at most this many records per micro-batch |
//
// There is no consumer-group offset to manage: like Spark, Sluice keeps offsets in the checkpoint and
// commits nothing to the group. The Kafka source gives binary `key` and `value` plus metadata columns:

// %%
const raw = connection().kafkaOptions;
const source = sluice.readStream.format('kafka').options(raw)
  .option('subscribe', 'lesson01-user-events')
  .option('startingOffsets', 'earliest')
  .option('failOnDataLoss', 'true')
  .load();
await source.printSchema();

// %% [markdown]
// ## Parse with a declared schema, flatten, filter, derive
//
// `from_json` parses the value with the schema we declare (fields missing from a record become null; a
// value that is not JSON becomes a null struct). `select('e.*')` flattens the struct.

// %%
const eventSchema = 'user_id STRING, event_type STRING, timestamp TIMESTAMP, page_url STRING, session_id STRING, country STRING, device_type STRING';
const events = source
  .select(col('key').cast('string').alias('key'), from_json(col('value').cast('string'), eventSchema).alias('e'))
  .select('key', 'e.*');
const processed = events
  .filter(col('country').isNotNull())
  .withColumn('event_hour', hour(col('timestamp')))
  .withColumn('event_date', to_date(col('timestamp')))
  .withColumn('is_mobile', col('device_type').isin('mobile', 'tablet'))
  .withColumn('event_category', when(col('event_type').isin('purchase', 'add_to_cart'), lit('commerce')).when(col('event_type').isin('login', 'logout'), lit('account')).otherwise(lit('engagement')));
await processed.printSchema();

// %% [markdown]
// ### The same steps as SQL strings
//
// PySpark code often writes these steps in SQL: `selectExpr` for the projection, then a temp view queried
// with `sluice.sql(…)`. Sluice parses the strings into the same expressions the column functions build —
// `eventsSql` below is the very plan of `events` — and the query gives the same columns and types as
// `processed`. Use whichever reads better. A mistake in a string is reported at its place, with what was
// expected there.

// %%
const eventsSql = source
  .selectExpr('CAST(key AS STRING) AS key', `from_json(CAST(value AS STRING), '${eventSchema}') AS e`)
  .select('key', 'e.*');
assert.deepEqual(eventsSql.plan, events.plan);
eventsSql.createOrReplaceTempView('lesson01_events');
const processedSql = sluice.sql(`
  SELECT *,
         hour(timestamp) AS event_hour,
         to_date(timestamp) AS event_date,
         device_type IN ('mobile', 'tablet') AS is_mobile,
         CASE WHEN event_type IN ('purchase', 'add_to_cart') THEN 'commerce'
              WHEN event_type IN ('login', 'logout') THEN 'account'
              ELSE 'engagement' END AS event_category
  FROM lesson01_events
  WHERE country IS NOT NULL`);
console.log('same columns and types as processed:', (await processedSql.schema()).treeString() === (await processed.schema()).treeString());
try {
  sluice.sql('SELECT user_id, hour(timestamp AS event_hour FROM lesson01_events');
} catch (e) {
  console.log((e as Error).message);
}

// %% [markdown]
// ## Write to Kafka, with a console sink beside it
//
// The Kafka sink wants a `value` column (string or binary) and takes an optional `key`. Each query needs
// its own `checkpointLocation`. `trigger({ availableNow: true })` processes everything there is now, then
// stops — handy in a notebook; a long-running job uses `{ processingTime: '5 seconds' }`.

// %%
const toKafka = await processed
  .select(col('key'), to_json(struct('user_id', 'event_type', 'timestamp', 'country', 'event_hour', 'event_date', 'is_mobile', 'event_category')).alias('value'))
  .writeStream.format('kafka').options(raw)
  .option('topic', 'lesson01-processed-user-events')
  .option('checkpointLocation', 'checkpoints/lesson01/to-kafka')
  .trigger({ availableNow: true })
  .start();
const toConsole = await processed.select('user_id', 'event_type', 'country', 'event_hour', 'is_mobile', 'event_category')
  .writeStream.format('console').option('numRows', 5).option('truncate', 'false')
  .option('checkpointLocation', 'checkpoints/lesson01/console')
  .trigger({ availableNow: true })
  .start();
await toKafka.awaitTermination();
await toConsole.awaitTermination();
console.log(`to Kafka: ${toKafka.lastProgress!.sink.numOutputRows} of ${toKafka.lastProgress!.numInputRows} events (the rest had no country)`);

// %% [markdown]
// ## Status and progress of a running query
//
// A query started with a processing-time trigger keeps running. `status` says what it is doing now;
// `lastProgress` describes the last batch with Spark's field names. (Timings and ids differ per run, so the
// lesson prints the stable fields.)

// %%
await produceEvents(10, { topic: 'lesson01-user-events', kafka: conn.kafka, format: 'json', seed: 8, startMs: Date.parse('2025-08-22T18:00:00Z') });
const running = await processed.select(col('key'), to_json(struct('*')).alias('value'))
  .writeStream.format('kafka').options(raw).option('topic', 'lesson01-processed-user-events')
  .option('checkpointLocation', 'checkpoints/lesson01/to-kafka')
  .queryName('lesson01_running')
  .trigger({ processingTime: '1 second' })
  .start();
await running.processAllAvailable();
const lp = running.lastProgress!;
console.log('isActive:', running.isActive, '| status:', running.status.message);
console.log({ batchId: lp.batchId, numInputRows: lp.numInputRows, source: lp.sources[0].description, startOffset: lp.sources[0].startOffset, endOffset: lp.sources[0].endOffset, numOutputRows: lp.sink.numOutputRows, numFilteredRows: lp.numFilteredRows });
await running.stop();
console.log('after stop → isActive:', running.isActive, '| status:', running.status.message);

// %% [markdown]
// It restarted from the first query's checkpoint: batch 1 read only the 10 new records (`startOffset` is
// where batch 0 ended), though the source says `startingOffsets: earliest`.
//
// ## Output modes for a stateless query
//
// Without an aggregation every input row gives at most one output row, once: **append** and **update** do
// the same thing. **complete** (rewrite the whole result every batch) would have to keep every row ever
// read, so it is refused — before the query starts, with the reason:

// %%
try {
  await processed.select(to_json(struct('*')).alias('value')).writeStream.format('console').outputMode('complete').start();
} catch (e) {
  console.log((e as Error).message);
}

// %% [markdown]
// ## Check

// %%
const out = await readTopic(conn.kafka, 'lesson01-processed-user-events');
const rows = out.map((r) => JSON.parse(r.value!.toString()));
const expectedKept = 5 + 45 + 10 - (toKafka.recentProgress[0].numFilteredRows + lp.numFilteredRows);
assert.equal(rows.length, expectedKept);
assert.ok(rows.every((r) => r.country !== undefined));
const ada = rows.find((r) => r.user_id === 'user_123' && r.event_type === 'page_view');
assert.deepEqual({ hour: ada.event_hour, date: ada.event_date, mobile: ada.is_mobile, cat: ada.event_category }, { hour: 17, date: '2025-08-22', mobile: false, cat: 'engagement' });
assert.equal(toKafka.recentProgress[0].numInputRows, 50);
assert.equal(lp.numInputRows, 10);
assert.equal((await processedSql.schema()).treeString(), (await processed.schema()).treeString());
admin.disconnect();
console.log(`lesson 01 checks passed: ${rows.length} processed events`);
