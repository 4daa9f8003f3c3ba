// Lesson 08's crash demo, run as its own process by `node bin/sluice.js run lessons/pipelines/08-redis-sums.ts`:
// payments from Kafka (lesson08-payments, JSON {user, amount}), summed per user per batch, added into Redis
// from foreachBatch. A process is needed because the crash is real: SLUICE_FAULT=after-sink@1 kills it with
// SIGKILL after batch 1 reached Redis and before commits/1 is written. Settings from the environment:
//   REDIS_URL    the Redis to write to (redis://127.0.0.1:<port>)
//   CHECKPOINT   the query's checkpoint folder
//   QUERY_ID     names the query's Redis keys: sluice:{QUERY_ID}:key:<user>
//   MODE=upsert  upsertBatch: the batch's sums and the last-applied batch id in one MULTI/EXEC (idempotent)
//   MODE=plain   the same INCRBYs in a MULTI/EXEC, without the batch id guard
import { writeSync } from 'node:fs';
import { createClient } from 'redis';
import { SluiceSession, col, connection, from_json, storeKey, sum, upsertBatch } from 'sluice';

const env = (k: string): string => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const queryId = env('QUERY_ID');
const mode = env('MODE');
const say = (line: string): void => void writeSync(1, line + '\n'); // synchronous: printed before a crash

const redis = await createClient({ url: env('REDIS_URL') }).connect(); // this query's own connection (WATCH is per connection)
const sluice = SluiceSession.builder().appName('lesson08-redis-sums').getOrCreate();

const query = await sluice.readStream.format('kafka').options(connection().kafkaOptions)
  .option('subscribe', 'lesson08-payments').option('startingOffsets', 'earliest')
  .option('maxOffsetsPerTrigger', 10) // 10 payments per batch: batches 0, 1, 2
  .load()
  .select(from_json(col('value').cast('string'), 'user STRING, amount INT').alias('p')).select('p.*')
  .writeStream.foreachBatch(async (batch, batchId) => {
    const totals = (await batch.groupBy('user').agg(sum('amount').alias('total')).collect())
      .map((r) => [String(r.user), Number(r.total)] as const)
      .sort(([a], [b]) => (a < b ? -1 : 1));
    const what = totals.map(([user, total]) => `${user} +${total}`).join(', ');
    if (mode === 'upsert') {
      const r = await upsertBatch(redis, { queryId, batchId, incrBy: totals });
      say(`batch ${batchId}: ${what} → ${r.applied ? 'applied' : `skipped: Redis already holds batch ${r.lastBatchId}`}`);
    } else {
      const tx = redis.multi();
      for (const [user, total] of totals) tx.incrBy(storeKey(queryId, user), total);
      await tx.exec();
      say(`batch ${batchId}: ${what} → INCRBY, no guard`);
    }
  })
  .option('checkpointLocation', env('CHECKPOINT'))
  .trigger({ availableNow: true })
  .start();

try {
  await query.awaitTermination();
} finally {
  await redis.close();
}
