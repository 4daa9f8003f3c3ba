// %% [markdown]
// # Lesson 08 — foreachBatch and external stores
//
// Most queries so far wrote to a sink Sluice knows: Kafka, the console, a memory table. `foreachBatch` hands
// you each micro-batch instead, as an ordinary (batch) DataFrame with its **batch id**, and you write it
// wherever you like:
//
// ```ts
// df.writeStream.foreachBatch(async (batchDF, batchId) => { /* your code: any writes, any logic */ })
//   .option('checkpointLocation', './checkpoints/<query>').start();
// ```
//
// The batch is committed (`commits/N` in the checkpoint) only after your function returns. If the process
// dies before that, a restart calls it again with the **same batchId and the same rows**. So foreachBatch is
// at-least-once, and your writes become exactly-once only if a repeat changes nothing. The batch id is
// there for that.
//
// This lesson answers: **When do I use foreachBatch? What if I also set a format? Which rows does it get in
// each output mode? How do I write one batch to two places? Is state easier with foreachBatch? What is a
// key-value store, and how do I use one from foreachBatch without counting a batch twice after a crash?**

// %%
import assert from 'node:assert/strict';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createClient } from 'redis';
import {
  SluiceSession, KafkaAdmin, AckedProducer, connection, readTopic, col, count, sum, struct, to_json,
  redisUrl, storeKey, upsertBatch, startRedis, stopRedis, freePort, runPipelineFile, type Row,
} from 'sluice';

const conn = connection();
const admin = new KafkaAdmin(conn.kafka);
await admin.recreateTopic('lesson08-copies', 1);
await admin.recreateTopic('lesson08-payments', 1); // one partition: 10 offsets per batch means 10 payments in order
const lessonRedis = 'checkpoints/lesson08/redis'; // where this lesson starts its own Redis, if it needs one
await stopRedis({ dir: lessonRedis, purge: true, log: () => {} }); // one left by an interrupted run; nothing otherwise
rmSync('checkpoints/lesson08', { recursive: true, force: true });
rmSync('data/lesson08', { recursive: true, force: true });
const sluice = SluiceSession.builder().appName('lesson08').getOrCreate();
// The engine's log lines: printed, and kept for the check at the end.
const logged: string[] = [];
sluice.log = (line) => {
  logged.push(line);
  console.log(line);
};
const producer = new AckedProducer(conn.kafka);
console.log('topics recreated');

// %% [markdown]
// ## When to use foreachBatch
//
// Use it when a plain sink cannot do the job:
// - **there is no writer for the destination**: a REST API, a database, a key-value store;
// - **one batch goes to several places** and you want them to get the same rows (below);
// - **you need logic per batch, not per row**: skip empty batches, send one request per batch, merge into a
//   table, write a folder named after the batch.
//
// Here the destination is an HTTP endpoint (a small server started in this cell, on 127.0.0.1), which no
// sink writes to. Each batch becomes **one POST**, and the batch id goes along as an `Idempotency-Key`
// header. A service that remembers the keys it has seen can ignore the repeat that follows a crash. If the
// POST fails, the function throws: the query stops with that error, the batch stays uncommitted, and a
// restart sends it again.
//
// **In PySpark 3.5** (the function runs on the driver; `collect()` brings the batch there):
//
// ```python
// import requests
// def post_batch(batch_df, batch_id):
//     rows = [r.asDict() for r in batch_df.collect()]
//     if not rows:
//         return
//     requests.post("http://127.0.0.1:8000/payments", json=rows,
//                   headers={"Idempotency-Key": f"lesson08-webhook-{batch_id}"}).raise_for_status()
// (payments.writeStream.foreachBatch(post_batch)
//     .option("checkpointLocation", "checkpoints/lesson08/webhook").start())
// ```

