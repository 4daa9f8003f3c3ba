/**
 * `npm run bench`: the demo pipeline's throughput against a raw consume→produce copy with the same Kafka
 * client and no transform, in one run on one machine, on a private local stack (free ports, temp folder).
 *
 *   npm run bench [-- --records 1000000 --batch 100000 --json --suite all|kafka|windowed|backlog|join]
 *   npm run bench -- --suite backlog --records 5000000   a backlog with no maxOffsetsPerTrigger: peak RSS
 *   npm run bench -- --suite rangeread [--records 400000 --batch 5000]   batch latency of mid-partition range reads
 *   npm run bench -- --suite latency [--rate 10000 --seconds 20]   end-to-end p50/p99 latency and first output (bench/latency.ts)
 *   npm run bench -- --suite eos [--records 300000 --batch 3000]   the demo pipeline with the at-least-once and the
 *     exactly-once Kafka sink: records/s and p50/p99 batch latency, and their ratios (bench/exactlyOnce.ts)
 *   npm run bench -- --suite join [--peer auto|spark|none] [--verify]   stream-stream join of N orders × N payments
 *     (bench/join.ts, memory and lmdb state, no Kafka), then the same data and join in PySpark 3.5, local[2]
 *     (bench/peers/spark_join.py; `auto` runs it when python3 can import pyspark), with the Sluice/PySpark ratio
 *   npm run bench -- --suite peer [--peer auto|spark|none] [--cases demo,windowed] [--sluice-conf key=value]...
 *     the demo pipeline and a windowed aggregation on one Kafka topic in Sluice and in PySpark 3.5.9, local[2]
 *     (bench/peers/spark_pipelines.py), and a raw kcat copy: records/s, ratios, first output, CPU (bench/peer.ts)
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { spawnSync } from 'node:child_process';
import { SluiceSession } from '../src/api/session.js';
import { produceEvents } from '../src/demo/events.js';
import { demoPipeline } from '../src/demo/pipeline.js';
import { AckedProducer, KafkaAdmin, PartitionOffsets, RangeReader } from '../src/kafka/client.js';
import { privateStack } from './stack.js';
import { rangeReadSuite } from './rangeRead.js';
import { exactlyOnceSuite } from './exactlyOnce.js';
import { latencySuite } from './latency.js';
import { peerLines, peerSuite, type PeerCase } from './peer.js';

// `--suite userstate [--keys 10000000 --records N --batch 500000 --provider lmdb|memory --peer auto|spark|none
// --peer-keys K]`: user state per key beyond memory (mapGroupsWithState on LMDB, PySpark's applyInPandasWithState
// on RocksDB), run by bench/userState.ts with its own options, each case in its own process.
if (process.argv.includes('userstate') || process.argv.includes('--suite=userstate')) {
  const r = spawnSync(process.execPath, [new URL('./userState.js', import.meta.url).pathname, '--suite', ...process.argv.slice(2).filter((x) => !/^(--suite(=userstate)?|userstate)$/.test(x))], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

const { values: args } = parseArgs({
  options: {
    records: { type: 'string', default: '1000000' },
    batch: { type: 'string', default: '100000' },
    partitions: { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
    suite: { type: 'string', default: 'all' },
    peer: { type: 'string', default: 'auto' },
    verify: { type: 'boolean', default: false },
    rate: { type: 'string', default: '10000' },
    seconds: { type: 'string', default: '20' },
    'sluice-conf': { type: 'string', multiple: true, default: [] },
    cases: { type: 'string', default: 'demo,windowed' },
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
  if (args.suite === 'join') return joinSuite();
  if (args.suite === 'latency') {
    const r = await latencySuite(Number(args.rate), Number(args.seconds), note);
    if (args.json) process.stdout.write(JSON.stringify({ suite: 'latency', ...r }) + '\n');
    else {
      process.stdout.write(
        `${r.events} events at ${r.rate}/s for ${r.seconds} s (${r.measured} measured after the first 2 s): latency p50 ${r.p50Ms} ms, ` +
          `p90 ${r.p90Ms} ms, p99 ${r.p99Ms} ms, max ${r.maxMs} ms; first output ${r.firstOutputMs} ms after start()\n` +
          `batches: ${JSON.stringify(r.batches)}\n`,
      );
    }
    return;
  }
  if (args.suite === 'peer') {
    const cases = args.cases.split(',').map((c) => c.trim()).filter(Boolean) as PeerCase[];
    if (!cases.length || cases.some((c) => c !== 'demo' && c !== 'windowed')) throw new Error(`--cases: demo and/or windowed, not ${args.cases}`);
    if (!['auto', 'spark', 'none'].includes(args.peer)) throw new Error(`--peer: auto, spark or none, not ${args.peer}`);
    const r = await peerSuite({ records: N, batch: BATCH, partitions: PARTS, peer: args.peer as 'auto' | 'spark' | 'none', sluiceConf: args['sluice-conf'], cases }, note);
    process.stdout.write(args.json ? JSON.stringify(r) + '\n' : peerLines(r));
    return;
  }
  if (args.suite === 'eos') {
    const r = await exactlyOnceSuite(process.argv.includes('--records') ? N : 300_000, process.argv.includes('--batch') ? BATCH : 3_000, note);
    if (args.json) process.stdout.write(JSON.stringify({ suite: 'eos', ...r }) + '\n');
    else {
      for (const c of r.cases) {
        process.stdout.write(`${c.sink.padEnd(11)} round ${c.round}: ${c.batches} batches of ${r.batch}, ${c.recordsPerSecond} records/s, batch p50 ${c.p50BatchMs} ms, p99 ${c.p99BatchMs} ms\n`);
      }
      process.stdout.write(`exactly-once / at-least-once: throughput ${r.throughputRatio}×, p99 batch latency ${r.p99Ratio}×\n`);
    }
    return;
  }
  if (args.suite === 'rangeread') {
    const r = await rangeReadSuite(process.argv.includes('--records') ? N : 400_000, process.argv.includes('--batch') ? BATCH : 5_000, note);
    if (args.json) process.stdout.write(JSON.stringify({ suite: 'rangeread', ...r }) + '\n');
    else {
      for (const x of r.runs) {
        process.stdout.write(
          `fetch.queue.backoff.ms=${x.fetchQueueBackoffMs}: ${x.batches} batches of ${r.batch} in ${x.totalMs} ms, ${x.batchesOver500Ms} over 500 ms; ` +
            `median ${x.medianBatchMs} ms, p90 ${x.p90BatchMs} ms, max ${x.maxBatchMs} ms\n`,
        );
      }
      process.stdout.write(`whole topic, librdkafka's default / Sluice's: ${r.totalRatio}×\n`);
    }
    return;
  }
  const { dir, info, close } = await privateStack(note);
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
    await close();
  }
}

/**
 * N plain records (about 100 bytes each), read by a new query with startingOffsets=earliest and no
 * maxOffsetsPerTrigger — one batch of N — in its own process, so its peak RSS is the query's.
 */
