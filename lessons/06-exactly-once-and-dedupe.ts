// %% [markdown]
// # Lesson 06 — Exactly-once and deduplication
//
// A Kafka-to-Kafka query that crashes at the wrong moment writes some records twice. This lesson crashes a
// real query at that moment and counts what a consumer sees, first with the default Kafka sink
// (at-least-once, as Spark's), then with Sluice's exactly-once sink. Then it makes the *consumer* side
// idempotent with `dropDuplicates`, with and without a watermark, and with `dropDuplicatesWithinWatermark`,
// and shows the state each one keeps.
//
// This lesson answers: **How do I make a Kafka-to-Kafka stream idempotent? If the stream writes to Kafka but
// fails before it commits, what happens? The transaction id is the same for the whole query: how is a
// duplicate batch detected?**

// %%
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { SluiceSession, KafkaAdmin, AckedProducer, connection, readTopic, col, runPipelineFile } from 'sluice';

const conn = connection();
const admin = new KafkaAdmin(conn.kafka);
const outputs = ['lesson06-out-alo', 'lesson06-out-eos', 'lesson06-out-eos-mid'];
for (const t of ['lesson06-orders', ...outputs]) await admin.recreateTopic(t, 1);
rmSync('checkpoints/lesson06', { recursive: true, force: true });
const producer = new AckedProducer(conn.kafka);
// 30 orders, one partition: the pipeline reads 10 per batch, so batches 0, 1 and 2.
await producer.send(Array.from({ length: 30 }, (_, i) => ({ topic: 'lesson06-orders', key: Buffer.from(`order-${i}`), value: Buffer.from(JSON.stringify({ order: i, amount: 10 + i })) })));
await producer.flush();
console.log('30 orders in lesson06-orders');

// %% [markdown]
// ## The at-least-once sink, crashed after it wrote a batch
//
// The pipeline `lessons/pipelines/06-orders.ts` copies the orders to another topic, 10 per batch. It runs as
// its own process because it is going to be killed: with `SLUICE_FAULT=after-sink@1` Sluice kills it with
// SIGKILL after batch 1's records are acknowledged by Kafka and before `commits/1` is written — the worst
// moment, since the output is out but the checkpoint does not know it. Then it runs again without the fault.

// %%
/** Runs the pipeline as its own process (`sluice run`); resolves to how it ended and what it printed, ids and pids as <…>. */
const runPipeline = (env: Record<string, string>) => runPipelineFile('pipelines/06-orders.ts', env);
/** What a consumer of `topic` sees: how many records, and how many of them repeat an order already seen. */
async function consume(topic: string, isolation: 'read_committed' | 'read_uncommitted' = 'read_committed') {
  const records = await readTopic({ ...conn.kafka, 'isolation.level': isolation }, topic);
  const orders = new Set(records.map((r) => r.key!.toString()));
  return { records: records.length, distinct: orders.size, duplicates: records.length - orders.size };
}

const alo = { OUT: 'lesson06-out-alo', CHECKPOINT: 'checkpoints/lesson06/alo', EXACTLY_ONCE: 'false' };
const aloCrash = await runPipeline({ ...alo, SLUICE_FAULT: 'after-sink@1' });
const aloRestart = await runPipeline(alo);
const aloSeen = await consume('lesson06-out-alo');
console.log(`first run, ended by ${aloCrash.signal}:\n  ${aloCrash.lines.join('\n  ')}`);
console.log(`restart, exit code ${aloRestart.code}:\n  ${aloRestart.lines.join('\n  ')}`);
console.log('a consumer of lesson06-out-alo sees:', aloSeen);

// %% [markdown]
// The restart found `offsets/1` without `commits/1` and ran batch 1 again with the same offsets — the only
// safe thing it can do, since it cannot know whether the sink got the batch. The sink wrote it again: orders
// 10–19 are in the topic twice. That is **at-least-once**: nothing lost, the batch in flight possibly twice.
// Spark's Kafka sink is the same (its documentation: "the Kafka sink provides at-least-once").
//
// ## Why `kafka.transactional.id` alone is not enough
//
// A common answer to "how do I make it exactly-once" is to set a transactional id on the producer. Sluice
// refuses that setting on its own, and says why:

// %%
const sluice = SluiceSession.builder().appName('lesson06').getOrCreate();
let transactionalIdAlone = '';
try {
  await sluice.readStream.format('kafka').options(conn.kafkaOptions).option('subscribe', 'lesson06-orders').load()
    .select(col('key'), col('value'))
    .writeStream.format('kafka').options(conn.kafkaOptions).option('topic', 'lesson06-out-alo')
    .option('kafka.transactional.id', 'my-query')
    .option('checkpointLocation', 'checkpoints/lesson06/txn-id-alone').start();
} catch (e) {
  transactionalIdAlone = (e as Error).message;
}
console.log(transactionalIdAlone);