// %%
const received: Array<{ key: string; rows: unknown }> = [];
const server = createServer((req: IncomingMessage, res: ServerResponse) => {
  let body = '';
  req.on('data', (d) => (body += d));
  req.on('end', () => {
    received.push({ key: String(req.headers['idempotency-key']), rows: JSON.parse(body) });
    res.end('ok');
  });
});
await new Promise<void>((ready) => server.listen(0, '127.0.0.1', ready));
const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}/payments`;

const webhookInput = sluice.memoryStream('user STRING, amount INT');
const webhook = await webhookInput.toDF().writeStream
  .foreachBatch(async (batchDF, batchId) => {
    const rows = await batchDF.collect();
    if (rows.length === 0) return; // per-batch logic: nothing to send
    const res = await fetch(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': `lesson08-webhook-${batchId}` },
      body: JSON.stringify(rows),
    });
    if (!res.ok) throw new Error(`POST ${endpoint}: ${res.status}`); // fails the query; batch uncommitted
  })
  .option('checkpointLocation', 'checkpoints/lesson08/webhook').start();
webhookInput.addData([{ user: 'alice', amount: 10 }, { user: 'bob', amount: 5 }]);
await webhook.processAllAvailable();
webhookInput.addData([{ user: 'alice', amount: 7 }]);
await webhook.processAllAvailable();
await webhook.stop();
server.closeAllConnections();
server.close();
for (const r of received) console.log(`POST Idempotency-Key: ${r.key}  ${JSON.stringify(r.rows)}`);

// %% [markdown]
// ## A format and foreachBatch on the same query: the last call wins
//
// `format(…)`, `foreachBatch(…)` and `foreach(…)` each choose the sink, so each replaces the ones called
// before it. Spark does this **without a word**. In PySpark 3.5 the query below writes only through the
// function, and the console option is ignored:
//
// ```python
// q = (df.writeStream.format("console")
//        .foreachBatch(lambda batch_df, batch_id: ...)   # replaces format("console"), silently
//        .start())
// ```
//
// Sluice does the same, and at `start()` it logs a WARN that names the call that won. Both orders:

// %%
const foreachBatchCalls: number[] = [];
const printed: string[] = [];
sluice.out = (text) => {
  printed.push(text);
  console.log(text.trimEnd());
};
const lastCallInput = sluice.memoryStream('user STRING, amount INT');
lastCallInput.addData([{ user: 'alice', amount: 10 }]);

console.log('— format, then foreachBatch:');
const fnWins = await lastCallInput.toDF().writeStream
  .format('console')
  .foreachBatch((_batchDF, batchId) => void foreachBatchCalls.push(batchId))
  .option('checkpointLocation', 'checkpoints/lesson08/last-call-1').start();
await fnWins.processAllAvailable();
await fnWins.stop();

console.log('— foreachBatch, then format:');
const consoleWins = await lastCallInput.toDF().writeStream
  .foreachBatch((_batchDF, batchId) => void foreachBatchCalls.push(batchId + 100))
  .format('console')
  .option('checkpointLocation', 'checkpoints/lesson08/last-call-2').start();
await consoleWins.processAllAvailable();
await consoleWins.stop();
console.log(`foreachBatch was called for: ${JSON.stringify(foreachBatchCalls)}`);

// %% [markdown]
// In the first query the function ran for batch 0 and the console printed nothing. In the second the
// console printed the batch and the function never ran (a call would have recorded `100`). Keep one of the
// calls: the WARN is there to catch a query that was set up for Kafka and then had a foreachBatch added.

// %% [markdown]
// ## Output modes inside foreachBatch
//
// `batchDF` holds exactly what the query's output mode would give a sink. For an aggregation, **update**
// gives the groups that changed in this batch, and **complete** gives every group. (Append needs a
// watermark on an aggregation and gives each window once, when it closes: lesson 04.) The same two batches
// in both modes: first alice 10 and bob 5, then alice 7.

