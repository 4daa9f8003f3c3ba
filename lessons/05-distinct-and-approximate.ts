// %% [markdown]
// # Lesson 05 — Aggregations that streaming refuses, and approximate ones
//
// "How many **distinct users** visited per 10 minutes?" is the first question most dashboards ask, and
// `countDistinct` is the first aggregation a stream refuses. This lesson shows why, the exact way that
// streaming does allow (deduplicate, then count), and the approximate one (`approx_count_distinct`, a
// HyperLogLog sketch) with its error measured against the exact count on the same data.
//
// The input is a memory stream of page views (`user_id`, `timestamp`), so each batch is exactly the rows we
// add; a Kafka source works the same way (lessons 01–03).
//
// **In PySpark 3.5** (with `page_views` a streaming DataFrame read from Kafka):
//
// ```python
// from pyspark.sql.functions import approx_count_distinct, col, count, count_distinct, window
// per_window = page_views.withWatermark("timestamp", "10 minutes").groupBy(window(col("timestamp"), "10 minutes"))
// per_window.agg(count_distinct("user_id"))    # its writeStream….start() raises AnalysisException: "Distinct aggregations
//                                              # are not supported on streaming DataFrames/Datasets. Consider using approx_count_distinct() instead."
// exact = (page_views.withWatermark("timestamp", "10 minutes")
//          .withColumn("window", window(col("timestamp"), "10 minutes"))
//          .dropDuplicates(["user_id", "window"])
//          .groupBy("window").agg(count("*").alias("users")))
// approx = per_window.agg(approx_count_distinct("user_id").alias("users"), count("*").alias("views"))  # rsd=0.05
// ```

// %%
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { SluiceSession, col, count, countDistinct, approx_count_distinct, window, type Row } from 'sluice';

rmSync('checkpoints/lesson05', { recursive: true, force: true });
const sluice = SluiceSession.builder().appName('lesson05').getOrCreate();
const t = (hhmm: string): Date => new Date(`2025-08-22T${hhmm}:00Z`);
const hm = (d: Date): string => d.toISOString().slice(11, 16);
const win = (r: Row): string => { const w = r.window as { start: Date; end: Date }; return `${hm(w.start)}-${hm(w.end)}`; };

/** Page views: `n` views by `users` distinct users (user-0 … user-(users-1)), spread over minutes [from, from+10). */
function views(n: number, users: number, from: string): Row[] {
  let x = 42;
  const rnd = (): number => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const base = t(from).getTime();
  return Array.from({ length: n }, (_, i) => ({
    user_id: `user-${i < users ? i : Math.floor(rnd() * users)}`, // every user at least once, then repeats
    timestamp: new Date(base + Math.floor(rnd() * 600_000)),
  }));
}
const pageViews = sluice.memoryStream('user_id STRING, timestamp TIMESTAMP');
console.log('ready');

// %% [markdown]
// ## countDistinct on a stream is refused — before the query starts
//
// The message says why, and what to write instead.

// %%
const perWindow = pageViews.toDF().withWatermark('timestamp', '10 minutes').groupBy(window(col('timestamp'), '10 minutes'));
let refusal = '';
try {
  await perWindow.agg(countDistinct('user_id').alias('users')).writeStream.format('memory').queryName('lesson05_refused').outputMode('append').start();
} catch (e) {
  refusal = (e as Error).message;
  console.log(`${(e as Error).name}: ${refusal}`);
}

// %% [markdown]
// ### Why is countDistinct unsupported even with a watermark?
//
// A streaming aggregation keeps, per group, a small **buffer** that each new row updates: a count, a sum, a
// min. Exact distinct has no such buffer — to know whether `user-7` is new, the engine must remember every
// user it has seen in the group. Without a window that set lives forever. With a window and a watermark it
// would live until the window closes, but its size is still the number of distinct values — unbounded by
// anything you configure — and every new value is one more entry to hold in memory and to write to the
// checkpoint (in the batch's delta file, and again in each periodic snapshot). Spark refuses it
// (`Distinct aggregations are not supported on streaming DataFrames/Datasets`), and so does Sluice, but with
// the two ways out:
//
// 1. **exact**: make "distinct" a deduplication step — keep each (user, window) once — then count rows. The
//    dedupe state holds one key per distinct (user, window), and the watermark removes a window's keys when
//    the window closes, so the state is bounded by the watermark. The cost is visible in progress.
// 2. **approximate**: `approx_count_distinct` keeps a fixed-size sketch per group, whatever the number of users.