// %% [markdown]
// A transactional id makes each write atomic and fences an older producer with the same id, but it says
// nothing about *which batch* a transaction carried. After the crash above, the restart would write batch 1
// again in a new transaction, and that transaction would commit too: the same duplicates, now atomic.
//
// ## The exactly-once sink
//
// `.option('exactlyOnce', 'true')` ties each transaction to a batch:
// - each batch is **one Kafka transaction** under `transactional.id = sluice-<queryId>` (the query id is in
//   the checkpoint, so it is the same for every run of the query);
// - the transaction also carries a **marker** record, "query Q wrote batch N", in the query's marker topic
//   `__sluice_batches_<queryId>`. It commits with the batch's records: a read_committed reader sees both or
//   neither;
// - `commits/N` is written only after the transaction commits;
// - on a restart, `initTransactions` fences any older producer of the query and aborts the transaction it
//   left open; then the last committed marker says which batch is already in Kafka. A re-run batch at or
//   below it is computed again (its state must be rebuilt) but not written.
//
// So the answer to "the transaction id is the same for the whole query: how is a duplicate batch detected?"
// is: not by the id, by the **marker** — the batch id written inside the transaction.
//
// The same crash, after batch 1's transaction committed and before `commits/1`:

// %%
const eos = { OUT: 'lesson06-out-eos', CHECKPOINT: 'checkpoints/lesson06/eos', EXACTLY_ONCE: 'true' };
const eosCrash = await runPipeline({ ...eos, SLUICE_FAULT: 'after-sink@1' });
const eosRestart = await runPipeline(eos);
const eosSeen = await consume('lesson06-out-eos');
console.log(`first run, ended by ${eosCrash.signal}:\n  ${eosCrash.lines.join('\n  ')}`);
console.log(`restart, exit code ${eosRestart.code}:\n  ${eosRestart.lines.join('\n  ')}`);
console.log('a consumer of lesson06-out-eos sees:', eosSeen);
const queryId = (JSON.parse(readFileSync(`${eos.CHECKPOINT}/metadata`, 'utf8')) as { id: string }).id;
const markers = (await readTopic(conn.kafka, `__sluice_batches_${queryId}`)).map((r) => JSON.parse(r.value!.toString()) as { batchId: number; records: number });
console.log('markers:', markers.map((m) => `batch ${m.batchId} (${m.records} records)`).join(', '));

// %% [markdown]
// The restart re-ran batch 1 (its log says so): the query computed its 10 rows again ("10 out" counts the
// rows the query produced, as in Spark's progress) — a stateful query needs that to rebuild its state — but
// the sink found marker 1 committed and did not write them. Each batch has one marker, and the consumer sees
// 30 orders, once each.
//
// ## A crash in the middle of the transaction
//
// Now the process dies after batch 1's records are in Kafka's log but before its transaction commits
// (`mid-transaction`). The records are there — a `read_uncommitted` consumer can see them — but they belong
// to a transaction that will never commit:

// %%
const mid = { OUT: 'lesson06-out-eos-mid', CHECKPOINT: 'checkpoints/lesson06/eos-mid', EXACTLY_ONCE: 'true' };
const midCrash = await runPipeline({ ...mid, SLUICE_FAULT: 'mid-transaction@1' });
const midRestart = await runPipeline(mid);
const midCommitted = await consume('lesson06-out-eos-mid', 'read_committed');
const midUncommitted = await consume('lesson06-out-eos-mid', 'read_uncommitted');
console.log(`first run, ended by ${midCrash.signal}:\n  ${midCrash.lines.join('\n  ')}`);
console.log(`restart, exit code ${midRestart.code}:\n  ${midRestart.lines.join('\n  ')}`);
console.log('read_committed consumer:  ', midCommitted);
console.log('read_uncommitted consumer:', midUncommitted);

