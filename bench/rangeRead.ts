/**
 * `npm run bench -- --suite rangeread [--records 400000 --batch 5000]`: batch latency of a query that reads
 * a long single-partition topic in batches of BATCH offsets — every batch starts in the middle of the
 * partition — with librdkafka's default `fetch.queue.backoff.ms` (1000 ms) and with Sluice's (10 ms).
 * Issue 16 item 9: the default paused fetching for a second once the local queue was over its thresholds,
 * which a range read hits at every batch.
 */
import { join } from 'node:path';
import { SluiceSession } from '../src/api/session.js';
import { col } from '../src/expr/functions.js';
import { AckedProducer, KafkaAdmin } from '../src/kafka/client.js';
import { privateStack } from './stack.js';

export interface RangeReadResult {
  records: number;
  batch: number;
  runs: Array<{ fetchQueueBackoffMs: number; batches: number; totalMs: number; batchesOver500Ms: number; medianBatchMs: number; p90BatchMs: number; maxBatchMs: number }>;
  /** Time to read the whole topic, librdkafka's default over Sluice's. */
  totalRatio: number;
}

export async function rangeReadSuite(N: number, BATCH: number, note: (l: string) => void): Promise<RangeReadResult> {
  const { dir, info, close } = await privateStack(note);
  const conf = { 'bootstrap.servers': info.bootstrapServers };
  try {
    const admin = new KafkaAdmin(conf);
    await admin.createTopic('rangeread-in', 1);
    admin.disconnect();
    note(`Producing ${N} records of ~100 bytes to one partition…`);
    const producer = new AckedProducer(conf);
    for (let i = 0; i < N; i += 50_000) {
      const n = Math.min(50_000, N - i);
      await producer.send(Array.from({ length: n }, (_, j) => ({ topic: 'rangeread-in', value: Buffer.from(`v${i + j}`.padEnd(100, 'x')) })));
      await producer.flush();
    }
    await producer.close();
    const runs = [];
    for (const backoff of [1000, 10]) {
      note(`Reading in batches of ${BATCH} with fetch.queue.backoff.ms=${backoff}…`);
      const session = new SluiceSession('bench-rangeread');
      session.log = () => {};
      const q = await session.readStream
        .format('kafka')
        .option('kafka.bootstrap.servers', info.bootstrapServers)
        .option('kafka.fetch.queue.backoff.ms', backoff)
        .option('subscribe', 'rangeread-in')
        .option('startingOffsets', 'earliest')
        .option('maxOffsetsPerTrigger', BATCH)
        .load()
        .select(col('value'))
        .writeStream.format('memory')
        .queryName(`rangeread_${backoff}`)
        .option('checkpointLocation', join(dir, `checkpoint-${backoff}`))
        .trigger({ availableNow: true })
        .start();
      await q.awaitTermination();
      session.memoryTable(`rangeread_${backoff}`).rows.length = 0;
      const d = q.recentProgress.filter((p) => p.numInputRows > 0).map((p) => p.durationMs.addBatch ?? 0).sort((a, b) => a - b);
      const at = (f: number): number => d[Math.min(d.length - 1, Math.floor(d.length * f))]!;
      runs.push({ fetchQueueBackoffMs: backoff, batches: d.length, totalMs: d.reduce((a, b) => a + b, 0), batchesOver500Ms: d.filter((x) => x > 500).length, medianBatchMs: at(0.5), p90BatchMs: at(0.9), maxBatchMs: d[d.length - 1]! });
    }
    return { records: N, batch: BATCH, runs, totalRatio: Math.round((runs[0]!.totalMs / runs[1]!.totalMs) * 10) / 10 };
  } finally {
    await close();
  }
}
