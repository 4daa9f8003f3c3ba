// %% [markdown]
// # Lesson 03 — Checkpoints
//
// A checkpoint is how a query survives a restart: what it read, what it finished, its state. This lesson
// opens one up, crashes a query before and after the commit, and changes a query on an old checkpoint.

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

// %%
const cp = 'checkpoints/lesson03/query';
await admin.recreateTopic('lesson03-out', 1);
const run = async (trigger: { availableNow: true }) =>
  (await words().writeStream.format('kafka').options(conn.kafkaOptions).option('topic', 'lesson03-out').option('checkpointLocation', cp).trigger(trigger).start()).awaitTermination();
await run({ availableNow: true });
for (const f of ['metadata', 'sources/0/0', 'offsets/0', 'commits/0']) console.log(`── ${f}\n${readFileSync(`${cp}/${f}`, 'utf8').trim()}`);

// %% [markdown]
// The inspector says the same in words (`node bin/sluice.js checkpoint explain <dir>` from a terminal):

// %%
console.log(formatCheckpointReport(explainCheckpoint(cp)).replace(/query id: .*/, 'query id: <uuid>').replace(/Checkpoint .*/, 'Checkpoint ' + cp));

// %% [markdown]
// ## A crash after the sink wrote, before the commit
//
// Two more records; batch 1 writes them to Kafka — and the process dies before `commits/1` reaches the disk
// (simulated by removing it). The inspector sees a planned but uncommitted batch; the restart re-runs it
// with **exactly** the logged offsets. The Kafka sink is at-least-once (as Spark's), so the two records are
// in the output twice: exactly-once needs a sink that recognises batch 1 (lesson 06).

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
// **Crash after the sink wrote but before `commits/N`: is the output duplicated?** With the at-least-once
// Kafka sink, yes (shown above). Exactly-once is end to end: replayable source + offsets log + a sink that is
// idempotent per batch id (the memory sink, a transactional Kafka sink, an upsert keyed by batch id).
//
// ## A changed query on an old checkpoint
//
// The same checkpoint, but the query now reads another topic. Spark would start it and possibly output
// nothing (the old offsets mean nothing for the new topic). Sluice refuses and says what changed:

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
// ## Check

// %%
assert.deepEqual(afterRerun, ['A', 'B', 'C', 'D', 'E', 'D', 'E']);
assert.deepEqual(written, ['0:X', '0:Y', '1:Z']);
assert.equal(explainCheckpoint(cp).batches.length, 2);
assert.ok(changed.exception?.message.includes('belongs to a query with different sources'));
await producer.close();
admin.disconnect();
console.log('lesson 03 checks passed');