// %%
async function batchesSeen(mode: 'update' | 'complete'): Promise<string[]> {
  const input = sluice.memoryStream('user STRING, amount INT');
  const seen: string[] = [];
  const q = await input.toDF().groupBy('user').agg(sum('amount').alias('total'), count('*').alias('payments'))
    .writeStream.outputMode(mode)
    .foreachBatch(async (batchDF, batchId) => {
      const rows = await batchDF.orderBy('user').collect();
      seen.push(`${mode.padEnd(8)} batch ${batchId}: ${rows.map((r) => `${r.user} total ${r.total} (${r.payments} payment${r.payments === 1 ? '' : 's'})`).join(', ')}`);
    })
    .option('checkpointLocation', `checkpoints/lesson08/modes-${mode}`).start();
  input.addData([{ user: 'alice', amount: 10 }, { user: 'bob', amount: 5 }]);
  await q.processAllAvailable();
  input.addData([{ user: 'alice', amount: 7 }]);
  await q.processAllAvailable();
  await q.stop();
  return seen;
}
const modeRows = [...(await batchesSeen('update')), ...(await batchesSeen('complete'))];
console.log(modeRows.join('\n'));

// %% [markdown]
// Batch 1 in update mode holds only alice, because bob did not change. What it holds are **totals** (the
// engine kept the sums in its state), not the batch's increments. So writing them to a store with SET is
// idempotent by itself: a repeat of batch 1 writes `alice = 17` again. Keep this in mind for the Redis part
// below, where the batch's own sums are *added* to a store and a repeat would count them twice.

// %% [markdown]
// ## One batch, two sinks: a Kafka topic and JSON files
//
// Inside foreachBatch, `batchDF.write` is a batch writer (Spark's DataFrameWriter):
// `.format('kafka'|'json'|'console'|'memory').option(…).mode(…).save(path?)`. Each `save()` **runs the
// DataFrame's plan again**. In Spark, `batchDF` is itself a plan: every action re-reads the micro-batch from
// the source and reruns the query, which is why Spark's documentation writes `batchDF.persist()` before the
// writes and `batchDF.unpersist()` after them. Sluice hands the batch's rows over already in memory, so
// persisting `batchDF` itself costs nothing, and the Spark pattern still works. What persist() saves in
// Sluice is work done on the batch inside the function. Here a check on each payment is derived from
// `batchDF` and persisted, so both writes use the same computed rows. A counter in the check function shows
// how often it ran, with persist() and, for comparison, without it.
//
// The two writes are not equally safe to repeat. The JSON folder is named after the batch and written with
// `mode('overwrite')`, so a re-run batch replaces it. A Kafka write is at-least-once: a re-run batch sends
// its records again. That is why each record carries `batch_id`, so a consumer can drop repeats.
//
// **In PySpark 3.5:**
//
// ```python
// from pyspark.sql.functions import col, lit, struct, to_json, when
// def two_sinks(batch_df, batch_id):
//     checked = (batch_df.withColumn("check", when(col("amount") >= 50, "review").otherwise("ok"))
//                        .withColumn("batch_id", lit(batch_id))).persist()
//     (checked.select(col("user").alias("key"), to_json(struct("*")).alias("value"))
//         .write.format("kafka").option("kafka.bootstrap.servers", "localhost:9092")
//         .option("topic", "lesson08-copies").save())
//     checked.write.mode("overwrite").json(f"data/lesson08/payments/batch={batch_id}")
//     checked.unpersist()
// ```

// %%
let checksRun = 0;
const check = (r: Row): Row => {
  checksRun++; // stands for real work per row: a lookup, a model, a call
  return { ...r, check: (r.amount as number) >= 50 ? 'review' : 'ok' };
};
const checkedSchema = 'user STRING, amount INT, check STRING, batch_id INT';
const twoSinksInput = sluice.memoryStream('user STRING, amount INT');
const twoSinks = await twoSinksInput.toDF().writeStream
  .foreachBatch(async (batchDF, batchId) => {
    const checked = batchDF.map((r) => ({ ...check(r), batch_id: batchId }), checkedSchema).persist();
    await checked.select(col('user').alias('key'), to_json(struct('*')).alias('value'))
      .write.format('kafka').options(conn.kafkaOptions).option('topic', 'lesson08-copies').save();
    await checked.write.mode('overwrite').json(`data/lesson08/payments/batch=${batchId}`);
    checked.unpersist();
  })
  .option('checkpointLocation', 'checkpoints/lesson08/two-sinks').start();
