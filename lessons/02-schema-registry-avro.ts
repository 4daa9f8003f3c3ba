// %% [markdown]
// # Lesson 02 — Schema Registry and Avro
//
// Register an Avro schema, produce Avro in the Confluent wire format, decode it in a stream with the
// registry, write Avro back with a registered output schema, evolve the schema while the query runs, and
// send malformed records to a dead-letter topic.
//
// **Most of what this lesson's query does is Sluice's own**, not Spark's: the registry-aware
// `fromAvro(col, { registry, subject })` and `toAvro(col, { registry, subject })`, the dead-letter topic
// (`deadLetter.topic`) and the `numDeadLetterRows` progress field. Open-source Spark 3.5 has `from_avro` and
// `to_avro` for plain Avro only: they never read nor write the Confluent header and never call a registry
// (Databricks Runtime adds a registry-aware `from_avro`; open-source Spark has none), and `from_avro` knows
// two modes for bad records — FAILFAST (the default: the query fails) and PERMISSIVE. Each section shows what
// a PySpark 3.5 user writes instead.

// %%
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import avro from 'avsc';
import {
  SluiceSession, KafkaAdmin, AckedProducer, connection, readTopic, produceEvents, userEventSchema, registryClient, frame,
  col, fromAvro, toAvro, struct, hour, when, lit,
} from 'sluice';

const conn = connection();
const client = registryClient(conn.registry);
const admin = new KafkaAdmin(conn.kafka);
for (const t of ['lesson02-user-events', 'lesson02-processed-user-events', 'lesson02-dlq']) await admin.recreateTopic(t, 1);
for (const s of ['lesson02-user-events-value', 'lesson02-processed-user-events-value']) await client.deleteSubject(s);
rmSync('checkpoints/lesson02', { recursive: true, force: true });
const sluice = SluiceSession.builder().appName('lesson02').getOrCreate();
sluice.log = (line) => console.log(line.replace(/ \(kafka topic .*\)/, ''));
console.log('clean start: topics recreated, subjects deleted');

// %% [markdown]
// ## Register the schema, produce Avro
//
// A subject is a named history of schemas; by Confluent's default *TopicNameStrategy*, the value schema of
// topic `T` lives under subject `T-value`. Registering returns the schema's **id**.

// %%
const v1 = userEventSchema();
const idV1 = await client.register('lesson02-user-events-value', v1);
console.log('registered id', idV1, '→ versions of the subject:', await client.listVersions('lesson02-user-events-value'));
await produceEvents(20, { topic: 'lesson02-user-events', kafka: conn.kafka, format: 'avro', registry: conn.registry, subject: 'lesson02-user-events-value', seed: 2 });

// %% [markdown]
// ## The wire format
//
// Each value is **magic byte 0**, then the **schema id** in 4 bytes (big-endian), then the Avro binary
// payload — which carries no schema at all. A plain Avro decoder fails on it: it reads the 5 header bytes
// as data. Only after stripping them, and with the writer's schema (found by id in the registry), can the
// payload be read (Spark's `from_avro` is such a plain decoder; the next section strips the header for it):

// %%
const [first] = await readTopic(conn.kafka, 'lesson02-user-events', 1);
const bytes = first.value!;
console.log('first 5 bytes:', [...bytes.subarray(0, 5)], '→ magic', bytes[0], ', schema id', bytes.readUInt32BE(1), '; payload', bytes.length - 5, 'bytes');
const type = avro.Type.forSchema(JSON.parse(v1));
try {
  type.fromBuffer(bytes);
} catch (e) {
  console.log('plain Avro decoder:', (e as Error).message);
}
const decoded = type.fromBuffer(bytes.subarray(5)) as { user_id: string; event_type: string };
console.log('after the header, with schema', bytes.readUInt32BE(1), ':', decoded.user_id, decoded.event_type);

