// %% [markdown]
// # Lesson 01 — First pipeline: Kafka → schema → transform → Kafka
//
// Read `user-events`, parse each JSON value with a **declared schema**, flatten it, filter, derive
// columns, and write JSON to `processed-user-events` — with a console sink beside it for debugging.
// Then look at a running query: its status, its progress, and how to stop it.
//
// Sluice follows Spark 3.5. Each key call has its **PySpark 3.5** form beside it (text, not run here), with a
// line wherever Sluice differs. The appendix at the end answers the configuration questions: the Kafka
// connector package, Livy, adaptive execution, shuffle partitions, consumer group ids.

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
// commits nothing to the group. The Kafka source gives binary `key` and `value` plus metadata columns.
//
// **In PySpark 3.5** — the same option names, the same seven columns (`key`, `value`, `topic`, `partition`,
// `offset`, `timestamp`, `timestampType`):
//
// ```python
// source = (spark.readStream.format("kafka")
//           .option("kafka.bootstrap.servers", "broker1:9092,broker2:9092")   # and any kafka.* security option
//           .option("subscribe", "user-events")
//           .option("startingOffsets", "earliest")   # default "latest"; only for a new query
//           .option("failOnDataLoss", "true")        # the default
//           .load())
// source.printSchema()
// ```
//
// Where Sluice differs: Spark needs the Kafka connector on its classpath first, and has a `groupIdPrefix`
// option that Sluice lacks (both in the appendix). `conn.kafkaOptions` below is only the lessons' helper: it
// fills in `kafka.bootstrap.servers` (and security settings) from the environment.

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
// `from_json` parses the value with the schema we declare; `select('e.*')` flattens the struct. A field missing
// from a record becomes null. A value that is **not JSON** does *not* become a null struct: in Spark 3.5's
// default mode (PERMISSIVE), and in Sluice, it becomes a struct whose fields are **all null** — so `e IS NULL`
// is false and the row goes on down the pipeline. Two checks do work (shown just below):
// - test a field every good record has: the `country IS NOT NULL` filter here drops a malformed value too;
// - add `_corrupt_record STRING` to the schema: a malformed value's text lands there, and good rows have it
//   null.
//
// **In PySpark 3.5:**
//
// ```python
// from pyspark.sql.functions import col, from_json
// schema = "user_id STRING, event_type STRING, timestamp TIMESTAMP, page_url STRING, session_id STRING, country STRING, device_type STRING"
// events = (source.select(col("key").cast("string").alias("key"),
//                         from_json(col("value").cast("string"), schema).alias("e"))
//                 .select("key", "e.*"))
// # from_json(..., schema, {"mode": "FAILFAST"}) stops the query at the first malformed value instead
// ```

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
// ### What a malformed value becomes
//
// Three values parsed the way the stream parses them, on a small static DataFrame: a good record, one
// without `country`, and one that is not JSON. The schema has a `_corrupt_record` column. Then three filters:
// only the first one, on the struct being null, lets the bad value through.

// %%
const probe = sluice.createDataFrame(
  [{ value: '{"user_id":"u1","country":"US"}' }, { value: '{"user_id":"u2"}' }, { value: 'not json' }],
  'value STRING',
).select(col('value'), from_json(col('value'), 'user_id STRING, country STRING, _corrupt_record STRING').alias('e'));
await probe
  .select(col('value'), col('e').isNull().alias('e_is_null'), col('e.user_id').alias('user_id'), col('e.country').alias('country'), col('e._corrupt_record').alias('_corrupt_record'))
  .show(20, false);
const kept = {
  structNotNull: await probe.filter(col('e').isNotNull()).count(),
  corruptRecordNull: await probe.filter(col('e._corrupt_record').isNull()).count(),
  userIdNotNull: await probe.filter(col('e.user_id').isNotNull()).count(),
};
console.log('rows kept by each filter:', kept);

