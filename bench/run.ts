/**
 * `npm run bench`: the demo pipeline's throughput against a raw consume→produce copy with the same Kafka
 * client and no transform, in one run on one machine, on a private local stack (free ports, temp folder).
 *
 *   npm run bench [-- --records 1000000 --batch 100000 --json --suite all|kafka|windowed|backlog]
 *   npm run bench -- --suite backlog --records 5000000   a backlog with no maxOffsetsPerTrigger: peak RSS
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { spawnSync } from 'node:child_process';
import { SluiceSession } from '../src/api/session.js';
import { produceEvents } from '../src/demo/events.js';
import { demoPipeline } from '../src/demo/pipeline.js';
import { AckedProducer, KafkaAdmin, PartitionOffsets, RangeReader } from '../src/kafka/client.js';
import { down, freePort, up } from '../src/stack/stack.js';

const { values: args } = parseArgs({
  options: {
    records: { type: 'string', default: '1000000' },
    batch: { type: 'string', default: '100000' },
    partitions: { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
    suite: { type: 'string', default: 'all' },
  },
});
const N = Number(args.records);
const BATCH = Number(args.batch);
const PARTS = Number(args.partitions);
const note = (l: string): void => void process.stderr.write(l + '\n');

async function rawCopy(conf: { 'bootstrap.servers': string }, from: string, to: string): Promise<number> {
  // The same work the pipeline does minus the transform: read exact offset ranges in batches of BATCH
  // records, produce them, wait for acknowledgements.
  const admin = new KafkaAdmin(conf);
  const reader = new RangeReader(conf);
  const producer = new AckedProducer(conf);
  const [d] = await admin.describeTopics([from]);
  const parts = d!.partitions.map((p) => ({ topic: from, partition: p.partition }));
  let start: PartitionOffsets = await admin.listOffsets(parts, 'earliest');
  const end = await admin.listOffsets(parts, 'latest');
  let copied = 0;
  const t0 = performance.now();
  while (copied < N) {
    const next: PartitionOffsets = { [from]: {} };
    for (const [p, s] of Object.entries(start[from]!)) next[from]![p] = Math.min(end[from]![p]!, s + Math.ceil(BATCH / parts.length));
    const recs = await reader.read(start, next);
    if (!recs.length) break;
    await producer.send(recs.map((r) => ({ topic: to, key: r.key, value: r.value })));
    await producer.flush();
    copied += recs.length;
    start = next;
  }
  const secs = (performance.now() - t0) / 1000;
  await reader.close();
  await producer.close();
  admin.disconnect();
  return copied / secs;
}

/** Windowed aggregation, 10k and 1M keys on each state provider, each case in its own process (own RSS). */
function windowedSuite(): Array<Record<string, unknown>> {
  const script = new URL('./windowed.js', import.meta.url).pathname;
  const out = [];
  const cases: Array<[provider: string, keys: number, partitions: number, workers: number]> = [
    ['memory', 10_000, 4, 1], ['memory', 1_000_000, 4, 1], ['lmdb', 10_000, 4, 1], ['lmdb', 1_000_000, 4, 1],
    // State partitions: what splitting state costs in one thread.
    ['memory', 1_000_000, 1, 1], ['memory', 1_000_000, 16, 1],
    // The same partitions in two worker threads (sluice.sql.streaming.aggregation.workers).
    ['memory', 10_000, 4, 2], ['memory', 1_000_000, 4, 2], ['lmdb', 1_000_000, 4, 2],
  ];
  for (const [provider, keys, partitions, workers] of cases) {
    note(`Windowed aggregation: ${keys} keys, ${provider} state, ${partitions} partitions, ${workers} worker(s)…`);
    const r = spawnSync(
      process.execPath,
      [script, '--keys', String(keys), '--provider', provider, '--partitions', String(partitions), '--workers', String(workers), '--records', String(N), '--json'],
      { encoding: 'utf8' },
    );
    if (r.status !== 0) throw new Error(`windowed benchmark failed: ${r.stderr}`);
    out.push(JSON.parse(r.stdout.trim()) as Record<string, unknown>);
  }
  return out;
}

function windowedLine(r: Record<string, unknown>): string {
  return `windowed ${r.provider} ${r.keys} keys, ${r.partitions} partitions, ${r.workers} worker(s): ${r.recordsPerSecond} records/s, peak RSS ${r.peakRssMB} MB, heap ${r.heapUsedMB} MB, clone/work ${r.handoffToWork}\n`;
}