// %%
const exactQuery = await pageViews.toDF()
  .withWatermark('timestamp', '10 minutes')
  .withColumn('window', window(col('timestamp'), '10 minutes'))
  .dropDuplicates(['user_id', 'window'])
  .groupBy('window').agg(count('*').alias('users'))
  .writeStream.format('memory').queryName('lesson05_exact').outputMode('append')
  .option('checkpointLocation', 'checkpoints/lesson05/exact').start();
const approxQuery = await perWindow.agg(approx_count_distinct('user_id').alias('users'), count('*').alias('views'))
  .writeStream.format('memory').queryName('lesson05_approx').outputMode('append')
  .option('checkpointLocation', 'checkpoints/lesson05/approx').start();

pageViews.addData(views(30_000, 12_000, '12:00')); // window 12:00-12:10: 12,000 distinct users
pageViews.addData(views(6_000, 500, '12:10'));     // window 12:10-12:20: 500 distinct users
for (const q of [exactQuery, approxQuery]) await q.processAllAvailable();
// stateOperators lists the operators from the sink down, as Spark does: [0] is the count, [1] the dedupe beneath it.
const [countOp, dedupeOp] = exactQuery.recentProgress[0].stateOperators;
console.log(`after the first batch — dedupe state: ${dedupeOp.numRowsTotal} keys (one per distinct user and window), ~${Math.round(dedupeOp.memoryUsedBytes / 1024)} KiB\n` +
  `                      count state:   ${countOp.numRowsTotal} windows\n` +
  `                      approx state:  ${approxQuery.recentProgress[0].stateOperators[0].numRowsTotal} groups (one Sluice sketch of 512 bytes each)`);

// %% [markdown]
// **Which operator is which?** The exact query has two stateful operators, and progress lists them **from
// the sink down**, as Spark's does (its progress reporter collects them walking the physical plan from the
// top): `stateOperators[0]` is the count nearest the sink, `[1]` the dedupe beneath it. Code ported to PySpark
// reads the same indices: `q.lastProgress["stateOperators"][1]["numRowsTotal"]` is the dedupe's state. The
// names tell them apart too: `stateStoreSave` (an aggregation) and `dedupe`, Spark's names.
//
// The dedupe's state is where the memory goes: one key per distinct (user, window). Where state lives is a
// setting in both engines, and like Spark's default store, Sluice's writes each batch's **changed keys only**
// (`state/<op>/<partition>/<version>.delta`) plus a full snapshot every 10 versions — not the whole state
// every batch:
//
// | | Spark 3.5 | Sluice |
// |---|---|---|
// | state store | `spark.sql.streaming.stateStore.providerClass` = `org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider` (default: the in-memory HDFS-backed one) | `sluice.sql.streaming.stateStore.provider` = `lmdb` (default: `memory`) |
// | snapshot every | `spark.sql.streaming.stateStore.minDeltasForSnapshot` deltas (default 10) | 10 versions (fixed) |
// | state partitions | `spark.sql.shuffle.partitions` (default 200) | `sluice.sql.shuffle.partitions` (default 4) |
//
// Both engines fix the number of state partitions with the checkpoint's first batch. Spark also keeps the first
// run's provider: `providerClass` is recorded in `offsets/N` like the partition count, and on restart the
// checkpoint's value replaces the session's (with a warning), so switching to RocksDB needs a new checkpoint.
// Sluice's two providers read and write the same files, so it may change between runs.
// Sluice reads only its `sluice.*` names: a `spark.*` key set on a Sluice session does nothing.
//
// Both windows are still open: append mode writes a window once the watermark passes its end. An event at
// 12:31 moves the watermark to 12:21, which closes both (lesson 04 explains the timing).

// %%
pageViews.addData([{ user_id: 'user-0', timestamp: t('12:31') }]);
for (const q of [exactQuery, approxQuery]) await q.processAllAvailable();
const exact = sluice.memoryTable('lesson05_exact').rows;
const approx = sluice.memoryTable('lesson05_approx').rows;
console.log(exact.map((r, i) => {
  const e = r.users as number;
  const a = approx[i].users as number;
  return `${win(r)}  views ${approx[i].views}  exact distinct ${e}  approx ${a}  error ${((100 * (a - e)) / e).toFixed(2)}%`;
}).join('\n'));
const after = exactQuery.lastProgress!.stateOperators[1]; // the dedupe, beneath the count
console.log(`${after.operatorName} state now: ${after.numRowsTotal} keys — the closed windows' keys were removed by the watermark`);

