// %% [markdown]
// # Lesson 09 — Joins: enrichment, and orders with their payments
//
// Two joins cover most real pipelines:
// - **stream-static**: each event enriched with a table (customers, products). The table side has no
//   state; it is read again for every micro-batch (unless cached).
// - **stream-stream**: orders matched with payments that arrive on another topic, within 10 minutes. Both
//   sides wait in **state** for their partner; watermarks and a time range say when a row can no longer
//   match and may leave.
//
// Sluice follows Spark 3.5's rules for both. Each call is shown with its PySpark form beside it; where Sluice
// differs, the text says so. Each side is a Kafka topic of JSON, read as in PySpark 3.5:
//
// ```python
// from pyspark.sql.functions import col, expr, from_json
// def read(topic, ddl):
//     return (spark.readStream.format("kafka")
//             .option("kafka.bootstrap.servers", "localhost:9092")
//             .option("subscribe", topic)
//             .option("startingOffsets", "earliest")      # a new query only; a checkpoint's offsets win after
//             .load()
//             .select(from_json(col("value").cast("string"), ddl).alias("v")).select("v.*"))
// orders = read("lesson09-orders", "order_id STRING, user_id STRING, amount DOUBLE, order_time TIMESTAMP")
// ```

// %%
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import {
  SluiceSession, KafkaAdmin, AckedProducer, connection, col, expr, from_json, type DataFrame, type Row, type StreamingQuery,
} from 'sluice';

const conn = connection();
const admin = new KafkaAdmin(conn.kafka);
for (const topic of ['lesson09-orders', 'lesson09-payments']) await admin.recreateTopic(topic, 1);
rmSync('checkpoints/lesson09', { recursive: true, force: true });
rmSync('data/lesson09', { recursive: true, force: true });
mkdirSync('data/lesson09/customers', { recursive: true });
const sluice = SluiceSession.builder().appName('lesson09').getOrCreate();
const t = (hhmm: string): string => `2025-08-22T${hhmm}:00.000Z`;
/** hh:mm, or — for no time (and for the epoch: the watermark before any data). */
const hm = (d: unknown): string => (d == null || new Date(d as string).getTime() === 0 ? '—' : new Date(d as string).toISOString().slice(11, 16));
const producer = new AckedProducer(conn.kafka);
const send = async (topic: string, rows: object[]): Promise<void> => {
  await producer.send(rows.map((r) => ({ topic, value: Buffer.from(JSON.stringify(r)) })));
  await producer.flush();
};
const order = (id: string, user: string, amount: number, time: string) => ({ order_id: id, user_id: user, amount, order_time: t(time) });
const payment = (id: string, method: string, time: string) => ({ order_id: id, method, paid_at: t(time) });
const read = (topic: string, ddl: string): DataFrame =>
  sluice.readStream.format('kafka').options(conn.kafkaOptions).option('subscribe', topic).option('startingOffsets', 'earliest').load()
    .select(from_json(col('value').cast('string'), ddl).alias('v')).select('v.*');
console.log('topics recreated');

// %% [markdown]
// ## Stream-static: enrich orders with a customer table
//
// The customer table is a JSON file read with `session.read` — a **static** DataFrame. Joining a stream
// with it keeps no state: every micro-batch joins its own orders with the table as it is *then*.
//
// ```python
// customers = spark.read.schema("user_id STRING, tier STRING").json("data/lesson09/customers")
// cached_customers = spark.read.schema("user_id STRING, tier STRING").json("data/lesson09/customers").cache()
// enriched = (orders.join(customers, "user_id", "left")          # the same call
//             .writeStream.format("memory").queryName("enriched")
//             .option("checkpointLocation", "checkpoints/lesson09/enriched").start())
// ```
//
// Two differences from Spark, both about the static side:
// - **Spark caches by plan, not by object.** After `.cache()`, every DataFrame with the same plan — `customers`
//   too, built by the same `spark.read` call — reads the cached rows; to see both behaviours in PySpark, run
//   them in separate sessions, or `cached_customers.unpersist()` before starting `enriched`. Sluice's `cache()`
//   returns a new cached DataFrame and leaves other DataFrames reading the files.
// - **Spark lists the folder once**, when `spark.read` builds the DataFrame: each batch re-reads the files
//   listed then (so the rewritten `part-0.json` below is seen), but a file added to the folder later is not —
//   build the table inside `foreachBatch` (the end of this lesson) to pick up new files. Sluice lists the
//   folder again every batch.