async function backlogSuite(): Promise<void> {
  const { info, close } = await privateStack(note);
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
    await close();
  }
}

/**
 * Stream-stream inner join, N orders × N payments in batches of BATCH rows per side: Sluice on each state provider
 * (each in its own process, memory streams), Sluice again fed from the JSON files PySpark reads (parsed in its
 * timed loop), then PySpark 3.5 in local[2] on each of its providers and a scan-only run (the same files, no
 * join: what Spark spends reading them). Output rows must agree.
 */
function joinSuite(): void {
  const script = new URL('./join.js', import.meta.url).pathname;
  const parts = '4'; // sluice.sql.shuffle.partitions and spark.sql.shuffle.partitions
  const verify = args.verify ? ['--verify'] : [];
  const runJson = (cmd: string, argv: string[], what: string): Record<string, unknown> => {
    const r = spawnSync(cmd, argv, { encoding: 'utf8', maxBuffer: 1 << 26 });
    if (r.status !== 0) throw new Error(`${what} failed: ${r.stderr}`);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
  };
  const rows: Array<Record<string, unknown>> = [];
  const python = process.env.PYTHON ?? 'python3';
  // dist/bench/run.js → bench/peers; bench/run.ts (tsx) → bench/peers
  const peer = [new URL('../../bench/peers/spark_join.py', import.meta.url), new URL('./peers/spark_join.py', import.meta.url)].map((u) => u.pathname).find((p) => existsSync(p))!;
  const hasSpark = args.peer === 'spark' || (args.peer === 'auto' && spawnSync(python, ['-c', 'import pyspark'], { stdio: 'ignore' }).status === 0);
  if (args.peer === 'auto' && !hasSpark) note('PySpark not found (pip install pyspark==3.5.9): the PySpark peer is skipped.');
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-join-data-'));
  try {
    note(`Writing the input as JSON files (${dir})…`);
    runJson(process.execPath, [script, '--write-data', dir, '--records', String(N), '--batch', String(BATCH)], 'writing the join data');
    const sluice = (provider: string, extra: string[] = []): Record<string, unknown> =>
      runJson(process.execPath, [script, '--records', String(N), '--batch', String(BATCH), '--provider', provider, '--partitions', parts, '--json', ...verify, ...extra], 'join benchmark');
    for (const provider of ['memory', 'lmdb']) {
      note(`Stream-stream join: ${N} orders × ${N} payments, batches of ${BATCH}, Sluice ${provider} state…`);
      rows.push(sluice(provider));
    }
    note('Stream-stream join: Sluice memory state, the same rows read and parsed from the JSON files in the timed loop…');
    rows.push(sluice('memory', ['--from-files', dir]));
    if (hasSpark) {
      for (const provider of ['hdfs', 'rocksdb']) {
        note(`Stream-stream join: PySpark local[2], ${provider} state…`);
        rows.push(runJson(python, [peer, '--data', dir, '--partitions', parts, '--provider', provider, '--json', ...verify], 'PySpark join'));
      }
      note('PySpark local[2]: the same file sources with no join (scan only)…');
      rows.push(runJson(python, [peer, '--data', dir, '--partitions', parts, '--scan-only', '--json'], 'PySpark scan'));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const joins = rows.filter((r) => !r.scanOnly);
  const same = (k: string): boolean => joins.every((r) => r[k] === joins[0]![k]);
  const mismatch = ['outputRows', ...(args.verify ? ['crcSum'] : [])].filter((k) => !same(k));
  const rate = (engine: string, provider: string, files = false): number | undefined =>
    joins.find((r) => r.engine === engine && r.provider === provider && String(r.input ?? '').startsWith('JSON') === files)?.recordsPerSecond as number | undefined;
  const ratio = (a?: number, b?: number): number | undefined => (a && b ? Math.round((a / b) * 100) / 100 : undefined);
  const ratios = {
    memoryToSparkHdfs: ratio(rate('sluice', 'memory'), rate('pyspark', 'hdfs')),
    lmdbToSparkRocksdb: ratio(rate('sluice', 'lmdb'), rate('pyspark', 'rocksdb')),
    memoryFromFilesToSparkHdfs: ratio(rate('sluice', 'memory', true), rate('pyspark', 'hdfs')),
  };
  if (args.json) process.stdout.write(JSON.stringify({ suite: 'join', records: N, batch: BATCH, partitions: Number(parts), runs: rows, ratios, mismatch }) + '\n');
  else {
    for (const r of rows) {
      const name = r.engine === 'sluice' ? `sluice ${r.provider}${String(r.input).startsWith('JSON') ? ' (files)' : ''}` : r.scanOnly ? 'pyspark scan only' : `pyspark ${r.provider}`;
      process.stdout.write(
        `${name.padEnd(22)} ${r.inputRows} input rows, ${r.batches} batches: ${r.recordsPerSecond} records/s, ${r.outputRows} output rows, ` +
          `peak state ${r.peakStateRows} rows, peak RSS ${r.peakRssMB} MB${r.jvmStartSeconds !== undefined ? `, JVM start ${r.jvmStartSeconds} s` : ''}${r.crcSum !== undefined ? `, crc ${r.crcSum}` : ''}\n`,
      );
    }
    if (ratios.memoryToSparkHdfs !== undefined) {
      process.stdout.write(
        `sluice memory / pyspark hdfs: ${ratios.memoryToSparkHdfs}\nsluice lmdb / pyspark rocksdb: ${ratios.lmdbToSparkRocksdb}\n` +
          `sluice memory (files) / pyspark hdfs: ${ratios.memoryFromFilesToSparkHdfs}\n`,
      );
    }
  }
  if (mismatch.length) {
    process.stderr.write(`Output differs between runs (${mismatch.join(', ')}): see the rows above.\n`);
    process.exitCode = 1;
  }
}

await main();
process.exit(process.exitCode ?? 0);