// %% [markdown]
// The restart's `initTransactions` aborted the open transaction; no marker for batch 1 was committed, so batch
// 1 was written again in a new transaction. A **read_committed** consumer sees 30 orders once each. A
// **read_uncommitted** consumer sees 40: the aborted copy of batch 1 is still in the log, and only the
// transaction markers (which read_uncommitted ignores) say it was aborted. Exactly-once holds for
// read_committed consumers only — Sluice's Kafka source reads read_committed by default, as do
// `sluice consume` and the Java consumer with `isolation.level=read_committed`.
//
// What it costs: one transaction per batch (a begin, the marker, a commit: a few milliseconds), and
// read_committed consumers see a batch only when it commits. Dead letters and late events go to their own
// topics outside the transaction: at-least-once.
//
// ## The consumer side: idempotent with dropDuplicates
//
// When the producer is not yours (or is at-least-once), the reader removes duplicates itself. A streaming
// `dropDuplicates` keeps the keys it has seen **as state**, and what it keeps decides both what it catches and
// how large the state grows. Three ways, on the same orders with event times, 10 s of allowed lateness:
//
// | batch | rows (order @ event time) | what they are |
// |---|---|---|
// | 0 | o1 @ 12:00:00, o2 @ 12:00:03 | |
// | 1 | o1 @ 12:00:06, o2 @ 12:00:03, o3 @ 12:00:25 | o1 re-sent and re-stamped; o2 re-sent as it was |
// | 2 | o4 @ 12:01:00 | the stream moves on |
//
// The data arrives in three batches; between them, each query runs until it is idle (`processAllAvailable`).
// With a watermark (max event time − 10 s) that moved, a query also runs a **no-data batch**: no input, only
// eviction of the state the new watermark made useless (lesson 10). So the watermarked queries run six
// batches: data (0), no-data (1), data (2), no-data (3), data (4), no-data (5), with watermarks 1970,
// 11:59:53 (12:00:03 − 10 s), 11:59:53, 12:00:15 (12:00:25 − 10 s), 12:00:15, 12:00:50 (12:01:00 − 10 s).
//
// - `dropDuplicates(['order'])`, **no watermark**: every order seen stays in state forever. Three batches:
//   output o1 o2 | o3 | o4 (both re-sends dropped); state 2 → 3 → 4, growing with every new order.
// - `withWatermark('ts', '10 seconds').dropDuplicates(['order', 'ts'])`: the key includes the event time, so a
//   key can go once the watermark passes its time. But o1 @ 12:00:06 is a *different key* from o1 @ 12:00:00:
//   written twice. State: 2, 2 (nothing below 11:59:53), 4 (o1@:06 and o3@:25 added; o2@:03 was a copy),
//   1 (below 12:00:15 go (o1,:00), (o2,:03), (o1,:06)), 2 (o4), 1 (below 12:00:50 goes (o3,:25)).
// - `withWatermark('ts', '10 seconds').dropDuplicatesWithinWatermark(['order'])` (Spark 3.5): the key is the
//   order alone; each is kept until the watermark passes its first event time + 10 s, so o1 re-stamped 6 s
//   later is caught. State: 2, 2, 3 (o3 added; both re-sends dropped), 1 (o1 expired at 12:00:10 and o2 at
//   12:00:13, below 12:00:15), 2 (o4), 1 (o3 expired at 12:00:35, below 12:00:50).

// %%
const orders = sluice.memoryStream('order STRING, ts TIMESTAMP');
const at = (t: string) => new Date(`2026-01-01T${t}Z`);
const ways = {
  'dropDuplicates(order), no watermark': orders.toDF().dropDuplicates(['order']),
  'dropDuplicates(order, ts) + watermark': orders.toDF().withWatermark('ts', '10 seconds').dropDuplicates(['order', 'ts']),
  'dropDuplicatesWithinWatermark(order)': orders.toDF().withWatermark('ts', '10 seconds').dropDuplicatesWithinWatermark(['order']),
};
const dedupe: Record<string, { output: string[]; batches: string[] }> = {};
const queries = await Promise.all(Object.entries(ways).map(async ([name, df], i) => {
  const q = await df.writeStream.format('memory').queryName(`lesson06_dedupe_${i}`).outputMode('append').start();
  return { name, i, q };
}));
for (const rows of [
  [{ order: 'o1', ts: at('12:00:00') }, { order: 'o2', ts: at('12:00:03') }],
  [{ order: 'o1', ts: at('12:00:06') }, { order: 'o2', ts: at('12:00:03') }, { order: 'o3', ts: at('12:00:25') }],
  [{ order: 'o4', ts: at('12:01:00') }],
]) {
  orders.addData(rows);
  for (const { q } of queries) await q.processAllAvailable();
}
for (const { name, i, q } of queries) {
  await q.stop();
  dedupe[name] = {
    output: sluice.memoryTable(`lesson06_dedupe_${i}`).rows.map((r) => `${String(r.order)}@${(r.ts as Date).toISOString().slice(11, 19)}`),
    batches: q.recentProgress.map((p) =>
      `batch ${p.batchId}: watermark ${p.eventTime.watermark?.slice(11, 19) ?? '(none)'}, ${p.numInputRows} in, ${p.sink.numOutputRows} out, state ${p.stateOperators[0]!.numRowsTotal}`),
  };
}
for (const [name, d] of Object.entries(dedupe)) console.log(`${name}\n  output: ${d.output.join(' ')}\n  ${d.batches.join('\n  ')}`);