// %%
const writeCustomers = (rows: object[]): void =>
  writeFileSync('data/lesson09/customers/part-0.json', rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
writeCustomers([{ user_id: 'ann', tier: 'gold' }, { user_id: 'bob', tier: 'silver' }]);
const customers = sluice.read.schema('user_id STRING, tier STRING').json('data/lesson09/customers');
const cachedCustomers = sluice.read.schema('user_id STRING, tier STRING').json('data/lesson09/customers').cache();
const orders = read('lesson09-orders', 'order_id STRING, user_id STRING, amount DOUBLE, order_time TIMESTAMP');
const startEnrich = (table: DataFrame, name: string): Promise<StreamingQuery> =>
  orders.join(table, 'user_id', 'left').writeStream.format('memory').queryName(name)
    .option('checkpointLocation', `checkpoints/lesson09/${name}`).start();
const enriched = await startEnrich(customers, 'enriched');
const enrichedCached = await startEnrich(cachedCustomers, 'enriched_cached');
const both = async (...qs: StreamingQuery[]): Promise<void> => { for (const q of qs) await q.processAllAvailable(); };
await send('lesson09-orders', [order('o1', 'ann', 10, '12:00'), order('o2', 'cy', 20, '12:01')]);
await both(enriched, enrichedCached);
// cy signs up: the file changes between two batches.
writeCustomers([{ user_id: 'ann', tier: 'gold' }, { user_id: 'bob', tier: 'silver' }, { user_id: 'cy', tier: 'new' }]);
await send('lesson09-orders', [order('o3', 'cy', 30, '12:15')]);
await both(enriched, enrichedCached);
// memoryTable(name).batches (each batch's rows apart) is Sluice's; Spark's memory sink keeps one table (lesson 04).
const tiers = (name: string): string[][] => [0, 1].map((b) => (sluice.memoryTable(name).batches.get(b) ?? []).map((r: Row) => `${r.order_id}:${r.user_id}:${r.tier ?? 'null'}`));
console.log('re-read every batch:', tiers('enriched'));
console.log('cached:             ', tiers('enriched_cached'));
console.log('state operators:', enriched.lastProgress!.stateOperators.length);

// %% [markdown]
// The first query read the file again for batch 1 and found `cy`; the cached one still has the table as it
// was at its first batch. Neither keeps state (`stateOperators` is empty): a stream-static join is a
// lookup per row. It has Spark's limits too: the stream must be the side whose rows are kept in an outer
// join (`orders LEFT JOIN customers` works; `customers LEFT JOIN orders` and a full outer join are refused
// with the reason), because the static side's unmatched rows would have to wait for a stream that never ends.

// %% [markdown]
// ## Stream-stream: orders with their payments, within 10 minutes
//
// Payments arrive on their own topic. An order matches a payment of the same `order_id` made within 10
// minutes after it:
//
// ```python
// o = orders.withWatermark("order_time", "10 minutes").alias("o")
// p = payments.withWatermark("paid_at", "10 minutes").alias("p")
// cond = expr("o.order_id = p.order_id AND p.paid_at >= o.order_time AND p.paid_at <= o.order_time + interval 10 minutes")
// all_orders = (o.join(p, cond, "left_outer")                    # "inner" is the default
//               .select(col("o.order_id").alias("order_id"), "user_id", "order_time", "method", "paid_at")
//               .writeStream.format("memory").queryName("all_orders")
//               .outputMode("append")                           # a stream-stream join runs in append mode only
//               .option("checkpointLocation", "checkpoints/lesson09/all_orders").start())
// ```
//
// Below, the same in Sluice, twice: an inner join, and a left outer join that also reports orders that were
// never paid. One difference shows only if you look for it: a column both sides have (`order_id`) is kept as
// `o.order_id` and `p.order_id` in Sluice, where Spark keeps two columns both named `order_id` (a row object
// cannot hold two values under one name). `col("o.order_id")` works in both.

// %%
const o = orders.withWatermark('order_time', '10 minutes').alias('o');
const p = read('lesson09-payments', 'order_id STRING, method STRING, paid_at TIMESTAMP').withWatermark('paid_at', '10 minutes').alias('p');
const condition = expr('o.order_id = p.order_id AND p.paid_at >= o.order_time AND p.paid_at <= o.order_time + interval 10 minutes');
const startJoin = (how: string, name: string): Promise<StreamingQuery> =>
  o.join(p, condition, how).select(col('o.order_id').alias('order_id'), 'user_id', 'order_time', 'method', 'paid_at')
    .writeStream.format('memory').queryName(name).outputMode('append').option('checkpointLocation', `checkpoints/lesson09/${name}`).start();
// The orders topic already holds o1 (12:00), o2 (12:01), o3 (12:15); o1's payment comes before the queries start.
await send('lesson09-payments', [payment('o1', 'card', '12:04')]);
const paid = await startJoin('inner', 'paid');
const all = await startJoin('left_outer', 'all_orders');
const step = async (orders_: object[], payments_: object[]): Promise<void> => {
  if (orders_.length) await send('lesson09-orders', orders_);
  if (payments_.length) await send('lesson09-payments', payments_);
  await both(paid, all);
};
await both(paid, all);
await step([], [payment('o2', 'card', '12:20')]);                                   // 19 minutes after o2: too late to match
await step([order('o4', 'dee', 40, '12:30'), order('o5', 'eve', 50, '12:40')], [payment('o4', 'cash', '12:33'), payment('o3', 'card', '12:24')]);
await step([order('o0', 'gus', 5, '12:05')], [payment('o0', 'card', '12:06')]);    // a late order, and its payment
const idleBefore = all.recentProgress.length;
await both(paid, all);                                                              // nothing new: the inputs are idle
const idleBatches = all.recentProgress.length - idleBefore;
await step([order('o6', 'fay', 60, '13:10')], [payment('o6', 'card', '13:12')]);
const show = (r: Row): string => `${r.order_id} ${hm(r.order_time)}→${r.method ? `${r.method} ${hm(r.paid_at)}` : 'unpaid'}`;
const traceOf = (q: StreamingQuery, name: string) => q.recentProgress.map((pr) => ({
  batch: pr.batchId,
  rows: pr.numInputRows,
  watermark: hm(pr.eventTime.watermark),
  output: (sluice.memoryTable(name).batches.get(pr.batchId) ?? []).map(show).sort().join(', '),
  state: pr.stateOperators.find((s) => s.operatorName === 'symmetricHashJoin')!.numRowsTotal,
  dropped: pr.stateOperators.find((s) => s.operatorName === 'symmetricHashJoin')!.numRowsDroppedByWatermark,
}));
console.table(traceOf(all, 'all_orders'));
console.log('batches while idle:', idleBatches);

// %% [markdown]
// Reading the left outer trace (the inner join's is the same without the `unpaid` rows):
// - **One global watermark**, the minimum of the two inputs' (max event time − 10 minutes;
//   `spark.sql.streaming.multipleWatermarkPolicy` in Spark, `sluice.sql.streaming.multipleWatermarkPolicy` in
//   Sluice, chooses `min` or `max` — lesson 10). After the first batch orders say 12:05 (12:15 − 10 minutes)
//   and payments 11:54: the watermark is 11:54. Sluice also logs each input's own in `commits/N`
//   (`operatorWatermarksMs`, below); Spark's `commits/N` holds only `nextBatchWatermarkMs` and keeps the
//   per-input values in memory.
// - **Each side leaves state when the watermark passes its bound.** From the condition, an order can still
//   match a payment up to 10 minutes after it, so orders leave once the watermark passes `order_time + 10
//   minutes`; a payment can only match an order at or before it, so payments leave once the watermark passes
//   `paid_at` (1 ms of slack each: the bounds are inclusive). o1 and o2 leave in the batch that runs with
//   watermark 12:23; o2's late payment (12:20) too.
// - **The null row of an outer join comes out when the order leaves state**, not before: o2's `unpaid` row
//   appears in that same batch, 22 minutes after o2 — the earliest moment no payment could still match.
// - **Idle inputs stall it.** o5 (12:40) was never paid, but nothing arrived after it for a while: the
//   watermark did not move, no batch ran, and o5 waited. Its `unpaid` row came only after o6 moved both
//   inputs' watermarks past 12:50.
// - **A late order is dropped**: o0 (12:05) arrived when the watermark was 12:23; its payment too. Both are
//   counted in `numRowsDroppedByWatermark` (a join checks each input row, so Spark counts 2 as well). In
//   PySpark: `q.lastProgress["stateOperators"][0]["numRowsDroppedByWatermark"]`, and `["numRowsTotal"]` for
//   the rows in state.

// %%
const commits = (name: string): string[] => all.recentProgress.map((pr) => {
  const c = JSON.parse(readFileSync(`checkpoints/lesson09/${name}/commits/${pr.batchId}`, 'utf8').split('\n')[1]);
  return `batch ${pr.batchId}: next watermark ${hm(c.nextBatchWatermarkMs)} = min(orders ${hm(c.operatorWatermarksMs['0'])}, payments ${hm(c.operatorWatermarksMs['1'])})`;
});
console.log(commits('all_orders').join('\n'));

// %% [markdown]
// ## What each kind of join keeps in state, and when it lets go
//
// | join | state | released |
// |---|---|---|
// | stream-static | none | — (the static side is re-read every batch, or cached) |
// | stream-stream, no watermark or no time range | every row of both sides | never: it grows forever, even with watermarks |
// | stream-stream, watermarks + time range (or a shared window in the keys) | rows that can still match | when the watermark passes a row's bound |
// | stream + a batch read inside `foreachBatch` | none | the table is read again in each call |
//
// The second row is the trap: watermarks alone bound nothing. Without a range, neither engine can know that
// an order will never be paid, so it keeps it — and the state size keeps growing. Sluice's `explain()` says so
// in its `state operator` lines (Sluice's own; Spark's `query.explain()` prints only the physical plan):

// %%
const unbounded = await o.join(p, expr('o.order_id = p.order_id'))
  .writeStream.format('memory').queryName('unbounded').option('checkpointLocation', 'checkpoints/lesson09/unbounded').start();
await unbounded.processAllAvailable();
console.log(unbounded.explain().split('\n').filter((l) => l.startsWith('state operator')).join('\n'));
const unboundedState = unbounded.lastProgress!.stateOperators[0].numRowsTotal;
console.log('rows in state (never released):', unboundedState, '— the bounded join holds', all.lastProgress!.stateOperators[0].numRowsTotal);

// %% [markdown]
// The last row of the table: `foreachBatch` hands each micro-batch over as a static DataFrame, so a
// stream-static join can also be written inside it — the table is then read in each call, explicitly:
//
// ```python
// def per_batch(batch, batch_id):
//     table = spark.read.schema("user_id STRING, tier STRING").json("data/lesson09/customers")
//     rows = batch.join(table, "user_id", "left").collect()
// orders.writeStream.option("checkpointLocation", "checkpoints/lesson09/foreach").foreachBatch(per_batch).start()
// ```

// %%
const perBatch: string[] = [];
const viaForeach = await orders.writeStream.option('checkpointLocation', 'checkpoints/lesson09/foreach')
  .foreachBatch(async (batch, batchId) => {
    const rows = await batch.join(sluice.read.schema('user_id STRING, tier STRING').json('data/lesson09/customers'), 'user_id', 'left').collect();
    perBatch.push(`batch ${batchId}: ${rows.map((r) => `${r.order_id}:${r.tier ?? 'null'}`).sort().join(' ')}`);
  }).start();
await viaForeach.processAllAvailable();
console.log(perBatch.join('\n'));

// %% [markdown]
// ## Check

// %%
assert.deepEqual(tiers('enriched'), [['o1:ann:gold', 'o2:cy:null'], ['o3:cy:new']]);
assert.deepEqual(tiers('enriched_cached'), [['o1:ann:gold', 'o2:cy:null'], ['o3:cy:null']]);
assert.equal(enriched.lastProgress!.stateOperators.length, 0);
const outputs = (name: string): string[] => [...sluice.memoryTable(name).batches.values()].flat().map(show).sort();
assert.deepEqual(outputs('paid'), ['o1 12:00→card 12:04', 'o3 12:15→card 12:24', 'o4 12:30→cash 12:33', 'o6 13:10→card 13:12']);
assert.deepEqual(traceOf(all, 'all_orders').map((r) => [r.watermark, r.output, r.state, r.dropped]), [
  ['—', 'o1 12:00→card 12:04', 4, 0],                                 // o1 o2 o3 and o1's payment; next: min(12:05, 11:54)
  ['11:54', '', 4, 0],                                                // no-data batch: nothing passes its bound
  ['11:54', '', 5, 0],                                                // o2's payment at 12:20: more than 10 minutes after o2
  ['12:05', '', 4, 0],                                                // payments leave at paid_at <= 12:04:59.999: o1's
  ['12:05', 'o3 12:15→card 12:24, o4 12:30→cash 12:33', 8, 0],        // next: min(12:40 − 10, 12:33 − 10) = 12:23
  ['12:23', 'o2 12:01→unpaid', 5, 0],                                 // orders leave at order_time <= 12:12:59.999
  ['12:23', '', 5, 2],                                                // o0 (12:05) and its payment (12:06) are late
  ['12:23', 'o6 13:10→card 13:12', 7, 0],                             // next: min(13:00, 13:02)
  ['13:00', 'o5 12:40→unpaid', 2, 0],                                 // orders <= 12:49:59.999 leave: o5 unpaid
]);
assert.equal(idleBatches, 0);
assert.ok(unboundedState > all.lastProgress!.stateOperators[0].numRowsTotal);
for (const q of [enriched, enrichedCached, paid, all, unbounded, viaForeach]) await q.stop();
await producer.close();
console.log('lesson 09 checks passed');
