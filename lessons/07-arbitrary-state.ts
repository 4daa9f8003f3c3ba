// %% [markdown]
// # Lesson 07 — Arbitrary state: state per key, with or without time
//
// Aggregations keep state you never see: a count per window, a sum per group. When the logic is yours — a
// running count that a tutorial keeps "by hand", a user's session that ends after inactivity, a profile
// with several fields — you keep **your own state per key**. Spark's API for it, which Sluice keeps:
//
// ```ts
// df.groupByKey('user_id')                      // the key: a column's value (or several, or a function of the row)
//   .mapGroupsWithState(timeout, (key, rows, state) => row, { outputSchema, stateSchema })
//   .flatMapGroupsWithState(outputMode, timeout, (key, rows, state) => rows, { outputSchema })
// ```
//
// and, new in Spark 4.0, `transformWithState` with several named state variables and timers (end of this
// lesson). PySpark 3.5 writes the same with `groupBy("user_id").applyInPandasWithState(func,
// outputStructType, stateStructType, outputMode, timeoutConf)`.
//
// This lesson answers: **How is the state function called, and where do its arguments come from? Where is
// the state stored? Must all state fit in memory?**

// %%
import assert from 'node:assert/strict';
import { readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import {
  SluiceSession, KafkaAdmin, AckedProducer, connection, readTopic, col, from_json, to_json, struct,
  GroupStateTimeout, TimeMode, type Row, type GroupState, type StatefulProcessor, type StatefulProcessorHandle, type ValueState, type ListState,
} from 'sluice';

const conn = connection();
const admin = new KafkaAdmin(conn.kafka);
await admin.recreateTopic('lesson07-clicks', 2);
await admin.recreateTopic('lesson07-counts', 1); // one partition: the output reads back in the order it was written
rmSync('checkpoints/lesson07', { recursive: true, force: true });
const producer = new AckedProducer(conn.kafka);
/** Produces clicks keyed by user and waits for the broker's acknowledgement. */
async function clicks(...users: string[]): Promise<void> {
  await producer.send(users.map((u) => ({ topic: 'lesson07-clicks', key: Buffer.from(u), value: Buffer.from(JSON.stringify({ user_id: u })) })));
  await producer.flush();
}
console.log('topics recreated');

// %% [markdown]
// ## A running count per user, Kafka to Kafka
//
// The function is called **once per key per batch** — only for keys that have rows in that batch — with:
// - `key`: the grouping value (`'alice'`);
// - `rows`: all of that key's rows **in this batch** (gathered from every partition and chunk first);
// - `state`: the key's state as the previous batch left it (`state.getOption()` is undefined the first time).
//
// It returns one output row (mapGroupsWithState) and calls `state.update(…)` to keep a new value. Each
// output row replaces the key's previous one, so the query's output mode is `update` (Spark refuses any
// other for mapGroupsWithState). The query runs with `availableNow`: it reads what is there, then stops —
// run it again later and it goes on from its checkpoint, state included.

// %%
const sluice = SluiceSession.builder().appName('lesson07').getOrCreate();
/** The running count, as a query that runs until the topic is read, then stops. */
async function runCounts(): Promise<void> {
  const q = await sluice.readStream.format('kafka').options(conn.kafkaOptions)
    .option('subscribe', 'lesson07-clicks').option('startingOffsets', 'earliest').load()
    .select(from_json(col('value').cast('string'), 'user_id STRING').alias('e')).select('e.*')
    .groupByKey('user_id')
    .mapGroupsWithState<{ count: number }>(
      GroupStateTimeout.NoTimeout,
      (user, rows, state) => {
        const count = (state.getOption()?.count ?? 0) + rows.length;
        state.update({ count });
        return { user_id: user, count };
      },
      { outputSchema: 'user_id STRING, count LONG', stateSchema: 'count LONG' },
    )
    .select(col('user_id').alias('key'), to_json(struct('user_id', 'count')).alias('value'))
    .writeStream.format('kafka').options(conn.kafkaOptions)
    .option('topic', 'lesson07-counts')
    .option('checkpointLocation', 'checkpoints/lesson07/counts')
    .outputMode('update').trigger({ availableNow: true }).start();
  await q.awaitTermination();
}
await clicks('alice', 'bob', 'alice');
await runCounts();
await clicks('alice');
await runCounts(); // a second run: a new process would do the same — the state is in the checkpoint
const counts = (await readTopic(conn.kafka, 'lesson07-counts')).map((r) => r.value!.toString());
console.log(counts.join('\n'));

// %% [markdown]
// The first run wrote `alice 2` and `bob 1` (one row per key with rows); the second only `alice 3`: bob had
// no new click, so his function was not called and nothing was written for him. The 3 came from the state
// the first run left in the checkpoint.

// %% [markdown]
// ## Where is the state stored?
//
// In the query's checkpoint, under `state/<operator>/<partition>/`: each batch that changed a key writes a
// `N.delta` file (the keys it changed), and every few versions a `N.snapshot` (the whole partition), as
// Spark's HDFS-backed state store does. Keys are spread over partitions by hash; these are this query's
// files:

// %%
function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : [p];
  });
}
const stateFiles = files('checkpoints/lesson07/counts/state').filter((f) => !f.includes('_metadata')).sort();
console.log(stateFiles.join('\n'));
console.log(files('checkpoints/lesson07/counts/state/0/_metadata').join('\n'));