// %% [markdown]
// In PySpark 3.5 the same filters read `col("e").isNotNull()` (keeps the bad row),
// `col("e._corrupt_record").isNull()` and `col("e.user_id").isNotNull()`. The option
// `columnNameOfCorruptRecord` renames the column, in both.

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
// stops — handy in a notebook; a long-running job uses `{ processingTime: '5 seconds' }`. The output mode is
// `append`, the default.
//
// **In PySpark 3.5:**
//
// ```python
// from pyspark.sql.functions import col, struct, to_json
// to_kafka = (processed
//     .select(col("key"), to_json(struct("user_id", "event_type", "timestamp", "country", "event_hour",
//                                        "event_date", "is_mobile", "event_category")).alias("value"))
//     .writeStream.format("kafka")
//     .option("kafka.bootstrap.servers", "broker1:9092")
//     .option("topic", "processed-user-events")
//     .option("checkpointLocation", "/checkpoints/lesson01/to-kafka")
//     .outputMode("append")                  # the default
//     .trigger(availableNow=True)            # or processingTime="5 seconds"
//     .start())
// to_console = (processed.select("user_id", "event_type", "country", "event_hour", "is_mobile", "event_category")
//     .writeStream.format("console").option("numRows", 5).option("truncate", "false")
//     .option("checkpointLocation", "/checkpoints/lesson01/console")
//     .trigger(availableNow=True)
//     .start())
// to_kafka.awaitTermination()
// ```
//
// Where Sluice differs: `trigger` takes an object (`{ availableNow: true }`, `{ processingTime: '5 seconds' }`)
// where PySpark takes a keyword argument, and `start()` returns a promise to await.

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
//
// One field below is **Sluice's own**: `numFilteredRows` — input rows a stateless query did not write (here,
// events without a country). So is `numDeadLetterRows` (lesson 02). Spark's progress has neither; for a
// stateless query a PySpark user computes `numInputRows - sink["numOutputRows"]` (the Kafka sink reports its
// count; a V1 sink such as `foreachBatch` reports -1).
//
// **In PySpark 3.5:**
//
// ```python
// running.processAllAvailable()
// running.isActive                      # True
// running.status["message"]             # 'Waiting for data to arrive'
// lp = running.lastProgress             # a dict in PySpark 3.5
// lp["batchId"], lp["numInputRows"], lp["sources"][0]["startOffset"], lp["sink"]["numOutputRows"]
// running.stop()
// ```

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
// read, so it is refused — before the query starts, with the reason. Spark 3.5 refuses it the same way, at
// `start()`: `AnalysisException: Complete output mode not supported when there are no streaming aggregations
// on streaming DataFrames/Datasets`.

// %%
try {
  await processed.select(to_json(struct('*')).alias('value')).writeStream.format('console').outputMode('complete').start();
} catch (e) {
  console.log((e as Error).message);
}

