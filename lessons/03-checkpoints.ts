// %% [markdown]
// # Lesson 03 — Checkpoints
//
// A checkpoint is how a query survives a restart: what it read, what it finished, its state. This lesson
// opens one up, crashes a query before and after the commit, changes a query on an old checkpoint, and
// shows the real reason a restarted query "started but wrote nothing". Spark 3.5 writes the same kind of
// checkpoint; each step says what a PySpark user sees, and where Sluice differs.

// %%
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { SluiceSession, KafkaAdmin, AckedProducer, connection, readTopic, explainCheckpoint, formatCheckpointReport, col, upper, struct, to_json } from 'sluice';

const conn = connection();
const admin = new KafkaAdmin(conn.kafka);
for (const t of ['lesson03-in', 'lesson03-other', 'lesson03-out']) await admin.recreateTopic(t, 1);
rmSync('checkpoints/lesson03', { recursive: true, force: true });
const producer = new AckedProducer(conn.kafka);
const send = async (words: string[], topic = 'lesson03-in') => {
  await producer.send(words.map((w) => ({ topic, value: Buffer.from(w) })));
  await producer.flush();
};
await send(['a', 'b', 'c']);
const sluice = SluiceSession.builder().appName('lesson03').getOrCreate();
// The engine's log lines, except errors: the cells below print those themselves.
sluice.log = (line) => {
  if (!line.startsWith('ERROR')) console.log(line);
};
const words = () => sluice.readStream.format('kafka').options(conn.kafkaOptions).option('subscribe', 'lesson03-in').option('startingOffsets', 'earliest').load()
  .select(upper(col('value').cast('string')).alias('value'));
console.log('ready');

// %% [markdown]
// ## Session-wide root or per-query location?
//
// `sluice.sql.streaming.checkpointLocation` (Spark: `spark.sql.streaming.checkpointLocation`) only gives a
// **default folder**: `<root>/<queryName>`, or a random id when the query has no name — a folder a restart
// cannot find again, so the query would start over. Recovery needs a **stable folder per query**: set
// `checkpointLocation` on each query (the rule), or at least name every query.
//
// **In PySpark 3.5:**
//
// ```python
// spark.conf.set("spark.sql.streaming.checkpointLocation", "/checkpoints/lesson03/root")
// named = (words.writeStream.format("memory").queryName("lesson03_named")   # → <root>/lesson03_named
//          .trigger(availableNow=True).start())
// # an unnamed query gets <root>/<random UUID>, a new one at every start
// q = (words.writeStream.format("kafka")
//      .option("kafka.bootstrap.servers", "broker1:9092").option("topic", "lesson03-out")
//      .option("checkpointLocation", "/checkpoints/lesson03/query")            # the rule: one folder per query
//      .trigger(availableNow=True).start())
// ```

// %%
sluice.conf.set('sluice.sql.streaming.checkpointLocation', 'checkpoints/lesson03/root');
const named = await words().writeStream.format('memory').queryName('lesson03_named').trigger({ availableNow: true }).start();
await named.awaitTermination();
const unnamed = await words().writeStream.format('kafka').options(conn.kafkaOptions).option('topic', 'lesson03-out').trigger({ availableNow: true }).start();
await unnamed.awaitTermination();
sluice.conf.unset('sluice.sql.streaming.checkpointLocation');
console.log(readdirSync('checkpoints/lesson03/root').map((d) => (d === 'lesson03_named' ? d : '<random id>')));

// %% [markdown]
// ## What is inside
//
// One query with its own folder. After it runs: `metadata` (the query id, kept across restarts),
// `sources/0/0` (where it started: `startingOffsets` resolved once), `offsets/N` (batch N's end offsets,
// **written before the batch reads anything**) and `commits/N` (written **after** the sink accepted batch N).
//
// A Spark 3.5 checkpoint has the same files in the same layout (and `state/` for a stateful query). Two
// differences in `offsets/N`: its `conf` holds Spark's names (`spark.sql.shuffle.partitions`, the state store
// provider, the watermark policy, …) where Sluice writes `sluice.*` ones, and Spark records no
// `sluice.sources` — it does not note which sources the query had, which matters below.

// %%
const cp = 'checkpoints/lesson03/query';
await admin.recreateTopic('lesson03-out', 1);
const run = async (trigger: { availableNow: true }) =>
  (await words().writeStream.format('kafka').options(conn.kafkaOptions).option('topic', 'lesson03-out').option('checkpointLocation', cp).trigger(trigger).start()).awaitTermination();
await run({ availableNow: true });
for (const f of ['metadata', 'sources/0/0', 'offsets/0', 'commits/0']) console.log(`── ${f}\n${readFileSync(`${cp}/${f}`, 'utf8').trim()}`);