// %% [markdown]
// `_metadata/schema` holds the state's key and value types: restarting with a different `stateSchema` (or
// another grouping) is refused with what changed, instead of reading old bytes as a new type.
//
// ## Must all state fit in memory?
//
// With the default provider, yes: the current version of every key is kept in the process's heap (the
// files are for recovery). With `sluice.sql.streaming.stateStore.provider=lmdb`, state lives in an LMDB
// database on disk, memory-mapped: the heap holds only the keys a batch touches. Measured here with
// 200,000 keys in one batch, the heap kept by the state after the batch:

// %%
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void; // a full collection before each reading: only live objects count
async function heapKeptBy(provider: string, keys: number): Promise<number> {
  const s = new SluiceSession(`lesson07-${provider}`);
  s.conf.set('sluice.sql.streaming.stateStore.provider', provider);
  const input = s.memoryStream('user_id STRING');
  const q = await input.toDF().groupByKey('user_id')
    .mapGroupsWithState<{ count: number }>('NoTimeout', (user, rows, state) => {
      state.update({ count: (state.getOption()?.count ?? 0) + rows.length });
      return { user_id: user };
    }, { outputSchema: 'user_id STRING', stateSchema: 'count LONG' })
    .writeStream.foreachBatch(() => {}).option('checkpointLocation', `checkpoints/lesson07/heap-${provider}`).outputMode('update').start();
  gc();
  const before = process.memoryUsage().heapUsed;
  input.addData(Array.from({ length: keys }, (_, i) => ({ user_id: `user-${i}` })));
  await q.processAllAvailable();
  input.addData([{ user_id: 'user-0' }]); // a second, small batch: what stays is the state, not the first batch's rows
  await q.processAllAvailable();
  gc();
  const kept = process.memoryUsage().heapUsed - before;
  await q.stop();
  return Math.round(kept / 1e6);
}
const heapMemory = await heapKeptBy('memory', 200_000);
const heapLmdb = await heapKeptBy('lmdb', 200_000);
console.log(`heap kept with 200,000 keys — memory provider: ~${heapMemory} MB, lmdb provider: ~${heapLmdb} MB`);

// %% [markdown]
// For millions of keys use LMDB: docs/benchmarks.md ("User state") measures 10 million keys with a bounded
// peak memory. Spark's answer is the same idea: the RocksDB state store provider.

// %% [markdown]
// ## A session that expires: processing-time timeout
//
// A key with no new rows is never called — unless it has a **timeout**. With
// `GroupStateTimeout.ProcessingTimeTimeout`, `state.setTimeoutDuration('2 seconds')` asks for one more call
// once a batch starts 2 seconds later with no rows for the key; `state.hasTimedOut` is then true and `rows`
// is empty. A timeout holds for one call: every call sets it again, or the key has none (Spark's rule).
// Sluice runs a batch for a due timeout even when no data arrives (Spark runs one on every trigger).

