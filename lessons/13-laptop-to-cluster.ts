// %% [markdown]
// # Lesson 13 — From laptop to cluster: the same pipeline on Apache Spark
//
// One Node.js process goes a long way (lesson 12's numbers), but not forever. When a pipeline outgrows it,
// Sluice does not grow a cluster of its own: a Sluice DataFrame is a **plan**, data rather than code, so the
// same plan can be handed to a real Spark cluster through **Spark Connect**, Spark's protocol for remote
// clients (Spark 3.5: plans over gRPC, results as Arrow).
//
// This lesson runs one pipeline twice — here, then on Spark — by changing **one line**, and compares the two
// outputs record by record. It needs a Spark Connect server: `sluice up --spark` starts Apache Spark 3.5
// (`local[2]`, pyspark from PyPI, the Kafka/Avro connectors from Maven Central) on 127.0.0.1:15002. On a
// real cluster, set `SLUICE_SPARK_CONNECT_URL=sc://<driver>:15002`.
//
// Questions this lesson answers:
// - What changes in my code to run on Spark? (one line: `.remote(url)` on the session builder)
// - Does Spark compute the same thing? (we compare every output record)
// - How does Avro with the Schema Registry work on Spark, which cannot read the schema id?
// - What cannot go to a cluster, and what do I use instead?
// - Where do I look when it runs on Spark (progress, plans)?

// %%
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { rmSync } from 'node:fs';
import avro from 'avsc';
import {
  SluiceSession, KafkaAdmin, ConnectUnsupportedError, connection, readTopic, produceEvents, registryClient, unframe,
  col, count, fromAvro, struct, toAvro, window, type DataFrame, type DataStreamWriter, type Row,
} from 'sluice';

const conn = connection();
const admin = new KafkaAdmin(conn.kafka);
for (const topic of ['lesson13-events', 'lesson13-laptop', 'lesson13-cluster']) await admin.recreateTopic(topic, 2);
const registry = registryClient(conn.registry);
for (const subject of ['lesson13-events-value', 'lesson13-laptop-value', 'lesson13-cluster-value']) await registry.deleteSubject(subject).catch(() => {});
rmSync('checkpoints/lesson13', { recursive: true, force: true });
// 600 user events, one second apart from 12:00, Avro with the registry (the generator of lessons 01–02).
await produceEvents(600, { topic: 'lesson13-events', kafka: conn.kafka, format: 'avro', registry: conn.registry, seed: 13, startMs: Date.parse('2025-08-22T12:00:00Z') });
console.log(`Spark Connect server: ${conn.sparkConnectUrl}`);

// %% [markdown]
// ## The pipeline
//
// Events per minute and type, from Avro in to Avro out, with a watermark and update mode: the shape of lessons
// 02 and 04. It is a function of the session, so the same code can be given either session.
//
// The checkpoint folder is an **absolute** path: on Spark it is written by the Spark driver, whose working
// folder is not this notebook's (on a real cluster it would be `hdfs://…` or `s3a://…`).

// %%
function eventsPerMinute(session: SluiceSession): DataFrame {
  return session.readStream.format('kafka').options(conn.kafkaOptions)
    .option('subscribe', 'lesson13-events').option('startingOffsets', 'earliest')
    .load()
    .select(fromAvro(col('value'), { registry: conn.registry, subject: 'lesson13-events-value', mode: 'FAILFAST' }).alias('e'))
    .select('e.*')
    .withWatermark('timestamp', '1 minute')
    .groupBy(window(col('timestamp'), '1 minute'), col('event_type'))
    .agg(count('*').alias('events'));
}

function toTopic(df: DataFrame, topic: string): DataStreamWriter {
  return df
    .select(toAvro(struct(col('window.start').alias('minute'), 'event_type', 'events'), { registry: conn.registry, subject: `${topic}-value` }).alias('value'))
    .writeStream.format('kafka').options(conn.kafkaOptions)
    .option('topic', topic)
    .option('checkpointLocation', resolve(`checkpoints/lesson13/${topic}`))
    .outputMode('update');
}

// %% [markdown]
// ## Run it here, then on Spark: one line apart
//
// ```ts
// const laptop  = SluiceSession.builder().appName('lesson13').getOrCreate();
// const cluster = SluiceSession.builder().appName('lesson13').remote(conn.sparkConnectUrl).getOrCreate();
// ```
//
// The second session compiles each DataFrame to Spark Connect relations (`read` of format `kafka`,
// `with_watermark`, `aggregate` …) and `writeStream.start()` sends Spark a `WriteStreamOperationStart`. What
// comes back is a handle of the same shape as a local query: `processAllAvailable()`, `stop()`,
// `lastProgress` (Spark's own progress), `status`.

// %%
const laptop = SluiceSession.builder().appName('lesson13').getOrCreate();
const cluster = SluiceSession.builder().appName('lesson13').remote(conn.sparkConnectUrl).getOrCreate();