async function main(): Promise<void> {
  // The windowed suite needs no Kafka: it runs on memory streams.
  if (args.suite === 'windowed') {
    const rows = windowedSuite();
    if (args.json) process.stdout.write(JSON.stringify({ windowed: rows }) + '\n');
    else for (const r of rows) process.stdout.write(windowedLine(r));
    return;
  }
  if (args.suite === 'backlog') return backlogSuite();
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-'));
  const info = await up({ dir, ports: { kafka: await freePort(), controller: await freePort(), registry: await freePort() }, log: note });
  const conf = { 'bootstrap.servers': info.bootstrapServers };
  const registry = { url: info.registryUrl };
  try {
    const admin = new KafkaAdmin(conf);
    for (const t of ['bench-in', 'bench-out', 'bench-copy', 'bench-dlq']) await admin.createTopic(t, PARTS);
    admin.disconnect();
    note(`Producing ${N} Avro events to bench-in (${PARTS} partitions)…`);
    const tp = performance.now();
    await produceEvents(N, { topic: 'bench-in', kafka: conf, format: 'avro', registry, seed: 1, onProgress: (n) => n % 200_000 === 0 && note(`  ${n}`) });
    const produceRate = N / ((performance.now() - tp) / 1000);

    note('Raw consume→produce copy (same client, no transform)…');
    const raw = await rawCopy(conf, 'bench-in', 'bench-copy');

    note('Demo pipeline (Avro decode via registry → derive → Avro encode → Kafka)…');
    const session = new SluiceSession('bench');
    session.log = () => {};
    const t0 = performance.now();
    const q = await demoPipeline(session, {
      bootstrapServers: info.bootstrapServers,
      registry,
      inputTopic: 'bench-in',
      outputTopic: 'bench-out',
      deadLetterTopic: 'bench-dlq',
      checkpointLocation: join(dir, 'checkpoint'),
      trigger: { availableNow: true },
      maxOffsetsPerTrigger: BATCH,
    }).start();
    await q.awaitTermination();
    const secs = (performance.now() - t0) / 1000;
    const processed = q.recentProgress.reduce((n, p) => n + p.numInputRows, 0);
    const pipeline = processed / secs;
    const result = {
      records: N,
      batchSize: BATCH,
      partitions: PARTS,
      produceRecordsPerSecond: Math.round(produceRate),
      rawCopyRecordsPerSecond: Math.round(raw),
      pipelineRecordsPerSecond: Math.round(pipeline),
      pipelineToRawRatio: Math.round((pipeline / raw) * 100) / 100,
      peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
      node: process.version,
    };
    const windowed = args.suite === 'all' ? windowedSuite() : [];
    if (args.json) process.stdout.write(JSON.stringify({ ...result, windowed }) + '\n');
    else {
      process.stdout.write(
        `records: ${N} (${PARTS} partitions, batches of ${BATCH})\n` +
          `raw consume→produce copy: ${result.rawCopyRecordsPerSecond} records/s\n` +
          `demo pipeline:            ${result.pipelineRecordsPerSecond} records/s\n` +
          `pipeline / raw:           ${result.pipelineToRawRatio}\n` +
          `peak RSS: ${result.peakRssMB} MB\n` +
          windowed.map(windowedLine).join(''),
      );
    }
  } finally {
    await down({ dir, log: () => {} });
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * N plain records (about 100 bytes each), read by a new query with startingOffsets=earliest and no
 * maxOffsetsPerTrigger — one batch of N — in its own process, so its peak RSS is the query's.
 */
async function backlogSuite(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-'));
  const info = await up({ dir, ports: { kafka: await freePort(), controller: await freePort(), registry: await freePort() }, log: note });
  const conf = { 'bootstrap.servers': info.bootstrapServers };
  try {
    const admin = new KafkaAdmin(conf);
    for (const t of ['backlog-in', 'backlog-out']) await admin.createTopic(t, PARTS);
    admin.disconnect();
    note(`Producing ${N} records to backlog-in (${PARTS} partitions)…`);
    const producer = new AckedProducer(conf);
    const pad = 'x'.repeat(80);
    for (let i = 0; i < N; i += 100_000) {
      const n = Math.min(100_000, N - i);
      await producer.send(Array.from({ length: n }, (_, j) => ({ topic: 'backlog-in', key: Buffer.from(`user-${(i + j) % 1000}`), value: Buffer.from(`{"n":${i + j},"pad":"${pad}"}`) })));
      await producer.flush();
      if ((i + n) % 1_000_000 === 0) note(`  ${i + n}`);
    }
    await producer.close();
    note('One query on the whole backlog (no maxOffsetsPerTrigger)…');
    const script = new URL('./backlog.js', import.meta.url).pathname;
    const r = spawnSync(process.execPath, [script, '--bootstrap', info.bootstrapServers, '--input', 'backlog-in', '--output', 'backlog-out', '--json'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`backlog benchmark failed: ${r.stderr}`);
    const child = JSON.parse(r.stdout.trim()) as { records: number; batches: number; recordsPerSecond: number; peakRssMB: number; heapUsedMB: number };
    const result = { suite: 'backlog', partitions: PARTS, ...child, node: process.version };
    if (args.json) process.stdout.write(JSON.stringify(result) + '\n');
    else process.stdout.write(`backlog of ${result.records} records in ${result.batches} batch(es): ${result.recordsPerSecond} records/s, peak RSS ${result.peakRssMB} MB\n`);
  } finally {
    await down({ dir, log: () => {} });
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
process.exit(0);