// %% [markdown]
// ## Appendix — the configs you asked about
//
// **The Kafka connector: `spark.jars.packages`.** Spark's Kafka source and sink are not in Spark's core jars.
// Without them, `.format("kafka")` fails with `AnalysisException: Failed to find data source: kafka. Please
// deploy the application as per the deployment section of Structured Streaming + Kafka Integration Guide.`
// Add the connector whose **Spark version** is your Spark's (`spark.version`) and whose **Scala suffix** is
// your build's (Spark 3.5's default builds use Scala 2.12; a Scala 2.13 build needs `_2.13`):
//
// ```python
// spark = (SparkSession.builder
//          .config("spark.jars.packages", "org.apache.spark:spark-sql-kafka-0-10_2.12:3.5.1")  # match spark.version
//          .getOrCreate())
// # or: spark-submit --packages org.apache.spark:spark-sql-kafka-0-10_2.12:3.5.1 app.py
// ```
//
// The setting is read when the session's JVM starts: set it on a session that already runs and it is too
// late. Lesson 02's Avro functions need `org.apache.spark:spark-avro_2.12:3.5.1` the same way (both in one
// comma-separated list). Sluice: nothing to add, `format('kafka')` is built in.
//
// **On Livy** (sparkmagic notebooks) the session is created by Livy, so the package goes into the session's
// creation request. Run this cell first; `-f` drops a running session and starts a new one with it:
//
// ```
// %%configure -f
// {"conf": {"spark.jars.packages": "org.apache.spark:spark-sql-kafka-0-10_2.12:3.5.1"}}
// ```
//
// **Adaptive query execution** (`spark.sql.adaptive.enabled`, on by default for batch queries) is **off for
// streaming**: starting a stream logs `spark.sql.adaptive.enabled is not supported in streaming
// DataFrames/Datasets and will be disabled.` Setting it changes nothing in a stream. Sluice has no adaptive
// execution.
//
// **`spark.sql.shuffle.partitions`** (Spark default 200) is the number of partitions after a shuffle — and of a
// stateful query's state. A streaming query stores it in its checkpoint at the first run (in `offsets/N`,
// under `conf`); every restart uses the stored value, whatever the session says. To change it, start a new
// checkpoint. Sluice: `sluice.sql.shuffle.partitions` (default 4), same rule — lesson 03 shows it in
// `offsets/0`.
//
// **`groupIdPrefix`** (source option, default `spark-kafka-source`) is the prefix of the consumer group id
// Spark generates for each query. The group is only used to read: offsets live in the checkpoint and nothing
// is committed to Kafka. Set it when Kafka's ACLs allow only some group names; `kafka.group.id` sets the
// whole id instead (then `groupIdPrefix` is ignored, and queries sharing that id are likely to interfere and
// read only part of the data each). Sluice has no `groupIdPrefix`: its reader uses the group
// `sluice-reader-<pid>`, commits nothing, and passes a `kafka.group.id` on to the client.
//
// | Spark 3.5 | Sluice |
// |---|---|
// | `spark.jars.packages` with `spark-sql-kafka-0-10_2.12:3.5.x` | — (built in) |
// | `%%configure -f {"conf": {…}}` on Livy | — |
// | `spark.sql.adaptive.enabled` (ignored by streams) | — |
// | `spark.sql.shuffle.partitions` | `sluice.sql.shuffle.partitions` |
// | `spark.sql.streaming.checkpointLocation` | `sluice.sql.streaming.checkpointLocation` (lesson 03) |
// | `groupIdPrefix`, `kafka.group.id` | —, `kafka.group.id` |
//
// Sluice reads only the `sluice.*` names: a `spark.*` key set on a Sluice session is kept but has no effect.

// %% [markdown]
// ## Check
//
// The expected output is computed from the input, not from the engine's counters: every event the lesson
// produced that has a country must be in the output topic, once, and nothing else. Sluice's `numFilteredRows`
// must then account for exactly the others.

// %%
type Ev = { user_id: string; event_type: string; country?: string | null };
const input = (await readTopic(conn.kafka, 'lesson01-user-events')).map((r) => JSON.parse(r.value!.toString()) as Ev);
const shouldPass = input.filter((e) => e.country != null);
const out = await readTopic(conn.kafka, 'lesson01-processed-user-events');
const rows = out.map((r) => JSON.parse(r.value!.toString()));
const ident = (e: Ev): string => `${e.user_id}|${e.event_type}`;
assert.equal(input.length, 5 + 45 + 10);
assert.equal(rows.length, shouldPass.length);
assert.deepEqual(rows.map(ident).sort(), shouldPass.map(ident).sort());
assert.ok(rows.every((r) => typeof r.country === 'string'));
assert.equal(toKafka.recentProgress[0].numFilteredRows + lp.numFilteredRows, input.length - shouldPass.length);
assert.deepEqual(kept, { structNotNull: 3, corruptRecordNull: 2, userIdNotNull: 2 });
const ada = rows.find((r) => r.user_id === 'user_123' && r.event_type === 'page_view');
assert.deepEqual({ hour: ada.event_hour, date: ada.event_date, mobile: ada.is_mobile, cat: ada.event_category }, { hour: 17, date: '2025-08-22', mobile: false, cat: 'engagement' });
assert.equal(toKafka.recentProgress[0].numInputRows, 50);
assert.equal(lp.numInputRows, 10);
assert.equal((await processedSql.schema()).treeString(), (await processed.schema()).treeString());
admin.disconnect();
console.log(`lesson 01 checks passed: ${rows.length} processed events`);