// %%
const clicksInMemory = sluice.memoryStream('user_id STRING');
const sessions = await clicksInMemory.toDF().groupByKey('user_id')
  .flatMapGroupsWithState<number>('update', GroupStateTimeout.ProcessingTimeTimeout, (user, rows, state: GroupState<number>) => {
    if (state.hasTimedOut) {
      const n = state.get();
      state.remove();
      return [{ user_id: user, clicks: n, status: 'expired' }];
    }
    const n = (state.getOption() ?? 0) + rows.length;
    state.update(n);
    state.setTimeoutDuration('2 seconds');
    return [{ user_id: user, clicks: n, status: 'active' }];
  }, { outputSchema: 'user_id STRING, clicks INT, status STRING' })
  .writeStream.format('memory').queryName('lesson07_sessions').outputMode('update')
  .option('checkpointLocation', 'checkpoints/lesson07/sessions').trigger({ processingTime: '200 milliseconds' }).start();
clicksInMemory.addData([{ user_id: 'ada' }, { user_id: 'ada' }]);
await sessions.processAllAvailable();
await new Promise((r) => setTimeout(r, 1000));
clicksInMemory.addData([{ user_id: 'ada' }]); // within 2 s: the session goes on, its timeout moves
await sessions.processAllAvailable();
const waitUntil = Date.now() + 15_000;
while (!sluice.memoryTable('lesson07_sessions').rows.some((r) => r.status === 'expired') && Date.now() < waitUntil) await new Promise((r) => setTimeout(r, 100));
await sessions.stop();
const sessionRows = sluice.memoryTable('lesson07_sessions').rows.map((r) => `${String(r.user_id)} ${String(r.clicks)} ${String(r.status)}`);
console.log(sessionRows.join('\n'));

// %% [markdown]
// ## A session that expires: event-time timeout
//
// Processing time depends on when the query runs. An **event-time** timeout depends only on the data: with
// `withWatermark` before `groupByKey`, `state.setTimeoutTimestamp(t)` calls the key again once the watermark
// passes `t`. Here a session closes 1 minute after a user's last click; the watermark delay is 10 seconds.
// The batches, worked out by hand (the watermark moves after a batch; a batch that moved it is followed by
// a no-data batch):

// %%
const t = (hms: string): Date => new Date(`2025-08-22T${hms}Z`);
const timed = sluice.memoryStream('user_id STRING, ts TIMESTAMP');
const byEventTime = await timed.toDF().withWatermark('ts', '10 seconds').groupByKey('user_id')
  .flatMapGroupsWithState<{ clicks: number; last: number }>('append', GroupStateTimeout.EventTimeTimeout, (user, rows, state) => {
    if (state.hasTimedOut) {
      const { clicks } = state.get();
      state.remove();
      return [{ user_id: user, clicks }];
    }
    const prev = state.getOption() ?? { clicks: 0, last: 0 };
    const last = Math.max(prev.last, ...rows.map((r) => (r.ts as Date).getTime()));
    state.update({ clicks: prev.clicks + rows.length, last });
    state.setTimeoutTimestamp(last, '1 minute');
    return [];
  }, { outputSchema: 'user_id STRING, clicks LONG' })
  .writeStream.format('memory').queryName('lesson07_timed').outputMode('append')
  .option('checkpointLocation', 'checkpoints/lesson07/timed').start();
for (const rows of [
  [{ user_id: 'ada', ts: t('12:00:00') }, { user_id: 'ada', ts: t('12:00:20') }],
  [{ user_id: 'bob', ts: t('12:02:00') }],
]) {
  timed.addData(rows);
  await byEventTime.processAllAvailable();
}
await byEventTime.stop();
const eventTrace = byEventTime.recentProgress.map((p) =>
  `batch ${p.batchId}: ${p.numInputRows} row(s), watermark ${new Date(p.eventTime.watermark!).toISOString().slice(11, 19)}, ` +
  `output ${JSON.stringify(sluice.memoryTable('lesson07_timed').batches.get(p.batchId) ?? [])}`);
console.log(eventTrace.join('\n'));

// %% [markdown]
// Ada's session (timeout 12:01:20 = her last click 12:00:20 + 1 minute) closes in batch 3, the no-data batch
// whose watermark is 12:01:50 (bob's 12:02:00 − 10 s): 12:01:20 is before it. Bob's stays open.