// %% [markdown]
// ## Decode in a stream, write Avro back
//
// `fromAvro(col('value'), { registry, subject })` takes the subject's latest schema as the **reader schema**
// (it fixes the DataFrame's columns) and decodes every record with its **writer schema**, looked up by the
// id in its header (once per id, then cached). `toAvro(..., { registry, subject })` derives an Avro schema
// from the columns, **registers** it under the output subject, and frames each value with its id.
// Undecodable records go to `deadLetter.topic` with the reason in their headers. All three are **Sluice-only**.
// So is `fromAvro`'s default for a bad record (`mode: 'DEADLETTER'`); `mode: 'FAILFAST'` is Spark's default.
//
// **In PySpark 3.5** the registry is your code's business: fetch the schema once, strip the 5-byte header
// yourself, decode with plain `from_avro` — and frame the output yourself. It needs the `spark-avro` package
// beside the Kafka one (lesson 01's appendix). `registry` is your registry's URL:
//
// ```python
// import requests
// from pyspark.sql.avro.functions import from_avro, to_avro
// from pyspark.sql.functions import col, concat, expr, lit, struct
//
// latest = requests.get(f"{registry}/subjects/lesson02-user-events-value/versions/latest").json()
// writer_schema = latest["schema"]   # the schema producers write with, as a JSON string (latest["id"]: its id)
// events = (spark.readStream.format("kafka")
//     .option("kafka.bootstrap.servers", "broker1:9092")
//     .option("subscribe", "lesson02-user-events")
//     .option("startingOffsets", "earliest")
//     .load()
//     .where(expr("substring(value, 1, 1) = X'00'"))                     # magic byte 0: Confluent framing
//     .select(col("key").cast("string").alias("key"),
//             from_avro(expr("substring(value, 6, length(value) - 5)"),  # drop magic byte + 4-byte id
//                       writer_schema, {"mode": "PERMISSIVE"}).alias("e"))
//     .select("key", "e.*"))
//
// out_schema = "..."   # an Avro record schema matching the output columns (nullable ones as ["null", …])
// out_id = requests.post(f"{registry}/subjects/lesson02-processed-user-events-value/versions",
//                        json={"schema": out_schema}).json()["id"]
// header = bytearray(b"\x00" + out_id.to_bytes(4, "big"))
// query = (events  # … derived columns as below …
//     .select(col("key"), concat(lit(header), to_avro(struct("*"), out_schema)).alias("value"))
//     .writeStream.format("kafka")
//     .option("kafka.bootstrap.servers", "broker1:9092")
//     .option("topic", "lesson02-processed-user-events")
//     .option("checkpointLocation", "/checkpoints/lesson02")
//     .trigger(processingTime="500 milliseconds")
//     .start())
// ```
//
// `from_avro` never reads the id: every record is decoded with the one schema given, whatever id it carries.
// There is no `deadLetter.topic` option: with FAILFAST the first bad record fails the query; with
// PERMISSIVE a bad record becomes a struct whose fields are all null (as with `from_json` in lesson 01), so
// test a required field (`e.user_id IS NULL`) and write those rows' raw `value` wherever you keep rejects
// yourself (a second query, or `foreachBatch`).

// %%
const startQuery = () =>
  sluice.readStream.format('kafka').options(conn.kafkaOptions).option('subscribe', 'lesson02-user-events').option('startingOffsets', 'earliest').load()
    .select(col('key').cast('string').alias('key'), fromAvro(col('value'), { registry: conn.registry, subject: 'lesson02-user-events-value' }).alias('e'))
    .select('key', 'e.*')
    .withColumn('event_hour', hour(col('timestamp')))
    .withColumn('is_mobile', when(col('device_type').isin('mobile', 'tablet'), lit(true)).otherwise(lit(false)))
    .select(col('key'), toAvro(struct('*'), { registry: conn.registry, subject: 'lesson02-processed-user-events-value', recordName: 'ProcessedUserEvent' }).alias('value'))
    .writeStream.format('kafka').options(conn.kafkaOptions)
    .option('topic', 'lesson02-processed-user-events')
    .option('deadLetter.topic', 'lesson02-dlq')
    .option('checkpointLocation', 'checkpoints/lesson02')
    .trigger({ processingTime: '500 milliseconds' })
    .start();
let query = await startQuery();
await query.processAllAvailable();
console.log('batch', query.lastProgress!.batchId, ':', query.lastProgress!.numInputRows, 'in,', query.lastProgress!.sink.numOutputRows, 'out');
console.log('output subject versions:', await client.listVersions('lesson02-processed-user-events-value'));
console.log(execFileSync(process.execPath, ['../bin/sluice.js', 'consume', '-t', 'lesson02-processed-user-events', '--from-beginning', '-m', '2', '--format', 'json'], { encoding: 'utf8', env: process.env }));

// %% [markdown]
// **Where is the registry used?** On read, for every record: the id in its header names the writer schema
// (fetched once per id). On write: the output schema is registered (once) and its id framed into each
// value. At start: the reader schema comes from the subject's latest version. That is Sluice's `fromAvro` and
// `toAvro`; in a Spark 3.5 job the registry is used only where your own code calls it (above: once, when the
// job starts).
//
// ## Evolve the schema while the query runs
//
// Version 2 adds `referrer` with a default — a backward-compatible change. A producer starts writing v2
// while the query still runs with its v1 reader schema: v2 records are **projected onto v1** (the new field
// is skipped) — nothing breaks.
//
// **In PySpark 3.5** nothing does this for you. `from_avro(data, jsonFormatSchema, options)` takes
// `jsonFormatSchema` as the **writer** schema of every record; a different reader schema goes in the option
// `avroSchema`. With v1 and v2 records on one topic, split them by the id in bytes 2–5
// (`substring(value, 2, 4)`) and decode each part with its own writer schema — or use a third-party
// library that reads the registry.