const here = await toTopic(eventsPerMinute(laptop), 'lesson13-laptop').start();
const there = await toTopic(eventsPerMinute(cluster), 'lesson13-cluster').start();
await here.processAllAvailable();
await there.processAllAvailable();
const rowsPerBatch = (q: typeof here): string => q.recentProgress.map((p) => `batch ${p.batchId}: ${p.numInputRows} rows`).join(', ');
console.log(`here : ${here.constructor.name.padEnd(20)} ${rowsPerBatch(here)}`);
console.log(`Spark: ${there.constructor.name.padEnd(20)} ${rowsPerBatch(there)}`);
await here.stop();
await there.stop();

// %% [markdown]
// ## The same records?
//
// Both wrote Confluent-framed Avro. Each engine registered the derived schema under its own topic's subject,
// so the ids may differ; the records must not. Decode both topics with their writer schemas and compare.

// %%
async function decoded(topic: string): Promise<Row[]> {
  const out: Row[] = [];
  for (const r of await readTopic(conn.kafka, topic)) {
    const { schemaId, payload } = unframe(r.value);
    const type = avro.Type.forSchema(JSON.parse((await registry.getById(schemaId)).schema));
    const v = type.fromBuffer(payload) as { minute: number; event_type: string; events: number };
    // The derived schema's timestamps are timestamp-millis (Sluice's Spark-to-Avro mapping; Spark writes with it as given).
    out.push({ minute: new Date(v.minute).toISOString().slice(11, 16), event_type: v.event_type, events: v.events });
  }
  return out.sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
}
const mine = await decoded('lesson13-laptop');
const spark = await decoded('lesson13-cluster');
console.table(mine.slice(0, 6));
console.log(`${mine.length} records here, ${spark.length} from Spark; identical: ${JSON.stringify(mine) === JSON.stringify(spark)}`);

// %% [markdown]
// ## Avro with the registry, on Spark
//
// Spark's `from_avro` takes one schema, as text, and reads plain Avro: it cannot read the 5-byte header
// (magic byte + schema id) that registry clients put in front of each record. So Sluice compiles `fromAvro`
// to what a Spark user would write by hand, with a guard:
//
// ```python
// from_avro(when(substring(value, 1, 5) == <header of id N>, substring(value, 6, length(value) - 5))
//           .otherwise(raise_error("… not written with schema id N …")), <schema N from the registry>)
// ```
//
// and `toAvro` to `concat(<header>, to_avro(struct, <schema>))` after registering the schema. The guard
// matters: a record written later with another schema would otherwise be decoded with the wrong one —
// here it fails the query, saying why. A subject with **several** versions is refused before the query is
// sent (Spark cannot pick each record's writer schema; Sluice can, so run such a topic locally, or pin one
// version with `{ schemaId }`). Spark has no dead-letter route: `fromAvro`'s default `DEADLETTER` mode
// becomes `FAILFAST` there, with a warning.
//
// Spark's own plan shows it (`sparkPlan()` asks Spark to explain the DataFrame):

// %%
const plan = await eventsPerMinute(cluster).sparkPlan();
console.log(plan.split('\n').filter((l) => /from_avro|substring|StateStore|EventTimeWatermark/.test(l)).map((l) => l.replace(/\{"type".*?\}\]\}/, '{…schema…}').slice(0, 160)).join('\n'));

// %% [markdown]
// ## What cannot go to a cluster
//
// Spark runs on the JVM; it cannot call a JavaScript function of this process for every row or every
// batch. `map(fn)`, `mapGroupsWithState` / `flatMapGroupsWithState` / `transformWithState`
// functions, `foreachBatch` and `foreach` functions, and `memoryStream()` sources are refused **before**
// anything is sent, with the reason and the nearest thing that does run on Spark:

// %%
const raw = cluster.readStream.format('kafka').options(conn.kafkaOptions).option('subscribe', 'lesson13-events').load();
const upper = raw.map((r) => ({ key: r.key, value: Buffer.from(String(r.value).toUpperCase()) }), 'key BINARY, value BINARY');
let refusal: unknown;
try {
  await upper.writeStream.format('kafka').options(conn.kafkaOptions).option('topic', 'lesson13-cluster')
    .option('checkpointLocation', resolve('checkpoints/lesson13/refused')).start();
} catch (e) {
  refusal = e;
  console.log((e as Error).message);
}

// %% [markdown]
// ## Where to look when it runs on Spark
//
// - `query.lastProgress` / `recentProgress`: Spark's progress JSON (batch, input rows, watermark, state).
//   Spark 3.5's Connect has no listener for clients, so the handle asks every second while the query runs.
// - `query.status`, `query.exception` (Spark's error class and message), `await query.explainPlan(true)`.
// - `diagnose()` reads Sluice's own engine state and is not available for a query on Spark: it says so.
// - Spark's UI (port 4040 on the driver) — off for the local server.
//
// ## Check

// %%
assert.ok(mine.length > 10);
assert.deepEqual(spark, mine);
assert.equal(mine.reduce((n, r) => n + Number(r.events), 0), 600);
assert.ok(refusal instanceof ConnectUnsupportedError);
assert.match((refusal as Error).message, /cannot run on Spark Connect/);
assert.match(plan, /from_avro/);
await cluster.stop();
await laptop.stop();
admin.disconnect();
console.log('lesson 13 checks passed');
