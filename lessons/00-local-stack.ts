// %% [markdown]
// # Lesson 00 — The local stack
//
// Every lesson runs against a real Apache Kafka broker and a real Schema Registry. On your machine,
// start them once from a terminal:
//
// ```bash
// node bin/sluice.js up        # Kafka (KRaft) on 127.0.0.1:9092, Schema Registry on 127.0.0.1:8081
// node bin/sluice.js status
// ```
//
// To use your own cluster instead, set `SLUICE_BOOTSTRAP_SERVERS`, `SLUICE_REGISTRY_URL` (and the
// security variables listed in the README) before starting JupyterLab. `connection()` reads them; with
// none set it points at the local stack.
//
// In this lesson: create an input and an output topic, describe them, publish the sample events, generate
// a continuous stream, read a topic from the beginning — and see what a record key changes.

// %%
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { KafkaAdmin, connection, readTopic, sampleEvents, produceEvents, AckedProducer } from 'sluice';

const conn = connection();
const admin = new KafkaAdmin(conn.kafka);
await admin.listTopics(); // fails here, with the reason, when Kafka is not reachable
console.log('connected to Kafka at', conn.bootstrapServers);

// %% [markdown]
// ## Create the topics
//
// A topic is split into **partitions**: the unit of ordering and of parallelism. The **replication
// factor** is how many brokers keep a copy of each partition; the local stack has one broker, so it is 1
// (production clusters use 3). The lesson deletes its topics first, so it always starts from nothing.

// %%
await admin.recreateTopic('lesson00-user-events', 3, 1);
await admin.recreateTopic('lesson00-processed-user-events', 3, 1);
const [described] = await admin.describeTopics(['lesson00-user-events']);
console.log(described.partitions.map((p) => `partition ${p.partition}: leader broker ${p.leader}, replicas [${p.replicas}]`).join('\n'));

// %% [markdown]
// **From a terminal** the same is:
//
// ```bash
// node bin/sluice.js topics create lesson00-user-events --partitions 3 --replication-factor 1
// node bin/sluice.js topics describe lesson00-user-events
// node bin/sluice.js produce --topic lesson00-user-events --sample --format json
// ```
//
// The notebook runs the last two commands for real:

// %%
const cli = (...args: string[]): string => execFileSync(process.execPath, ['../bin/sluice.js', ...args], { encoding: 'utf8', env: process.env });
console.log(cli('produce', '--topic', 'lesson00-user-events', '--sample', '--format', 'json'));
console.log(cli('topics', 'describe', 'lesson00-user-events').replace(/\t/g, '  '));

// %% [markdown]
// ## Read the topic from the beginning
//
// `--sample` published the five events of `data/sample_events.jsonl`, keyed by `user_id`. Reading the topic
// from the first offset of each partition shows where each landed:

// %%
const fromStart = await readTopic(conn.kafka, 'lesson00-user-events');
for (const r of fromStart) console.log(`partition ${r.partition} offset ${r.offset} key ${r.key?.toString()}  ${r.value?.toString().slice(0, 60)}…`);

// %% [markdown]
// **In PySpark 3.5** the same read is a batch query on the Kafka source. For a batch read `startingOffsets`
// defaults to `earliest` and `endingOffsets` to `latest`, so it reads what the topic holds now, then stops:
//
// ```python
// df = (spark.read.format("kafka")
//       .option("kafka.bootstrap.servers", "127.0.0.1:9092")
//       .option("subscribe", "lesson00-user-events")
//       .option("startingOffsets", "earliest")     # the default for a batch read
//       .option("endingOffsets", "latest")         # the default; batch reads only
//       .load())
// df.selectExpr("partition", "offset", "CAST(key AS STRING) AS key", "CAST(value AS STRING) AS value").show(truncate=False)
// ```
//
// Sluice has the same batch read (`sluice.read.format('kafka')…load()`); `readTopic` above is a plain
// Kafka consumer, not a query.

// %% [markdown]
// ## Is a key needed?
//
// **When producing: no.** A record without a key is accepted; the producer spreads keyless records over
// the partitions. **When a stream writes to Kafka: no** either — the Kafka sink needs only a `value`
// column; `key` is optional.
//
// What the key changes:
// - **partitioning** — records with the same key always go to the same partition (the key's hash picks it);
// - **ordering per key** — Kafka orders records within a partition, so one key's records stay in order;
// - **compaction** — on a compacted topic Kafka keeps the latest record per key.
//
// **In PySpark 3.5** the sink is the same: a `value` column (string or binary) is required; without a
// `key` column Spark writes a null key; an optional `partition` column lets you pick the partition.
//
// ```python
// (events.selectExpr("CAST(user_id AS STRING) AS key",     # leave this line out: null keys
//                    "to_json(struct(*)) AS value")
//    .writeStream.format("kafka")
//    .option("kafka.bootstrap.servers", "127.0.0.1:9092")
//    .option("topic", "lesson00-processed-user-events")
//    .option("checkpointLocation", "/checkpoints/lesson00")
//    .start())
// ```
//
// **Where Sluice differs:** which partition a key goes to. Spark writes through the Java producer, which
// hashes the key with murmur2; Sluice's producer is librdkafka, whose default partitioner
// (`consistent_random`) hashes it with CRC32. Each keeps one key in one partition, but not necessarily the
// *same* partition number. If Spark and Sluice (or any Java and librdkafka clients) write one topic and
// per-key order matters, give Sluice's sink `.option('kafka.partitioner', 'murmur2_random')`, librdkafka's
// Java-compatible partitioner.
//
// The same user's events, sent five times with a key, land in one partition:

// %%
const producer = new AckedProducer(conn.kafka);
const ada = sampleEvents()[0];
await producer.send(Array.from({ length: 5 }, (_, i) => ({ topic: 'lesson00-processed-user-events', key: Buffer.from(ada.user_id), value: Buffer.from(JSON.stringify({ ...ada, n: i })) })));
await producer.flush();
const keyed = await readTopic(conn.kafka, 'lesson00-processed-user-events');
console.log('partitions used by key', ada.user_id, '→', [...new Set(keyed.map((r) => r.partition))]);
console.log('order within the partition:', keyed.map((r) => JSON.parse(r.value!.toString()).n).join(', '));

// %% [markdown]
// ## A continuous stream
//
// `sluice produce` (or `produceEvents` here) generates user events at a given rate, with knobs for late,
// out-of-order and malformed records that later lessons use. Two seconds at 100 events per second:

// %%
const generated = await produceEvents(200, { topic: 'lesson00-user-events', kafka: conn.kafka, format: 'json', rate: 100, seed: 1 });
console.log(generated);
await producer.close();

// %% [markdown]
// ## Check
// The input topic holds the 5 sample events and the 200 generated ones; the keyed records all went to one
// partition, in order.

// %%
const all = await readTopic(conn.kafka, 'lesson00-user-events');
assert.equal(all.length, 205);
assert.equal(new Set(keyed.map((r) => r.partition)).size, 1);
assert.deepEqual(keyed.map((r) => JSON.parse(r.value!.toString()).n), [0, 1, 2, 3, 4]);
admin.disconnect();
console.log('lesson 00 checks passed');