// %% [markdown]
// The inspector says the same in words (`node bin/sluice.js checkpoint explain <dir>` from a terminal). It is
// Sluice's; Spark has no such command — there you read the files themselves.

// %%
console.log(formatCheckpointReport(explainCheckpoint(cp)).replace(/query id: .*/, 'query id: <uuid>').replace(/Checkpoint .*/, 'Checkpoint ' + cp));

// %% [markdown]
// ## A crash after the sink wrote, before the commit
//
// Two more records; batch 1 writes them to Kafka — and the process dies before `commits/1` reaches the disk
// (simulated by removing it). The inspector sees a planned but uncommitted batch; the restart re-runs it
// with **exactly** the logged offsets. The Kafka sink is at-least-once by default — as Spark's — so the
// two records are in the output twice: exactly-once needs a sink that recognises batch 1 when it comes again.
// Sluice's Kafka sink does with `.option('exactlyOnce', 'true')`: lesson 06 crashes a query at this same
// moment with it.

// %%
await send(['d', 'e']);
await run({ availableNow: true });
rmSync(`${cp}/commits/1`);
console.log(explainCheckpoint(cp).nextAction);
await run({ availableNow: true });
const afterRerun = (await readTopic(conn.kafka, 'lesson03-out')).map((r) => r.value!.toString());
console.log('output topic:', afterRerun.join(' '));

// %% [markdown]
// ## A crash before the sink wrote
//
// Here the sink fails in batch 1 (a `foreachBatch` that throws, as a crashing process would): `offsets/1`
// exists, `commits/1` does not. The restart re-runs batch 1 with the same offsets, and this time the rows
// are written — once.

// %%
const cp2 = 'checkpoints/lesson03/crash-before-sink';
const written: string[] = [];
let failOnce = true;
const sinkQuery = async () => {
  const q = await words().writeStream.option('checkpointLocation', cp2).trigger({ availableNow: true })
    .foreachBatch(async (batch, batchId) => {
      if (batchId === 1 && failOnce) {
        failOnce = false;
        throw new Error('simulated crash inside batch 1, before writing');
      }
      for (const r of await batch.collect()) written.push(`${batchId}:${String(r.value)}`);
    })
    .start();
  try {
    await q.awaitTermination();
  } catch (e) {
    console.log('query failed:', (e as Error).message.replace(/\[id = .*?\] /, ''));
  }
};
await admin.recreateTopic('lesson03-in', 1);
await send(['x', 'y']);
await sinkQuery(); // batch 0: x y
await send(['z']);
await sinkQuery(); // batch 1 fails
console.log(explainCheckpoint(cp2).nextAction);
await sinkQuery(); // batch 1 re-run
console.log('written:', written.join(' '));

// %% [markdown]
// **If a failed batch is re-processed anyway, why keep both offsets and commits?** `offsets/N` says *what*
// batch N is, before it runs: a re-run reads exactly the same records (and uses the same watermark and batch
// time), so state and idempotent sinks see the same batch under the same id. Without it a restart would ask
// Kafka for "the latest" again and build a different batch. `commits/N` says that batch N *finished*
// (state and sink done); without it nobody could tell whether to re-run N or plan N+1.
//
// **Crash after the sink wrote but before `commits/N`: is the output duplicated?** With a Kafka sink, yes
// (shown above) — in Spark 3.5 as in Sluice. Spark's Kafka sink is at-least-once: each task sends its rows
// and flushes; no Kafka transaction is involved. Setting `kafka.transactional.id` does not change that: the
// sink never calls Kafka's transaction API (`initTransactions`, `beginTransaction`, `commitTransaction`), so
// nothing ties batch N to a transaction — and Kafka's producer refuses to send with a transactional id
// before `initTransactions()`, so the write fails instead. Sluice's Kafka sink is at-least-once by default
// too; with `exactlyOnce=true` it writes each batch in one Kafka transaction with a marker of the batch, so a
// re-run batch is recognised and not written again (lesson 06).
//
// Exactly-once is end to end: a replayable source, the offsets log, and a sink that recognises a re-run
// batch by its id. Sluice's memory sink does; in Spark, the memory sink and the file sink do. With
// `foreachBatch` it is yours to do: skip a batch id already written, or upsert by a key so that writing twice
// changes nothing. Downstream of an at-least-once Kafka sink, readers de-duplicate by a unique key.
//
// ## A changed query on an old checkpoint
//
// The same checkpoint, but the query now reads another topic. **Spark 3.5 does not compare the sources**: it
// resumes from the logged offsets, which name `lesson03-in`'s partition, while the new subscription has only
// `lesson03-other`'s. A partition in the start offsets but missing from the end offsets counts as deleted,
// so Spark reports data loss (`… are gone. Some data may have been missed.`) and, with the default
// `failOnDataLoss=true`, the query fails at its first batch. Sluice refuses earlier, before any batch, and
// says what changed:

