/**
 * One Sluice case of `npm run bench -- --suite peer` (bench/peer.ts), in its own process so that its CPU time
 * and peak RSS are its own:
 *
 *   node dist/bench/peerSluice.js --case demo|windowed --bootstrap HOST:PORT --registry-url URL --in TOPIC
 *     --out TOPIC --dlq TOPIC --checkpoint DIR [--batch 100000] [--conf key=value]...
 *
 * Runs the pipeline with Trigger.AvailableNow and maxOffsetsPerTrigger = --batch from a fresh checkpoint and
 * prints one JSON line: input rows (summed from progress events), wall time from start() to termination,
 * CPU (process.cpuUsage(): every thread of the process, librdkafka's included, plus children the process
 * waited for), peak RSS, and start() as epoch ms (the parent measures first output against it).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { SluiceSession } from '../src/api/session.js';
import { demoPipeline, type DemoPipelineOptions } from '../src/demo/pipeline.js';
import type { StreamingQueryProgress } from '../src/exec/progress.js';
import { windowedPipeline } from './peer.js';

const { values: a } = parseArgs({
  options: {
    case: { type: 'string' },
    bootstrap: { type: 'string' },
    'registry-url': { type: 'string' },
    in: { type: 'string' },
    out: { type: 'string' },
    dlq: { type: 'string' },
    checkpoint: { type: 'string' },
    batch: { type: 'string', default: '100000' },
    conf: { type: 'string', multiple: true, default: [] },
  },
});
for (const k of ['case', 'bootstrap', 'registry-url', 'in', 'out', 'dlq', 'checkpoint'] as const) {
  if (!a[k]) throw new Error(`peerSluice: --${k} is required`);
}
if (a.case !== 'demo' && a.case !== 'windowed') throw new Error(`peerSluice: --case is demo or windowed, not ${a.case}`);

/** utime+stime of the children this process waited for (fields 16 and 17 of /proc/self/stat), in seconds. */
function childrenCpuSeconds(): number {
  try {
    const f = readFileSync('/proc/self/stat', 'utf8').split(')').pop()!.trim().split(/\s+/);
    return (Number(f[13]) + Number(f[14])) / 100; // USER_HZ is 100 on Linux
  } catch {
    return 0;
  }
}

const session = new SluiceSession('bench-peer');
session.log = (l) => void process.stderr.write(`[sluice] ${l}\n`);
for (const kv of a.conf!) {
  const i = kv.indexOf('=');
  if (i <= 0) throw new Error(`peerSluice: --conf takes key=value, not "${kv}"`);
  session.conf.set(kv.slice(0, i), kv.slice(i + 1));
}
const options: DemoPipelineOptions = {
  bootstrapServers: a.bootstrap!,
  registry: { url: a['registry-url']! },
  inputTopic: a.in!,
  outputTopic: a.out!,
  deadLetterTopic: a.dlq!,
  checkpointLocation: a.checkpoint!,
  trigger: { availableNow: true },
  maxOffsetsPerTrigger: Number(a.batch),
};
const writer = a.case === 'demo' ? demoPipeline(session, options) : windowedPipeline(session, options);

const progress: StreamingQueryProgress[] = [];
let firstBatchDoneEpochMs: number | undefined;
session.streams.addListener({
  onQueryProgress: ({ progress: p }) => {
    progress.push(p);
    if (firstBatchDoneEpochMs === undefined && p.numInputRows > 0 && p.sink.numOutputRows > 0) firstBatchDoneEpochMs = Date.now();
  },
});

const cpu0 = process.cpuUsage();
const children0 = childrenCpuSeconds();
const startEpochMs = Date.now();
const t0 = performance.now();
const q = await writer.start();
await q.awaitTermination();
const wallMs = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
const cpuSeconds = (cpu.user + cpu.system) / 1e6 + (childrenCpuSeconds() - children0);
if (q.exception) throw q.exception;
const data = progress.filter((p) => p.numInputRows > 0);
const inputRows = data.reduce((n, p) => n + p.numInputRows, 0);
const result = {
  engine: 'sluice',
  pipeline: a.case,
  inputRows,
  batches: data.length,
  noDataBatches: progress.length - data.length,
  wallMs: Math.round(wallMs),
  recordsPerSecond: Math.round(inputRows / (wallMs / 1000)),
  startEpochMs,
  firstBatchDoneMs: firstBatchDoneEpochMs === undefined ? null : firstBatchDoneEpochMs - startEpochMs,
  cpuSeconds: Math.round(cpuSeconds * 100) / 100,
  cpuCores: Math.round((cpuSeconds / (wallMs / 1000)) * 100) / 100,
  peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
  sinkOutputRows: progress.reduce((n, p) => n + p.sink.numOutputRows, 0),
  deadLetterRows: progress.reduce((n, p) => n + (p.numDeadLetterRows ?? 0), 0),
  droppedByWatermark: progress.reduce((n, p) => n + p.stateOperators.reduce((m, o) => m + (o.numRowsDroppedByWatermark ?? 0), 0), 0),
  conf: session.conf.getAll(),
};
process.stdout.write(JSON.stringify(result) + '\n');
process.exit(0);