// %% [markdown]
// ## Why `state.get("count")` from other tutorials breaks
//
// PySpark tutorials often write `count = state.get("count")` or `state.get["count"]`, or read a field of a
// tuple. In Spark's API — Scala, PySpark's GroupState, and Sluice — `get()` takes **no argument** and returns
// the whole state value (here `{ count }`); TypeScript refuses `state.get("count")` at compile time. And
// `get()` **throws** for a key seen for the first time: there is no state yet. Use `getOption()` (undefined
// the first time) or check `state.exists`:

// %%
const firstTime = sluice.memoryStream('user_id STRING');
const wrong = await firstTime.toDF().groupByKey('user_id')
  .mapGroupsWithState<{ count: number }>('NoTimeout', (user, rows, state) => {
    const count = state.get().count + rows.length; // the bug: no state yet for a new user
    state.update({ count });
    return { user_id: user, count };
  }, { outputSchema: 'user_id STRING, count LONG' })
  .writeStream.format('memory').queryName('lesson07_wrong').outputMode('update')
  .option('checkpointLocation', 'checkpoints/lesson07/wrong').start();
firstTime.addData([{ user_id: 'new-user' }]);
await wrong.processAllAvailable().catch(() => {});
console.log(wrong.exception?.message.split('\n')[0]);

// %% [markdown]
// ## Several values per key, and timers: transformWithState (Spark 4.0)
//
// `transformWithState` replaces the single state value with **named state variables** — a `ValueState`, a
// `ListState`, a `MapState`, each with an optional TTL — created once in `init`, and timers you register
// per key. The same running count, plus the user's last two pages, kept for an hour (a TTL counts processing
// time, so it needs `TimeMode.ProcessingTime`):

// %%
class Profile implements StatefulProcessor<string> {
  count!: ValueState<number>;
  pages!: ListState<string>;
  init(handle: StatefulProcessorHandle): void {
    this.count = handle.getValueState('count', { type: 'bigint' });
    this.pages = handle.getListState('pages', { type: 'string', ttl: '1 hour' });
  }
  handleInputRows(user: string, rows: Row[]): Row[] {
    this.count.update((this.count.get() ?? 0) + rows.length);
    this.pages.put([...this.pages.get(), ...rows.map((r) => r.page as string)].slice(-2));
    return [{ user_id: user, count: this.count.get(), last_pages: this.pages.get().join(' ') }];
  }
}
const pageViews = sluice.memoryStream('user_id STRING, page STRING');
const profiles = await pageViews.toDF().groupByKey('user_id')
  .transformWithState(new Profile(), TimeMode.ProcessingTime, 'update', { outputSchema: 'user_id STRING, count LONG, last_pages STRING' })
  .writeStream.format('memory').queryName('lesson07_profiles').outputMode('update')
  .option('checkpointLocation', 'checkpoints/lesson07/profiles').start();
pageViews.addData([{ user_id: 'ada', page: '/home' }, { user_id: 'ada', page: '/cart' }, { user_id: 'ada', page: '/pay' }]);
await profiles.processAllAvailable();
await profiles.stop();
const profileRows = sluice.memoryTable('lesson07_profiles').rows;
console.table(profileRows);

// %% [markdown]
// ## Check

// %%
assert.deepEqual(counts.map((c) => JSON.parse(c)), [
  { user_id: 'alice', count: 2 }, { user_id: 'bob', count: 1 }, // first run: one row per key with rows
  { user_id: 'alice', count: 3 },                               // second run: only alice had rows; 2 + 1 from state
]);
assert.ok(stateFiles.some((f) => f.endsWith('.delta')), 'state is written as delta files');
assert.ok(heapLmdb < heapMemory, `LMDB keeps less state in the heap (${heapLmdb} MB) than the memory provider (${heapMemory} MB)`);
assert.deepEqual(sessionRows, ['ada 2 active', 'ada 3 active', 'ada 3 expired']);
assert.deepEqual(eventTrace, [
  'batch 0: 2 row(s), watermark 00:00:00, output []',
  'batch 1: 0 row(s), watermark 12:00:10, output []',
  'batch 2: 1 row(s), watermark 12:00:10, output []',
  'batch 3: 0 row(s), watermark 12:01:50, output [{"user_id":"ada","clicks":2}]',
]);
assert.match(wrong.exception!.message, /State is either not defined or has already been removed/);
assert.deepEqual(profileRows, [{ user_id: 'ada', count: 3, last_pages: '/cart /pay' }]);
await producer.close();
admin.disconnect();
console.log('lesson 07 checks passed');