// %% [markdown]
// ## How do approximate aggregations work?
//
// `approx_count_distinct(col, rsd = 0.05)` is **HyperLogLog**: each value is hashed; the first *p* bits of the
// hash pick one of 2^p registers, and the register keeps the longest run of leading zeros seen in the
// remaining bits — a long run is rare, so it says "many distinct values passed here". The estimate is a
// harmonic mean over the registers (with linear counting for small counts, as HLL++ does). Duplicates hash
// the same way, so they change nothing: that is what makes it a *distinct* count. The sketch has a **fixed
// size**, and two sketches merge by taking the larger register — so it fits a streaming buffer.
//
// `rsd` is the relative standard deviation you accept. Both engines turn it into *p* the same way,
// *p* = ⌈2·log2(1.106/rsd)⌉: the default 0.05 gives p = 9 (512 registers, standard error 1.04/√512 = 4.6%),
// and 0.01 gives p = 14 (16,384 registers, 0.8%). The rest differs:
//
// | | Spark 3.5 (`HyperLogLogPlusPlus`) | Sluice |
// |---|---|---|
// | hash | XxHash64 (64 bits, seed 42) of the value | MurmurHash3 x86 (32 bits) of the value's string form |
// | registers | 6 bits each, packed 10 to a 64-bit word: (⌊2^p/10⌋ + 1) × 8 bytes — 416 bytes at p = 9, 13,112 at p = 14 | one byte each: 2^p bytes — 512 at p = 9, 16,384 at p = 14 |
// | estimate | HLL++: linear counting below a threshold per *p*, then the empirical bias correction | linear counting up to 2.5·2^p, then the raw estimate (no bias tables) |
// | range | 64-bit hash; any *p* from 4 up | 32-bit hash: fine up to ~10^8 distinct values per group; *p* capped at 16 |
//
// So the estimates printed in this lesson are **Sluice's**. Spark puts the same users in other registers
// (another hash) and corrects the estimate differently: on the same data it prints another number, within
// the same error bound — compare with the error bound, never with the digits. On the same 12,000 users,
// batch DataFrames (where exact distinct is fine):

// %%
const sample = sluice.createDataFrame(views(30_000, 12_000, '12:00'), 'user_id STRING, timestamp TIMESTAMP');
const [cmp] = await sample.groupBy().agg(
  countDistinct('user_id').alias('exact'),
  approx_count_distinct('user_id').alias('rsd_0_05'),
  approx_count_distinct('user_id', 0.01).alias('rsd_0_01'),
).collect();
console.log(cmp);
/** The size of Spark's sketch for precision p: 6-bit registers, 10 per 8-byte word, plus one word. */
const sparkSketchBytes = (p: number): number => (Math.floor(2 ** p / 10) + 1) * 8;
console.log(([['rsd_0_05', 9], ['rsd_0_01', 14]] as const).map(([k, p]) =>
  `${k}: p = ${p}, Sluice's sketch ${2 ** p} bytes per group (Spark's: ${sparkSketchBytes(p)}), Sluice's error ` +
  `${((100 * ((cmp[k] as number) - (cmp.exact as number))) / (cmp.exact as number)).toFixed(2)}%`).join('\n'));

// %% [markdown]
// ## Check
// The refusal; the exact counts, known from how `views()` builds the input (12,000 and 500 distinct users);
// the state sizes that follow from them; Sluice's estimates within two standard errors; the sketch sizes.

// %%
assert.match(refusal, /exact distinct aggregations are not supported on streams[\s\S]*approx_count_distinct[\s\S]*dropDuplicates/);
assert.deepEqual(exact.map((r) => `${win(r)}:${r.users}`), ['12:00-12:10:12000', '12:10-12:20:500']);
assert.deepEqual(approx.map((r) => `${win(r)}:${r.views}`), ['12:00-12:10:30000', '12:10-12:20:6000']);
for (let i = 0; i < 2; i++) {
  assert.ok(Math.abs((approx[i].users as number) / (exact[i].users as number) - 1) < 2 * 0.046, `window ${i} approx within 2σ`);
}
assert.deepEqual(exactQuery.lastProgress!.stateOperators.map((o) => o.operatorName), ['stateStoreSave', 'dedupe']);
assert.equal(dedupeOp.numRowsTotal, 12_500); // 12,000 + 500 distinct (user, window) keys
assert.equal(countOp.numRowsTotal, 2);       // two windows open
assert.equal(after.numRowsTotal, 1); // only 12:30-12:40's user remains
assert.equal(cmp.exact, 12_000);
assert.ok(Math.abs((cmp.rsd_0_01 as number) / 12_000 - 1) < 2 * 0.0082);
assert.deepEqual([sparkSketchBytes(9), sparkSketchBytes(14)], [416, 13_112]);
for (const q of [exactQuery, approxQuery]) await q.stop();
console.log('lesson 05 checks passed');