// %%
const v2 = JSON.parse(v1);
v2.fields.push({ name: 'referrer', type: ['null', 'string'], default: null });
const idV2 = await client.register('lesson02-user-events-value', JSON.stringify(v2));
const typeV2 = avro.Type.forSchema(v2);
const p = new AckedProducer(conn.kafka);
const base = { user_id: 'user_900', event_type: 'click', timestamp: Date.parse('2025-08-22T18:00:00Z'), page_url: null, session_id: 's900', ip_address: null, user_agent: null, country: 'US', device_type: 'mobile' };
await p.send([1, 2, 3, 4, 5].map((i) => ({ topic: 'lesson02-user-events', key: Buffer.from('user_900'), value: frame(idV2, typeV2.toBuffer({ ...base, timestamp: base.timestamp + i * 1000, referrer: 'newsletter' })) })));
await p.flush();
await query.processAllAvailable();
console.log('v2 records read with the v1 reader:', query.lastProgress!.numInputRows, 'in,', query.lastProgress!.numDeadLetterRows, 'dead letters');

// %% [markdown]
// After a restart the reader is v2: `referrer` becomes a column, and records still written with v1 get the
// field's **default** (null). The output schema gains the field too: a second version of the output subject.

// %%
await query.stop();
query = await startQuery();
await produceEvents(3, { topic: 'lesson02-user-events', kafka: conn.kafka, format: 'avro', registry: conn.registry, subject: 'lesson02-user-events-value', seed: 3, startMs: Date.parse('2025-08-22T19:00:00Z') });
await query.processAllAvailable();
console.log('output subject versions now:', await client.listVersions('lesson02-processed-user-events-value'));
const outNow = await readTopic(conn.kafka, 'lesson02-processed-user-events');
const latestOut = outNow[outNow.length - 1].value!;
const outSchema = await client.getById(latestOut.readUInt32BE(1));
console.log('last output record:', avro.Type.forSchema(JSON.parse(outSchema.schema)).fromBuffer(latestOut.subarray(5)));

// %% [markdown]
// ## Malformed records go to the dead-letter topic
//
// A value that is not framed Avro (magic byte 123, i.e. JSON text) and one framed with an id the registry
// does not know: the query keeps going; both records land in `lesson02-dlq`, unchanged, with the reason in
// the `sluice.error.*` headers. The dead-letter topic, its headers and `numDeadLetterRows` are **Sluice's**.
// The Spark 3.5 job above would drop the first record silently at its magic-byte filter, and decode the
// second with its one schema anyway (it never looks at the id): an error under FAILFAST, a struct of nulls —
// or a wrong row, if the bytes happen to decode — under PERMISSIVE.

// %%
await p.send([
  { topic: 'lesson02-user-events', key: null, value: Buffer.from('{"oops": true}') },
  { topic: 'lesson02-user-events', key: null, value: frame(987654, Buffer.from([2, 97])) },
]);
await p.flush();
await p.close();
await query.processAllAvailable();
const dead = await readTopic(conn.kafka, 'lesson02-dlq');
for (const r of dead) {
  const h = Object.fromEntries((r.headers ?? []).flatMap((x) => Object.entries(x).map(([k, v]) => [k, v.toString()])));
  console.log(`${h['sluice.source.topic']}@${h['sluice.source.offset']}  ${h['sluice.error.reason']}: ${h['sluice.error.message']}`);
}
await query.stop();

// %% [markdown]
// ## Check

// %%
const processedOut = await readTopic(conn.kafka, 'lesson02-processed-user-events');
assert.equal(processedOut.length, 20 + 5 + 3);
assert.equal(dead.length, 2);
assert.deepEqual(dead.map((r) => Object.assign({}, ...(r.headers ?? []).map((h) => Object.fromEntries(Object.entries(h).map(([k, v]) => [k, v.toString()]))))['sluice.error.reason']), ['wire.bad-magic-byte', 'avro.unknown-schema-id']);
assert.deepEqual(dead.map((r) => r.value!.toString('hex')), [Buffer.from('{"oops": true}').toString('hex'), frame(987654, Buffer.from([2, 97])).toString('hex')]);
assert.deepEqual(await client.listVersions('lesson02-processed-user-events-value'), [1, 2]);
assert.ok(idV2 !== idV1);
admin.disconnect();
console.log('lesson 02 checks passed');
