/**
 * `npm run bench -- --suite latency [--rate 10000 --seconds 20]` (issue 12): end-to-end latency of a running
 * query. Events are produced at a fixed rate, each with its send time (ms) as its key; the query copies key
 * and value from one topic to another with a processing-time trigger of 0; the output topic stamps each
 * record with the broker's time (message.timestamp.type=LogAppendTime). Latency = output broker timestamp −
 * send time, p50/p90/p99/max over the events after the first 2 s (start-up), plus the time to the first output.
 */
import { join } from 'node:path';
import { SluiceSession } from '../src/api/session.js';
import { col, upper } from '../src/expr/functions.js';
import { AckedProducer, KafkaAdmin, readTopic } from '../src/kafka/client.js';
import { privateStack } from './stack.js';
import type { StreamingQueryProgress } from '../src/exec/progress.js';

export interface LatencyResult {
  rate: number;
  seconds: number;
  events: number;
  measured: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  firstOutputMs: number;
  /** Where a batch's time goes while measuring: batches, their duration (p50/p99) and the mean of each phase. */
  batches: { count: number; rowsP50: number; p50Ms: number; p99Ms: number; meanPhasesMs: Record<string, number> };
}

const quantile = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? 0;

export async function latencySuite(rate: number, seconds: number, note: (l: string) => void): Promise<LatencyResult> {
  const { dir, info, close } = await privateStack(note);
  const conf = { 'bootstrap.servers': info.bootstrapServers };
  try {
    const admin = new KafkaAdmin(conf);
    await admin.createTopic('lat-in', 3);
    await admin.createTopic('lat-out', 3, 1, { 'message.timestamp.type': 'LogAppendTime' });
    admin.disconnect();
    // 1,000 events already there: the time from start() to their first output record is the first-output time.
    const backlog = new AckedProducer(conf);
    await backlog.send(Array.from({ length: 1000 }, (_, i) => ({ topic: 'lat-in', key: Buffer.from('0'), value: Buffer.from(`b${i}`) })));
    await backlog.flush();
    await backlog.close();
    const session = new SluiceSession('bench-latency');
    session.log = () => {};
    const all: StreamingQueryProgress[] = [];
    session.streams.addListener({ onQueryProgress: (e) => void all.push(e.progress) });
    const started = Date.now();
    const q = await session.readStream.format('kafka').option('kafka.bootstrap.servers', info.bootstrapServers).option('subscribe', 'lat-in')
      .option('startingOffsets', 'earliest').load()
      .select(col('key'), upper(col('value').cast('string')).alias('value'))
      .writeStream.format('kafka').option('kafka.bootstrap.servers', info.bootstrapServers).option('topic', 'lat-out')
      .option('checkpointLocation', join(dir, 'checkpoint'))
      .trigger({ processingTime: '0 seconds' })
      .start();
    while (!q.lastProgress) await new Promise((r) => setTimeout(r, 10)); // the backlog's batch is done
    note(`Producing ${rate} events/s for ${seconds} s…`);
    // 10 ms ticks: rate/100 events each, their send time in the key; acknowledged in the background.
    const producer = new AckedProducer({ ...conf, 'linger.ms': 0 });
    const perTick = Math.max(1, Math.round(rate / 100));
    const t0 = Date.now();
    let sent = 0;
    for (let tick = 0; Date.now() - t0 < seconds * 1000; tick++) {
      const due = t0 + tick * 10;
      if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
      const now = String(Date.now());
      await producer.send(Array.from({ length: perTick }, (_, i) => ({ topic: 'lat-in', key: Buffer.from(now), value: Buffer.from(`e${sent + i}`) })));
      sent += perTick;
    }
    await producer.flush();
    await producer.close();
    // Until the query has written everything.
    for (const deadline = Date.now() + 60_000; Date.now() < deadline; ) {
      const outCount = q.recentProgress.reduce((n, p) => n + p.sink.numOutputRows, 0);
      if (outCount >= sent + 1000) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await q.stop();
    const measuredBatches = all.filter((p) => Date.parse(p.timestamp) >= t0 + 2_000 && p.numInputRows > 0);
    const durations = measuredBatches.map((p) => p.durationMs.triggerExecution).sort((a, b) => a - b);
    const phases: Record<string, number> = {};
    for (const p of measuredBatches) for (const [k, v] of Object.entries(p.durationMs)) phases[k] = (phases[k] ?? 0) + v / measuredBatches.length;
    const out = await readTopic(conf, 'lat-out');
    const firstOutput = out.reduce((m, r) => Math.min(m, r.timestamp), Infinity);
    const latencies = out
      .filter((r) => Number(r.key!.toString()) >= t0 + 2_000)
      .map((r) => r.timestamp - Number(r.key!.toString()))
      .sort((a, b) => a - b);
    return {
      rate,
      seconds,
      events: sent,
      measured: latencies.length,
      p50Ms: quantile(latencies, 0.5),
      p90Ms: quantile(latencies, 0.9),
      p99Ms: quantile(latencies, 0.99),
      maxMs: latencies[latencies.length - 1] ?? 0,
      firstOutputMs: firstOutput - started,
      batches: {
        count: measuredBatches.length,
        rowsP50: quantile(measuredBatches.map((p) => p.numInputRows).sort((a, b) => a - b), 0.5),
        p50Ms: quantile(durations, 0.5),
        p99Ms: quantile(durations, 0.99),
        meanPhasesMs: Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, Math.round(v * 10) / 10])),
      },
    };
  } finally {
    await close();
  }
}