// %% [markdown]
// Which to use:
// - **An id that is unique per event** (an order id, a Kafka key written once per event) and may be re-sent
//   with a new timestamp: `dropDuplicatesWithinWatermark(['order'])` — bounded state, and it catches re-sends
//   that arrive within the lateness you allow. A re-send later than that is written again.
// - **Exact copies** (the same id *and* the same event time, as at-least-once delivery produces):
//   `dropDuplicates` with the event-time column in the key and a watermark — bounded state.
// - **No watermark**: correct for any delay, but the state holds every key forever. Fine for a bounded set
//   of keys, a slow leak for an unbounded stream.
//
// Downstream of the exactly-once sink, a read_committed consumer needs none of this for Sluice's own
// retries; it still needs it for duplicates that were already in the input.

// %%
await producer.close();
admin.disconnect();
console.log(`queries still active: ${sluice.streams.active.length}`);

// %% [markdown]
// ## Check
// At-least-once: batch 1's 10 orders twice (40 records, 30 distinct). Exactly-once, crashed after the commit:
// 30 records, batch 1 recognised by its marker, one marker per batch. Crashed mid-transaction: 30 for
// read_committed, 40 for read_uncommitted. Dedupe: the outputs and state sizes worked out above.

// %%
assert.equal(aloCrash.signal, 'SIGKILL');
assert.deepEqual(aloSeen, { records: 40, distinct: 30, duplicates: 10 });
assert.match(transactionalIdAlone, /kafka\.transactional\.id alone does not make the Kafka sink exactly-once/);
assert.equal(eosCrash.signal, 'SIGKILL');
assert.ok(eosCrash.lines.includes('sluice: SLUICE_FAULT=after-sink@1: killing process <pid> with SIGKILL at after-sink of batch 1'));
assert.equal(eosRestart.code, 0);
assert.ok(eosRestart.lines.some((l) => l.includes("Batch 1's output is already in Kafka: its transaction committed before the restart")));
assert.deepEqual(eosSeen, { records: 30, distinct: 30, duplicates: 0 });
assert.deepEqual(markers.map((m) => [m.batchId, m.records]), [[0, 10], [1, 10], [2, 10]]);
assert.equal(midCrash.signal, 'SIGKILL');
assert.ok(midCrash.lines.includes('sluice: SLUICE_FAULT=mid-transaction@1: killing process <pid> with SIGKILL at mid-transaction of batch 1'));
assert.deepEqual(midCommitted, { records: 30, distinct: 30, duplicates: 0 });
assert.deepEqual(midUncommitted, { records: 40, distinct: 30, duplicates: 10 });
const trace = (wms: string[], ins: number[], outs: number[], states: number[]) =>
  wms.map((w, i) => `batch ${i}: watermark ${w}, ${ins[i]} in, ${outs[i]} out, state ${states[i]}`);
const wms = ['00:00:00', '11:59:53', '11:59:53', '12:00:15', '12:00:15', '12:00:50'];
assert.deepEqual(dedupe['dropDuplicates(order), no watermark'], {
  output: ['o1@12:00:00', 'o2@12:00:03', 'o3@12:00:25', 'o4@12:01:00'],
  batches: trace(['(none)', '(none)', '(none)'], [2, 3, 1], [2, 1, 1], [2, 3, 4]),
});
assert.deepEqual(dedupe['dropDuplicates(order, ts) + watermark'], {
  output: ['o1@12:00:00', 'o2@12:00:03', 'o1@12:00:06', 'o3@12:00:25', 'o4@12:01:00'],
  batches: trace(wms, [2, 0, 3, 0, 1, 0], [2, 0, 2, 0, 1, 0], [2, 2, 4, 1, 2, 1]),
});
assert.deepEqual(dedupe['dropDuplicatesWithinWatermark(order)'], {
  output: ['o1@12:00:00', 'o2@12:00:03', 'o3@12:00:25', 'o4@12:01:00'],
  batches: trace(wms, [2, 0, 3, 0, 1, 0], [2, 0, 1, 0, 1, 0], [2, 2, 3, 1, 2, 1]),
});
console.log('lesson 06 checks passed');