// %%
const changed = await sluice.readStream.format('kafka').options(conn.kafkaOptions).option('subscribe', 'lesson03-other').load()
  .select(to_json(struct('*')).alias('value'))
  .writeStream.format('kafka').options(conn.kafkaOptions).option('topic', 'lesson03-out').option('checkpointLocation', cp).start();
try {
  await changed.awaitTermination();
} catch (e) {
  console.log((e as Error).message.replace(/^Query .*? terminated with exception: /, '').replace(/at .*checkpoints/, 'at checkpoints'));
}

// %% [markdown]
// Neither outcome is the learner's "the query started and wrote nothing": that one comes next.
//
// ## Started, but no output: the checkpoint is already at the end
//
// `startingOffsets` is read once, when a query starts **without** a checkpoint; what it resolves to is kept
// in `sources/0/0`. From then on the checkpoint decides: a restart reads from where the last batch ended. So a
// query restarted with `startingOffsets: earliest` on a checkpoint that has read the whole topic starts, runs,
// and writes nothing — until new records arrive. Below: a first run reads x y z; the same query, restarted
// on its checkpoint, writes nothing; the checkpoint and the topic's end offsets show why; a new checkpoint
// folder reads from the earliest offset again.

// %%
const cp3 = 'checkpoints/lesson03/caught-up';
const caughtUp = async (checkpoint: string) => {
  const rows: string[] = [];
  const query = await words().writeStream.option('checkpointLocation', checkpoint).trigger({ processingTime: '500 milliseconds' })
    .foreachBatch(async (batch) => {
      for (const r of await batch.collect()) rows.push(String(r.value));
    })
    .start();
  await query.processAllAvailable();
  return { query, rows };
};
const firstRun = await caughtUp(cp3);
await firstRun.query.stop();
console.log('first run (no checkpoint yet):', firstRun.rows.join(' '));
const restart = await caughtUp(cp3); // the same query, still startingOffsets: earliest
console.log('restart on the same checkpoint → active:', restart.query.isActive, '| status:', restart.query.status.message,
  '| rows written:', restart.rows.length, '| progress reports:', restart.query.recentProgress.length);
await restart.query.stop();
const topicEnd = await admin.listOffsets([{ topic: 'lesson03-in', partition: 0 }], 'latest');
console.log('end offsets of lesson03-in:', JSON.stringify(topicEnd));
console.log(formatCheckpointReport(explainCheckpoint(cp3)).replace(/query id: .*/, 'query id: <uuid>').replace(/Checkpoint .*/, 'Checkpoint ' + cp3));
const fresh = await caughtUp('checkpoints/lesson03/caught-up-new');
await fresh.query.stop();
console.log('a new checkpoint folder:', fresh.rows.join(' '));

// %% [markdown]
// The checkpoint's last batch ended at offset 3 — the topic's end — and `startingOffsets` was not read
// again (`started from` is the first run's). The query was healthy, just caught up.
//
// **In PySpark 3.5** the restarted query looks the same: `q.isActive` is `True`, `q.status["message"]` is
// `'Waiting for data to arrive'`, and nothing is written. One difference: Spark posts a progress event for an
// idle trigger too (at most one per 10 s), so `q.lastProgress["numInputRows"]` is `0`; Sluice posts none, and
// `recentProgress` stays empty. To see why, compare the last line of `<checkpoint>/offsets/<latest N>` with the
// topic's end offsets (`node bin/sluice.js topics describe <topic>` prints them): equal means caught up. To
// read the topic again, give the query a new `checkpointLocation`.

// %% [markdown]
// ## Check

// %%
assert.deepEqual(afterRerun, ['A', 'B', 'C', 'D', 'E', 'D', 'E']);
assert.deepEqual(written, ['0:X', '0:Y', '1:Z']);
assert.equal(explainCheckpoint(cp).batches.length, 2);
assert.ok(changed.exception?.message.includes('belongs to a query with different sources'));
assert.deepEqual(firstRun.rows, ['X', 'Y', 'Z']);
assert.deepEqual(restart.rows, []);
assert.deepEqual(topicEnd, { 'lesson03-in': { '0': 3 } });
assert.deepEqual(explainCheckpoint(cp3).batches.map((b) => b.offsets), [[{ 'lesson03-in': { '0': 3 } }]]);
assert.deepEqual(fresh.rows, ['X', 'Y', 'Z']);
await producer.close();
admin.disconnect();
console.log('lesson 03 checks passed');