twoSinksInput.addData([{ user: 'alice', amount: 10 }, { user: 'bob', amount: 80 }]);
await twoSinks.processAllAvailable();
twoSinksInput.addData([{ user: 'carol', amount: 55 }, { user: 'alice', amount: 7 }]);
await twoSinks.processAllAvailable();
await twoSinks.stop();
const checksWithPersist = checksRun;

// The same two writes of a derived DataFrame without persist(): each save() runs the check again.
checksRun = 0;
const notKept = sluice.createDataFrame([{ user: 'alice', amount: 10 }, { user: 'bob', amount: 80 }], 'user STRING, amount INT')
  .map((r) => ({ ...check(r), batch_id: 0 }), checkedSchema);
await notKept.write.format('memory').save('lesson08_first');
await notKept.write.format('memory').save('lesson08_second');
const checksWithoutPersist = checksRun;

const fromKafka = (await readTopic(conn.kafka, 'lesson08-copies')).map((r) => JSON.parse(r.value!.toString()) as Row);
const folders = readdirSync('data/lesson08/payments').sort();
const fromFiles: Row[] = [];
for (const f of folders) fromFiles.push(...(await sluice.read.schema(checkedSchema).json(`data/lesson08/payments/${f}`).collect()));
console.log('Kafka topic lesson08-copies:', fromKafka);
console.log(`JSON folders ${folders.join(', ')}:`, fromFiles);
console.log(`the check ran ${checksWithPersist} times for 4 payments written twice (persisted); ` +
  `${checksWithoutPersist} times for 2 payments written twice without persist()`);

// %% [markdown]
// ## What is a key-value store?
//
// A key-value store is a server that holds a map from **keys** (strings) to **values**. Any program on the
// network can read and write it: `SET key value`, `GET key`, `INCRBY key n` (add to a number, atomically),
// `DEL key`, and transactions (`MULTI` … `EXEC`: all the commands or none). You find a value by its key,
// never by searching values. There are no joins and no SQL. **Redis** is the common one: it keeps
// everything in memory, and can keep it on disk too (the local stack's Redis writes an append-only file).
//
// Its use next to a streaming query: the query computes per-key results (a user's total, their last
// payment) and puts them where **other services** read them in a millisecond by key: a web page, an API, a
// fraud check.
//
// This lesson uses the local stack's Redis if one answers at `redisUrl()` (`sluice up --with redis`, port
// 6380; or `$SLUICE_REDIS_URL`), on 127.0.0.1 only. Otherwise it starts its own, from the Debian
// `redis-server` package, on a free port of 127.0.0.1 with its data under `checkpoints/lesson08/redis`, and
// stops it at the end. The client is the `redis` npm package (node-redis). In Python it is `redis`
// (redis-py), with the same commands.

