/**
 * `npm run bench -- --suite eos [--records 300000 --batch 3000]`: what exactly-once costs. The demo pipeline
 * (Avro in via the registry → derive → Avro out, dead letters on) runs over the same input with the
 * at-least-once Kafka sink and with the exactly-once one (one transaction per batch, with its marker), twice
 * each, alternating, on a private stack. Records/s over the whole run and batch latency (progress
 * batchDuration: p50, p99) per case; the ratio is of the two in the same run.
 */
import { join } from 'node:path';
import { SluiceSession } from '../src/api/session.js';
import { produceEvents } from '../src/demo/events.js';
import { demoPipeline } from '../src/demo/pipeline.js';
import { KafkaAdmin } from '../src/kafka/client.js';
import { privateStack } from './stack.js';

export interface ExactlyOnceCase {
  sink: 'atLeastOnce' | 'exactlyOnce';
  round: number;
  batches: number;
  recordsPerSecond: number;
  p50BatchMs: number;
  p99BatchMs: number;
}

const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] ?? 0;
};

export async function exactlyOnceSuite(N: number, BATCH: number, note: (l: string) => void): Promise<{ records: number; batch: number; cases: ExactlyOnceCase[]; throughputRatio: number; p99Ratio: number }> {
  const { dir, info, close } = await privateStack(note);
  const conf = { 'bootstrap.servers': info.bootstrapServers };
  const registry = { url: info.registryUrl };
  try {
    const admin = new KafkaAdmin(conf);
    await admin.createTopic('eos-in', 3);
    admin.disconnect();
    note(`Producing ${N} Avro events…`);
    await produceEvents(N, { topic: 'eos-in', kafka: conf, format: 'avro', registry, seed: 1 });
    const cases: ExactlyOnceCase[] = [];
    for (const round of [1, 2]) {
      for (const sink of ['atLeastOnce', 'exactlyOnce'] as const) {
        const name = `${sink}-${round}`;
        const a = new KafkaAdmin(conf);
        for (const t of [`eos-out-${name}`, `eos-dlq-${name}`]) await a.createTopic(t, 3);
        a.disconnect();
        note(`Demo pipeline, ${sink} sink, round ${round}…`);
        const session = new SluiceSession('bench-eos');
        session.log = () => {};
        const t0 = performance.now();
        const q = await demoPipeline(session, {
          bootstrapServers: info.bootstrapServers,
          registry,
          inputTopic: 'eos-in',
          outputTopic: `eos-out-${name}`,
          deadLetterTopic: `eos-dlq-${name}`,
          checkpointLocation: join(dir, 'checkpoints', name),
          trigger: { availableNow: true },
          maxOffsetsPerTrigger: BATCH,
        })
          .option('exactlyOnce', String(sink === 'exactlyOnce'))
          .start();
        await q.awaitTermination();
        const secs = (performance.now() - t0) / 1000;
        const progress = q.recentProgress.filter((p) => p.numInputRows > 0);
        const durations = progress.map((p) => p.batchDuration);
        cases.push({
          sink,
          round,
          batches: durations.length,
          recordsPerSecond: Math.round(progress.reduce((n, p) => n + p.numInputRows, 0) / secs),
          p50BatchMs: quantile(durations, 0.5),
          p99BatchMs: quantile(durations, 0.99),
        });
      }
    }
    const mean = (sink: string, f: (c: ExactlyOnceCase) => number): number => {
      const xs = cases.filter((c) => c.sink === sink).map(f);
      return xs.reduce((a, b) => a + b, 0) / xs.length;
    };
    return {
      records: N,
      batch: BATCH,
      cases,
      throughputRatio: Math.round((mean('exactlyOnce', (c) => c.recordsPerSecond) / mean('atLeastOnce', (c) => c.recordsPerSecond)) * 100) / 100,
      p99Ratio: Math.round((mean('exactlyOnce', (c) => c.p99BatchMs) / mean('atLeastOnce', (c) => c.p99BatchMs)) * 100) / 100,
    };
  } finally {
    await close();
  }
}