// %%
/** True if a Redis answers PING at `url`; this lesson only ever connects to 127.0.0.1. */
async function answers(url: string): Promise<boolean> {
  if (new URL(url).hostname !== '127.0.0.1') return false;
  const probe = createClient({ url, socket: { reconnectStrategy: false, connectTimeout: 1000 } });
  probe.on('error', () => {});
  try {
    await probe.connect();
    return (await probe.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    if (probe.isOpen) await probe.close();
  }
}
let url = redisUrl();
let startedRedis = false;
if (await answers(url)) {
  console.log(`using the Redis at ${url}`);
} else {
  url = (await startRedis({ dir: lessonRedis, port: await freePort(), log: () => {} })).url;
  startedRedis = true;
  console.log('no Redis answered at redisUrl(): started one for this lesson, data in checkpoints/lesson08/redis');
}
const kv = await createClient({ url }).connect();
for (const pattern of ['lesson08:*', 'sluice:{lesson08-*']) { // what an earlier run of this lesson left
  for await (const keys of kv.scanIterator({ MATCH: pattern, COUNT: 1000 })) if (keys.length) await kv.del(keys);
}

await kv.set('lesson08:demo:alice', '10');
const afterSet = await kv.get('lesson08:demo:alice');
const afterIncr = await kv.incrBy('lesson08:demo:alice', 7);
console.log(`SET lesson08:demo:alice 10 → GET: ${afterSet}; INCRBY lesson08:demo:alice 7 → ${afterIncr}`);

// %% [markdown]
// ## From foreachBatch: upsert by key, guarded by batchId
//
// An **upsert** writes a key's value whether or not the key exists. Each batch below upserts two things
// per user: their running total (`INCRBY` the batch's sum) and their last payment (`SET`). A second
// client stands for "another service" and reads them.
//
// `upsertBatch(client, { queryId, batchId, incrBy, set })` from sluice does it in **one MULTI/EXEC** that
// also stores the query's last-applied batch id. Before writing, it WATCHes that id and skips a batch whose
// id is not above it. The batch's writes and the record that the batch was applied therefore land
// together or not at all, and a batch is never applied twice. Keys are named `sluice:{queryId}:key:<key>`.
// The client must be a connection of the query's own, because WATCH belongs to a connection. In PySpark
// 3.5 with redis-py, the same guard is:
//
// ```python
// import redis
// from pyspark.sql import functions as F
// r = redis.Redis(host="127.0.0.1", port=6380)
// def upsert(batch_df, batch_id):
//     totals = batch_df.groupBy("user").agg(F.sum("amount").alias("total")).collect()
//     guard = "sluice:{lesson08-sums}:lastBatchId"
//     with r.pipeline() as p:
//         while True:
//             try:
//                 p.watch(guard)
//                 last = p.get(guard)
//                 if last is not None and int(last) >= batch_id:
//                     return                                   # applied before the crash: skip
//                 p.multi()
//                 for row in totals:
//                     p.incrby(f"sluice:{{lesson08-sums}}:key:{row.user}", row.total)
//                 p.set(guard, batch_id)
//                 p.execute()                                  # all or nothing
//                 return
//             except redis.WatchError:                         # the guard changed meanwhile: try again
//                 continue
// ```

// %%
const queryRedis = await kv.duplicate().connect(); // the query's own connection
const dashboardInput = sluice.memoryStream('user STRING, amount INT');
const dashboard = await dashboardInput.toDF().writeStream
  .foreachBatch(async (batchDF, batchId) => {
    const rows = await batchDF.collect();
    const totals = new Map<string, number>();
    const last = new Map<string, number>();
    for (const r of rows) {
      totals.set(`total:${r.user}`, (totals.get(`total:${r.user}`) ?? 0) + (r.amount as number));
      last.set(`last:${r.user}`, r.amount as number); // rows are in arrival order: the last one wins
    }
    const result = await upsertBatch(queryRedis, { queryId: 'lesson08-dashboard', batchId, incrBy: totals, set: last });
    console.log(`batch ${batchId}: ${result.applied ? 'applied' : 'skipped'}`);
  })
  .option('checkpointLocation', 'checkpoints/lesson08/dashboard').start();
dashboardInput.addData([{ user: 'alice', amount: 10 }, { user: 'bob', amount: 5 }, { user: 'alice', amount: 3 }]);
await dashboard.processAllAvailable();
dashboardInput.addData([{ user: 'alice', amount: 7 }]);
await dashboard.processAllAvailable();
await dashboard.stop();
await queryRedis.close();

// Another service: one round trip, four keys.
const dashboardKeys = ['total:alice', 'last:alice', 'total:bob', 'last:bob'];
const dashboardValues = await kv.mGet(dashboardKeys.map((k) => storeKey('lesson08-dashboard', k)));
console.log(dashboardKeys.map((k, i) => `${k} = ${dashboardValues[i]}`).join('\n'));

// %% [markdown]
// ## A crash between the store write and commits/N
//
// Now a real crash. The pipeline `lessons/pipelines/08-redis-sums.ts` reads payments from Kafka, 10 per
// batch, sums them per user in each batch, and adds the sums into Redis with `upsertBatch`. It runs as its
// own process (`node bin/sluice.js run <file>`) because it is going to be killed. With
// `SLUICE_FAULT=after-sink@1`, Sluice kills the process with SIGKILL after batch 1's foreachBatch has
// returned (the sums are in Redis) and before `commits/1` is written. No exception is raised and no cleanup
// runs, the same as a power cut. Then it is run again without the fault.
//
// 30 payments: payment *i* (0…29) is user alice, bob, carol in turn, amount *i* + 1. So batch 0 is amounts
// 1–10, batch 1 is 11–20, batch 2 is 21–30. The expected totals come from the payments as produced, not
// from anything the pipeline wrote.

// %%
const users = ['alice', 'bob', 'carol'];
const payments = Array.from({ length: 30 }, (_, i) => ({ user: users[i % 3]!, amount: i + 1 }));
await producer.send(payments.map((p) => ({ topic: 'lesson08-payments', key: Buffer.from(p.user), value: Buffer.from(JSON.stringify(p)) })));
await producer.flush();
const expected: Record<string, number> = {};
for (const p of payments) expected[p.user] = (expected[p.user] ?? 0) + p.amount;
console.log('each user\'s sum, from the input:', expected);

/** Runs the pipeline as its own process (`sluice run`); resolves to how it ended and what it printed, ids and pids as <…>. */
const runPipeline = (env: Record<string, string>) => runPipelineFile('pipelines/08-redis-sums.ts', env);
/** The Redis values of a query's keys, user by user. */
async function sums(queryId: string): Promise<Record<string, number>> {
  const values = await kv.mGet(users.map((u) => storeKey(queryId, u)));
  return Object.fromEntries(users.map((u, i) => [u, Number(values[i])]));
}
const batchFiles = (cp: string, dir: string): string => (existsSync(`${cp}/${dir}`) ? readdirSync(`${cp}/${dir}`).filter((f) => /^\d+$/.test(f)).sort().join(' ') : '');

const guarded = { REDIS_URL: url, MODE: 'upsert', QUERY_ID: 'lesson08-sums', CHECKPOINT: 'checkpoints/lesson08/redis-sums' };
const guardedCrash = await runPipeline({ ...guarded, SLUICE_FAULT: 'after-sink@1' });
const guardedAfterCrash = await sums('lesson08-sums');
const guardedFiles = `offsets: ${batchFiles(guarded.CHECKPOINT, 'offsets')}; commits: ${batchFiles(guarded.CHECKPOINT, 'commits')}`;
console.log(`first run (SLUICE_FAULT=after-sink@1), ended by ${guardedCrash.signal}:\n  ${guardedCrash.lines.join('\n  ')}`);
console.log(`checkpoint after the crash: ${guardedFiles}`);
console.log('Redis after the crash:', guardedAfterCrash);
const guardedRestart = await runPipeline(guarded);
const guardedFinal = await sums('lesson08-sums');
console.log(`restart, exit code ${guardedRestart.code}:\n  ${guardedRestart.lines.join('\n  ')}`);
console.log('Redis at the end:', guardedFinal);

// %% [markdown]
// The crash left `offsets/1` without `commits/1`. The restart takes over the checkpoint lock the killed
// process left behind (its pid no longer runs), then runs batch 1 again with the same offsets (payments
// 11–20) and the same batch id. `upsertBatch` found batch 1 already recorded in Redis and skipped it. Each
// user's value is their sum, counted once.
//
// The same crash without the guard: the pipeline in `MODE=plain` sends the same INCRBYs in a MULTI/EXEC,
// but does not record or check the batch id.

// %%
const plain = { REDIS_URL: url, MODE: 'plain', QUERY_ID: 'lesson08-plain', CHECKPOINT: 'checkpoints/lesson08/plain-sums' };
const plainCrash = await runPipeline({ ...plain, SLUICE_FAULT: 'after-sink@1' });
const plainRestart = await runPipeline(plain);
const plainFinal = await sums('lesson08-plain');
console.log(`first run, ended by ${plainCrash.signal}:\n  ${plainCrash.lines.join('\n  ')}`);
console.log(`restart, exit code ${plainRestart.code}:\n  ${plainRestart.lines.join('\n  ')}`);
console.log('Redis at the end:', plainFinal, ' expected:', expected);

// %% [markdown]
// Batch 1's sums were added twice: alice has 48 too many, bob 62 and carol 45. Nothing failed and nothing was
// logged, so the error goes unnoticed unless someone checks the totals. That is why the guard exists. The
// other ways to the same safety are to write values that are already totals with SET (the update-mode
// aggregation above), or to let the store ignore a key it has seen (the webhook's Idempotency-Key).

// %% [markdown]
// ## Is state easier with foreachBatch?
//
// The Redis totals above are **state**: a value per key that each batch changes. Lesson 07 keeps the same
// kind of value in the query itself (`groupBy().agg()`, `mapGroupsWithState`, `transformWithState`). Which
// is simpler depends on who reads the state and what it must do.
//
// **foreachBatch and a store is simpler when:**
// - **other services must read the state**. Built-in state lives in the query's checkpoint, and only the
//   query reads it: others see its output. A store is read by key by anyone, at any time (the dashboard
//   read above).
// - **the update is an upsert**: the latest value per key (`SET`), a total to add to (`INCRBY`), with no
//   need to read the old value first.
// - **the logic is small and per batch**: a few lines in the function, with no state schema and no
//   timeouts.
//
// **It is not simpler when:**
// - **you need timeouts in event time**: "close the session 30 minutes after the user's last click, by
//   event time" is `setTimeoutTimestamp` with a watermark in built-in state. A store only has TTLs
//   (`EXPIRE`), which count wall-clock time from the write.
// - **you need state that is exactly-once with the checkpoint**: built-in state is versioned with the
//   batches, so a restart resumes it at the batch it resumes, and a new checkpoint starts it empty. A
//   store is separate. Every write needs the batch-id guard shown above, and a query started over on a new
//   checkpoint (batch ids from 0 again) needs a new `queryId` or its old keys deleted, or else its batches
//   are skipped.
// - **each batch must read state back**: logic that needs the old value to compute the new one (a session
//   that grows, a count compared with a limit) costs a round trip to the store every batch (one MGET for
//   the batch's keys, or one GET per key if done naively), and the value can change between the read and
//   the write unless it is WATCHed. Built-in state is read locally, from memory or LMDB.
// - **old keys must go away**: watermarks evict built-in state for windows and keys that can no longer
//   change. A store keeps every key until you delete it or give it a TTL.
//
// A common split: keep the computation in built-in state (windows, sessions, timeouts), and have
// foreachBatch upsert its **output**, which is totals in update mode, into the store other services read.
// A total written with SET needs no guard.

// %%
await kv.close();
if (startedRedis) await stopRedis({ dir: lessonRedis, purge: true, log: () => {} });
await producer.close();
admin.disconnect();
console.log(`queries still active: ${sluice.streams.active.length}; Redis ${startedRedis ? 'started by this lesson: stopped' : 'found at redisUrl(): left running'}`);

// %% [markdown]
// ## Check
// Against what the input gives by hand: one POST per batch with the batch id in its key; the WARN naming the
// winner in both orders; update vs complete rows; the same four payments in Kafka and in the JSON folders,
// checked once each; the dashboard values; and the crash: with the guard each user holds their sum
// (alice 1+4+…+28 = 145, bob 2+5+…+29 = 155, carol 3+6+…+30 = 165), without it batch 1 (alice 48, bob 62,
// carol 45) twice.

// %%
assert.deepEqual(received, [
  { key: 'lesson08-webhook-0', rows: [{ user: 'alice', amount: 10 }, { user: 'bob', amount: 5 }] },
  { key: 'lesson08-webhook-1', rows: [{ user: 'alice', amount: 7 }] },
]);
const lastCall = (replaced: string, winner: string): string =>
  `WARN writeStream: ${replaced} was set, then replaced: the last of format(), foreachBatch() and foreach() wins, so this query writes with ${winner} (as Spark does). Remove the other call.`;
assert.deepEqual(logged.filter((l) => l.startsWith('WARN')), [lastCall("format('console')", 'foreachBatch()'), lastCall('foreachBatch()', "format('console')")]);
assert.deepEqual(foreachBatchCalls, [0]); // the first query's function, never the second's
assert.equal(printed.length, 1);          // the second query's console output: batch 0, alice 10
assert.match(printed[0]!, /Batch: 0[\s\S]*alice\s*\|\s*10/);
assert.deepEqual(modeRows, [
  'update   batch 0: alice total 10 (1 payment), bob total 5 (1 payment)',
  'update   batch 1: alice total 17 (2 payments)',
  'complete batch 0: alice total 10 (1 payment), bob total 5 (1 payment)',
  'complete batch 1: alice total 17 (2 payments), bob total 5 (1 payment)',
]);
const copies = [
  { user: 'alice', amount: 10, check: 'ok', batch_id: 0 }, { user: 'bob', amount: 80, check: 'review', batch_id: 0 },
  { user: 'carol', amount: 55, check: 'review', batch_id: 1 }, { user: 'alice', amount: 7, check: 'ok', batch_id: 1 },
];
assert.deepEqual(fromKafka, copies);
assert.deepEqual(fromFiles, copies);
assert.deepEqual(folders, ['batch=0', 'batch=1']);
assert.equal(checksWithPersist, 4);    // 4 payments, one check each, for two sinks
assert.equal(checksWithoutPersist, 4); // 2 payments, checked once per save()
assert.equal(afterSet, '10');
assert.equal(afterIncr, 17);
assert.deepEqual(dashboardValues, ['20', '7', '5', '5']); // alice 10+3+7, last 7; bob 5, last 5
assert.deepEqual(expected, { alice: 145, bob: 155, carol: 165 });
assert.equal(guardedCrash.signal, 'SIGKILL');
assert.deepEqual(guardedCrash.lines, [
  'batch 0: alice +22, bob +15, carol +18 → applied',
  'batch 1: alice +48, bob +62, carol +45 → applied',
  'sluice: SLUICE_FAULT=after-sink@1: killing process <pid> with SIGKILL at after-sink of batch 1',
]);
assert.equal(guardedFiles, 'offsets: 0 1; commits: 0');
assert.deepEqual(guardedAfterCrash, { alice: 22 + 48, bob: 15 + 62, carol: 18 + 45 });
assert.equal(guardedRestart.code, 0);
const lockTakenOver = /^\[sluice\] WARN Took over the checkpoint lock checkpoints\/lesson08\/(redis|plain)-sums\/lock from query <id> .*: pid <pid> no longer runs on this host\.$/;
const rerun = '[sluice] INFO Batch 1 was planned but not committed: re-running it with the logged offsets.';
assert.match(guardedRestart.lines[0]!, lockTakenOver); // the killed run's lock: its pid is gone
assert.deepEqual(guardedRestart.lines.slice(1), [
  rerun,
  'batch 1: alice +48, bob +62, carol +45 → skipped: Redis already holds batch 1',
  'batch 2: alice +75, bob +78, carol +102 → applied',
]);
assert.deepEqual(guardedFinal, expected);
assert.equal(plainCrash.signal, 'SIGKILL');
assert.match(plainRestart.lines[0]!, lockTakenOver);
assert.deepEqual(plainRestart.lines.slice(1), [
  rerun,
  'batch 1: alice +48, bob +62, carol +45 → INCRBY, no guard',
  'batch 2: alice +75, bob +78, carol +102 → INCRBY, no guard',
]);
assert.deepEqual(plainFinal, { alice: 145 + 48, bob: 155 + 62, carol: 165 + 45 });
assert.equal(sluice.streams.active.length, 0);
console.log('lesson 08 checks passed');
