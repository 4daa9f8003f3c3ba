/**
 * `npm run bench -- --suite peer [--records 1000000 --batch 100000 --partitions 3 --peer auto|spark|none
 *   --cases demo,windowed --sluice-conf key=value ... --json]`: Sluice against PySpark 3.5 (local[2]) on the same
 * Kafka topic, with a raw `kcat` copy as the speed limit, on a private stack (free ports, temp folder).
 *
 * - kcat: `kcat -C … -e | kcat -P …` copies the input topic (binary-safe: a long delimiter, not newlines) — what
 *   moving the bytes costs with no decoding at all. Its record count is checked.
 * - demo: src/demo/pipeline.ts (Avro + registry in → filter, derive → Avro + registry out), and the same in
 *   PySpark (bench/peers/spark_pipelines.py), writing the schema Sluice registered, with its id.
 * - windowed: {@link windowedPipeline}: a 1-minute tumbling-window count and average per event type, update mode,
 *   JSON out.
 * Each run is a process of its own (bench/peerSluice.ts; the Python peer with its JVM), Trigger.AvailableNow,
 * maxOffsetsPerTrigger = --batch, a fresh checkpoint and its own output topic. Measured: records/s (input rows /
 * wall time from start() to termination), CPU seconds and cores (utime+stime over the same span / wall), peak
 * RSS, and first output: the broker's append time (the output topics use message.timestamp.type=LogAppendTime)
 * of the first output record, minus the epoch ms at which the run called start().
 * Verification: demo output counts must be the input count and both outputs the same multiset of decoded records
 * (every record is decoded and hashed); windowed: the final (largest-count) update per (window.start, event_type)
 * compared across engines.
 */
import { createHash } from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import avro from 'avsc';
import type { SluiceSession } from '../src/api/session.js';
import type { DataStreamWriter } from '../src/api/writer.js';
import type { DemoPipelineOptions } from '../src/demo/pipeline.js';
import { produceEvents } from '../src/demo/events.js';
import { avg, count } from '../src/expr/aggregates.js';
import { col, length, struct, to_json } from '../src/expr/functions.js';
import { window } from '../src/expr/window.js';
import { KafkaAdmin, KafkaConfig, PartitionOffsets, RangeReader } from '../src/kafka/client.js';
import { fromAvro } from '../src/serde/avro.js';
import { registryClient } from '../src/serde/registry.js';
import { unframe } from '../src/serde/wireformat.js';
import { privateStack } from './stack.js';

export type PeerCase = 'demo' | 'windowed';

/**
 * The windowed pipeline of the peer suite: Kafka Avro in (decoded as the demo does), a 1-minute tumbling window
 * per event_type with a 1-minute watermark, count and average page_url length, update mode, and as value
 * `to_json(struct(window.start, window.end, event_type, events, avg_url_length))` with no key.
 */
export function windowedPipeline(session: SluiceSession, o: DemoPipelineOptions): DataStreamWriter {
  const kafka = { 'kafka.bootstrap.servers': o.bootstrapServers, ...(o.kafkaOptions ?? {}) };
  let reader = session.readStream.format('kafka').options(kafka).option('subscribe', o.inputTopic).option('startingOffsets', 'earliest');
  if (o.maxOffsetsPerTrigger) reader = reader.option('maxOffsetsPerTrigger', o.maxOffsetsPerTrigger);
  return reader
    .load()
    .select(col('key'), fromAvro(col('value'), { registry: o.registry, subject: `${o.inputTopic}-value` }).alias('e'))
    .select('key', 'e.*')
    .withWatermark('timestamp', '1 minute')
    .groupBy(window(col('timestamp'), '1 minute'), col('event_type'))
    .agg(count('*').alias('events'), avg(length(col('page_url'))).alias('avg_url_length'))
    .select(to_json(struct(col('window.start'), col('window.end'), col('event_type'), col('events'), col('avg_url_length'))).alias('value'))
    .writeStream.format('kafka')
    .options(kafka)
    .option('topic', o.outputTopic)
    .option('deadLetter.topic', o.deadLetterTopic)
    .option('checkpointLocation', o.checkpointLocation)
    .outputMode('update')
    .queryName('windowed')
    .trigger(o.trigger ?? { processingTime: '1 second' });
}

export interface PeerOptions {
  records: number;
  batch: number;
  partitions: number;
  peer: 'auto' | 'spark' | 'none';
  /** `key=value` settings for the Sluice session (session.conf.set). */
  sluiceConf: string[];
  cases: PeerCase[];
}

export interface EngineRun {
  recordsPerSecond: number;
  wallMs: number;
  /** Broker append time of the first output record − the run's start() (epoch ms). */
  firstOutputMs: number | null;
  /** The end of the first batch that wrote output, from the engine's own progress report, − start(). */
  firstBatchDoneMs: number | null;
  cpuSeconds: number;
  cpuCores: number;
  peakRssMB: number | null;
  outputRecords: number;
  inputRows: number;
  batches: number;
  droppedByWatermark?: number;
  jvmStartMs?: number;
  jvmCpuSeconds?: number;
  driverCpuSeconds?: number;
}

export interface PeerResult {
  suite: 'peer';
  records: number;
  batch: number;
  partitions: number;
  machine: { cores: number; node: string; java: string | null; pyspark: string | null };
  sluiceConf: Record<string, string>;
  sparkShufflePartitions: number;
  pysparkSkipped?: string;
  kcat: { recordsPerSecond: number; wallMs: number; cpuSeconds: number; cpuCores: number; copied: number; delimiter: string };
  cases: Array<{ pipeline: PeerCase; sluice: EngineRun; pyspark: EngineRun | null; ratio: number | null }>;
  demoVsKcat: number | null;
  pysparkDemoVsKcat: number | null;
  verification: Record<string, unknown> & { ok: boolean; problems: string[] };
}

const round2 = (x: number): number => Math.round(x * 100) / 100;
/** Sluice's default state partitions (sluice.sql.shuffle.partitions, src/exec/microBatch.ts DEFAULT_PARTITIONS). */
const SLUICE_DEFAULT_SHUFFLE_PARTITIONS = '4';
/**
 * Between key and value, and after each record, in the kcat copy: 12 bytes an Avro value or a user_N key will not
 * hold. kcat 1.7's -f reads `\\xNN` only when NN starts with a digit (format.c), and both -f and -D/-K read hex
 * greedily, so every escape starts with a digit and is followed by a non-hex character or another escape.
 */
const KCAT_KEY_DELIM = '\\x01\\x9e\\x02~kcat~key~\\x03\\x9d';
const KCAT_MSG_DELIM = '\\x04\\x9c\\x05~kcat~end~\\x06\\x9b';

interface Proc {
  code: number | null;
  stdout: string;
  stderr: string;
}
function run(cmd: string, argv: string[], env?: NodeJS.ProcessEnv): Promise<Proc> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
const tail = (s: string, n = 30): string => s.trim().split('\n').slice(-n).join('\n');
function lastJson<T>(p: Proc, what: string): T {
  if (p.code !== 0) throw new Error(`${what} failed (exit ${p.code}):\n${tail(p.stderr)}`);
  const line = p.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as T;
  } catch {
    throw new Error(`${what} printed no JSON result: ${JSON.stringify(line)}\n${tail(p.stderr)}`);
  }
}

async function topicPartitions(admin: KafkaAdmin, topic: string): Promise<Array<{ topic: string; partition: number }>> {
  const [d] = await admin.describeTopics([topic]);
  return d!.partitions.map((p) => ({ topic, partition: p.partition }));
}
async function offsets(conf: KafkaConfig, topic: string): Promise<{ earliest: PartitionOffsets; latest: PartitionOffsets; count: number }> {
  const admin = new KafkaAdmin(conf);
  try {
    const parts = await topicPartitions(admin, topic);
    const [earliest, latest] = await Promise.all([admin.listOffsets(parts, 'earliest', 'read_uncommitted'), admin.listOffsets(parts, 'latest', 'read_uncommitted')]);
    let n = 0;
    for (const [p, e] of Object.entries(latest[topic] ?? {})) n += e - (earliest[topic]?.[p] ?? 0);
    return { earliest, latest, count: n };
  } finally {
    admin.disconnect();
  }
}

/** The output count, and the broker append time of the first output record (the first record of each partition). */
async function outputStats(conf: KafkaConfig, topic: string): Promise<{ count: number; firstAppendMs: number | null }> {
  const { earliest, latest, count: n } = await offsets(conf, topic);
  const firstOnly: PartitionOffsets = { [topic]: {} };
  for (const [p, e] of Object.entries(earliest[topic] ?? {})) firstOnly[topic]![p] = Math.min(e + 1, latest[topic]![p]!);
  const reader = new RangeReader(conf, 30_000);
  try {
    const firsts = await reader.read(earliest, firstOnly);
    return { count: n, firstAppendMs: firsts.length ? Math.min(...firsts.map((r) => r.timestamp)) : null };
  } finally {
    await reader.close();
  }
}

/** Streams a whole topic through `each`, in chunks. */
async function scanTopic(conf: KafkaConfig, topic: string, each: (r: { key: Buffer | null; value: Buffer | null; timestamp: number; offset: number; partition: number }) => void): Promise<void> {
  const { earliest, latest } = await offsets(conf, topic);
  const reader = new RangeReader(conf, 60_000);
  try {
    for await (const chunk of reader.readChunks(earliest, latest, 50_000)) for (const r of chunk) each(r);
  } finally {
    await reader.close();
  }
}

// ------------------------------------------------------------------------------------------------ PySpark

interface SparkCheck {
  python: string;
  version: string | null;
  skipped?: string;
  jvmStartMs?: number;
}

function javaVersion(): string | null {
  const r = spawnSync('java', ['-version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return null;
  return (r.stderr || r.stdout).split('\n')[0]!.trim();
}

function peerScript(): string {
  // dist/bench/peer.js → bench/peers; bench/peer.ts (tsx) → bench/peers
  const found = [new URL('../../bench/peers/spark_pipelines.py', import.meta.url), new URL('./peers/spark_pipelines.py', import.meta.url)]
    .map((u) => u.pathname)
    .find((p) => existsSync(p));
  if (!found) throw new Error('bench/peers/spark_pipelines.py not found');
  return found;
}

const sparkEnv = (): NodeJS.ProcessEnv => ({ ...process.env, SPARK_LOCAL_IP: '127.0.0.1', PYSPARK_PYTHON: process.env.PYSPARK_PYTHON ?? process.env.PYTHON ?? 'python3' });

/** Java, PySpark (installed with pip if missing) and the connectors (ivy): what is missing, or the JVM start of a warm-up. */
async function checkSpark(peer: PeerOptions['peer'], java: string | null, note: (l: string) => void): Promise<SparkCheck> {
  const python = process.env.PYTHON ?? 'python3';
  if (peer === 'none') return { python, version: null, skipped: 'not asked for (--peer none)' };
  if (!java) return { python, version: null, skipped: 'Java is missing (`java -version` failed): PySpark needs Java 17' };
  const version = (): string | null => {
    const r = spawnSync(python, ['-c', 'import pyspark; print(pyspark.__version__)'], { encoding: 'utf8' });
    return r.status === 0 ? r.stdout.trim() : null;
  };
  let v = version();
  if (!v) {
    note(`PySpark is not importable by ${python}: installing it (${python} -m pip install pyspark==3.5.9)…`);
    const r = spawnSync(python, ['-m', 'pip', 'install', 'pyspark==3.5.9'], { encoding: 'utf8' });
    v = r.status === 0 ? version() : null;
    if (!v) return { python, version: null, skipped: `PySpark is missing and \`pip install pyspark==3.5.9\` failed (no network?): ${tail(r.stderr || r.stdout || String(r.error), 1)}` };
  }
  note('PySpark: starting a JVM once to resolve the Kafka and Avro connectors (ivy) and warm up…');
  const r = await run(python, [peerScript(), '--resolve-only'], sparkEnv());
  if (r.code !== 0) {
    const why = r.stderr.match(/unresolved dependency[^\n]*|download failed[^\n]*|Connection refused[^\n]*|UnknownHost[^\n]*/i)?.[0];
    return { python, version: v, skipped: `the Spark Kafka/Avro connectors could not be resolved through ivy (${why ?? tail(r.stderr, 1)})` };
  }
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { jvmStartMs: number };
  return { python, version: v, jvmStartMs: out.jvmStartMs };
}

// ------------------------------------------------------------------------------------------------ kcat

/**
 * `kcat -C … | kcat -P …` in one bash, whose `times` builtin prints the CPU its waited-for children (both kcats)
 * used: exact utime+stime, with no sampling of /proc before they exit.
 */
async function kcatCopy(bootstrap: string, from: string, to: string): Promise<{ wallMs: number; cpuSeconds: number }> {
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const script =
    `kcat -C -b ${q(bootstrap)} -t ${q(from)} -o beginning -e -q -f ${q(`%k${KCAT_KEY_DELIM}%s${KCAT_MSG_DELIM}`)} ` +
    `| kcat -P -b ${q(bootstrap)} -t ${q(to)} -q -K ${q(KCAT_KEY_DELIM)} -D ${q(KCAT_MSG_DELIM)}\n` +
    'rc=("${PIPESTATUS[@]}"); times; [ "${rc[0]}" = 0 ] && [ "${rc[1]}" = 0 ] || { echo "kcat exit codes ${rc[*]}" >&2; exit 1; }';
  const t0 = performance.now();
  const r = await run('bash', ['-c', script]);
  const wallMs = performance.now() - t0;
  if (r.code !== 0) throw new Error(`kcat copy failed:\n${tail(r.stderr)}`);
  // `times`: the shell's user and system time, then its children's: "0m1.234s 0m0.567s".
  const lines = r.stdout.trim().split('\n');
  const m = [...(lines[lines.length - 1] ?? '').matchAll(/(\d+)m([\d.]+)s/g)];
  if (m.length !== 2) throw new Error(`cannot read the kcat CPU times from ${JSON.stringify(r.stdout)}`);
  const cpuSeconds = m.reduce((s, x) => s + Number(x[1]) * 60 + Number(x[2]), 0);
  return { wallMs, cpuSeconds };
}

// ------------------------------------------------------------------------------------------------ verification

interface DemoDigest {
  count: number;
  sum: bigint;
  rawSum: bigint;
  schemaIds: number[];
  sample: string[];
}

/** Every record decoded (key + Avro value as JSON), hashed into an order-free sum; 1 in ~1000 kept by hash. */
async function demoDigest(conf: KafkaConfig, topic: string, type: avro.Type): Promise<DemoDigest> {
  const d: DemoDigest = { count: 0, sum: 0n, rawSum: 0n, schemaIds: [], sample: [] };
  const ids = new Set<number>();
  const mask = (1n << 64n) - 1n;
  await scanTopic(conf, topic, (r) => {
    const { schemaId, payload } = unframe(r.value);
    ids.add(schemaId);
    const text = JSON.stringify([r.key?.toString('utf8') ?? null, type.fromBuffer(payload)]);
    const h = createHash('sha1').update(text).digest().readBigUInt64BE(0);
    const raw = createHash('sha1').update(r.key ?? Buffer.alloc(0)).update('\u0000').update(r.value!).digest().readBigUInt64BE(0);
    d.sum = (d.sum + h) & mask;
    d.rawSum = (d.rawSum + raw) & mask;
    d.count++;
    if (h % 1000n === 0n) d.sample.push(text);
  });
  d.schemaIds = [...ids].sort((a, b) => a - b);
  d.sample.sort();
  return d;
}

interface WindowFinal {
  events: number;
  avg: number | null;
  text: string;
}
/** The final update per (window.start, event_type): the one with the largest count (counts only grow). */
async function windowFinals(conf: KafkaConfig, topic: string): Promise<{ records: number; finals: Map<string, WindowFinal>; totalEvents: number }> {
  const finals = new Map<string, WindowFinal>();
  let records = 0;
  await scanTopic(conf, topic, (r) => {
    records++;
    const text = r.value!.toString('utf8');
    const v = JSON.parse(text) as { start: string; end: string; event_type: string; events: number; avg_url_length?: number | null };
    const key = `${new Date(Date.parse(v.start)).toISOString()}|${v.event_type}`;
    const prev = finals.get(key);
    if (!prev || v.events >= prev.events) finals.set(key, { events: v.events, avg: v.avg_url_length ?? null, text });
  });
  let totalEvents = 0;
  for (const f of finals.values()) totalEvents += f.events;
  return { records, finals, totalEvents };
}

function compareWindows(a: Map<string, WindowFinal>, b: Map<string, WindowFinal>): Record<string, unknown> {
  let agree = 0;
  let agreeExactly = 0;
  let sameJson = 0;
  let textExample: { key: string; sluice: string; pyspark: string } | undefined;
  const differ: string[] = [];
  const onlyA: string[] = [];
  const onlyB: string[] = [];
  for (const [k, x] of a) {
    const y = b.get(k);
    if (!y) {
      onlyA.push(k);
      continue;
    }
    const avgClose = x.avg === y.avg || (x.avg !== null && y.avg !== null && Math.abs(x.avg - y.avg) <= 1e-9 * Math.max(1, Math.abs(x.avg)));
    if (x.events === y.events && avgClose) {
      agree++;
      if (x.avg === y.avg) agreeExactly++;
    } else differ.push(`${k}: sluice ${x.text} / pyspark ${y.text}`);
    if (x.text === y.text) sameJson++;
    else textExample ??= { key: k, sluice: x.text, pyspark: y.text };
  }
  for (const k of b.keys()) if (!a.has(k)) onlyB.push(k);
  return {
    keysSluice: a.size,
    keysPyspark: b.size,
    agree,
    agreeExactly,
    differ: differ.length,
    onlySluice: onlyA.length,
    onlyPyspark: onlyB.length,
    identicalJsonText: sameJson,
    ...(differ.length ? { firstDifference: differ[0] } : {}),
    ...(onlyA.length ? { firstOnlySluice: onlyA.sort()[0] } : {}),
    ...(onlyB.length ? { firstOnlyPyspark: onlyB.sort()[0] } : {}),
    // Equal values can still be written differently (number formatting): the first such pair.
    ...(textExample ? { firstJsonTextDifference: textExample } : {}),
  };
}

// ------------------------------------------------------------------------------------------------ the suite

export async function peerSuite(o: PeerOptions, note: (l: string) => void): Promise<PeerResult> {
  const N = o.records;
  const java = javaVersion();
  const sluiceConf: Record<string, string> = {};
  for (const kv of o.sluiceConf) {
    const i = kv.indexOf('=');
    if (i <= 0) throw new Error(`--sluice-conf takes key=value, not "${kv}"`);
    sluiceConf[kv.slice(0, i)] = kv.slice(i + 1);
  }
  // Spark's shuffle partitions = Sluice's state partitions, whatever they are in this run.
  const shuffle = sluiceConf['sluice.sql.shuffle.partitions'] ?? SLUICE_DEFAULT_SHUFFLE_PARTITIONS;
  const spark = await checkSpark(o.peer, java, note);
  if (spark.skipped) {
    if (o.peer === 'spark') throw new Error(`--peer spark, but ${spark.skipped}`);
    note(`PySpark part skipped: ${spark.skipped}.`);
  }
  const hasSpark = !spark.skipped;

  const { dir, info, close } = await privateStack(note, 'sluice-bench-peer-');
  const conf = { 'bootstrap.servers': info.bootstrapServers };
  const registry = { url: info.registryUrl };
  const IN = 'peer-in';
  const COPY = 'peer-kcat-copy';
  const out = (c: PeerCase, engine: 'sluice' | 'pyspark'): string => `peer-${c}-${engine}`;
  try {
    const admin = new KafkaAdmin(conf);
    await admin.createTopic(IN, o.partitions);
    await admin.createTopic(COPY, o.partitions);
    for (const c of o.cases) {
      for (const e of ['sluice', 'pyspark'] as const) await admin.createTopic(out(c, e), o.partitions, 1, { 'message.timestamp.type': 'LogAppendTime' });
      await admin.createTopic(`${out(c, 'sluice')}-dlq`, o.partitions);
    }
    admin.disconnect();
    note(`Producing ${N} Avro events to ${IN} (${o.partitions} partitions)…`);
    await produceEvents(N, { topic: IN, kafka: conf, format: 'avro', registry, seed: 1, onProgress: (n) => n % 200_000 === 0 && note(`  ${n}`) });
    const inCount = (await offsets(conf, IN)).count;
    if (inCount !== N) throw new Error(`the input topic holds ${inCount} records, not ${N}`);

    note('Raw kcat copy (kcat -C | kcat -P, no decoding)…');
    const k = await kcatCopy(info.bootstrapServers, IN, COPY);
    const copied = (await offsets(conf, COPY)).count;
    if (copied !== N) throw new Error(`the kcat copy holds ${copied} records, not ${N}: the delimiters split or merged records`);
    const kcat = {
      recordsPerSecond: Math.round(N / (k.wallMs / 1000)),
      wallMs: Math.round(k.wallMs),
      cpuSeconds: round2(k.cpuSeconds),
      cpuCores: round2(k.cpuSeconds / (k.wallMs / 1000)),
      copied,
      delimiter: `key ${KCAT_KEY_DELIM}, record ${KCAT_MSG_DELIM}`,
    };

    const sluiceScript = new URL('./peerSluice.js', import.meta.url).pathname;
    const engineRun = async (c: PeerCase, engine: 'sluice' | 'pyspark'): Promise<EngineRun> => {
      const topic = out(c, engine);
      const checkpoint = join(dir, 'checkpoints', `${c}-${engine}`);
      type Child = Omit<EngineRun, 'firstOutputMs' | 'outputRecords'> & { startEpochMs: number };
      let child: Child;
      if (engine === 'sluice') {
        note(`Sluice, ${c} pipeline…`);
        const argv = [sluiceScript, '--case', c, '--bootstrap', info.bootstrapServers, '--registry-url', info.registryUrl, '--in', IN, '--out', topic, '--dlq', `${topic}-dlq`, '--checkpoint', checkpoint, '--batch', String(o.batch)];
        for (const kv of o.sluiceConf) argv.push('--conf', kv);
        child = lastJson<Child>(await run(process.execPath, argv), `Sluice ${c}`);
      } else {
        note(`PySpark local[2], ${c} pipeline…`);
        const argv = [peerScript(), '--case', c, '--bootstrap', info.bootstrapServers, '--registry-url', info.registryUrl, '--in', IN, '--out', topic, '--records', String(N), '--batch', String(o.batch), '--partitions', shuffle, '--checkpoint', checkpoint, '--json'];
        if (c === 'demo') argv.push('--writer-subject', `${out('demo', 'sluice')}-value`);
        child = lastJson<Child>(await run(spark.python, argv, sparkEnv()), `PySpark ${c}`);
      }
      const s = await outputStats(conf, topic);
      const { startEpochMs, ...rest } = child;
      return { ...rest, firstOutputMs: s.firstAppendMs === null ? null : s.firstAppendMs - startEpochMs, outputRecords: s.count };
    };

    const cases: PeerResult['cases'] = [];
    for (const c of o.cases) {
      const sluice = await engineRun(c, 'sluice');
      const pyspark = hasSpark ? await engineRun(c, 'pyspark') : null;
      cases.push({ pipeline: c, sluice, pyspark, ratio: pyspark ? round2(sluice.recordsPerSecond / pyspark.recordsPerSecond) : null });
    }

    note('Verifying the outputs…');
    const problems: string[] = [];
    const verification: PeerResult['verification'] = { ok: true, problems };
    const demo = cases.find((c) => c.pipeline === 'demo');
    if (demo) {
      // The generator writes no null user_id or timestamp (unless asked to write malformed records), so the filter keeps all N.
      const expected = N;
      const counts = { expected, sluice: demo.sluice.outputRecords, pyspark: demo.pyspark?.outputRecords ?? null };
      for (const [e, n] of Object.entries(counts)) if (e !== 'expected' && n !== null && n !== expected) problems.push(`demo: ${e} wrote ${n} records, not ${expected}`);
      const schema = await registryClient(registry).getVersion(`${out('demo', 'sluice')}-value`);
      const type = avro.Type.forSchema(JSON.parse(schema.schema) as avro.Schema);
      const sd = await demoDigest(conf, out('demo', 'sluice'), type);
      const content: Record<string, unknown> = { sluiceSchemaIds: sd.schemaIds, registeredSchemaId: schema.id, decoded: sd.count };
      if (demo.pyspark) {
        const pd = await demoDigest(conf, out('demo', 'pyspark'), type);
        const equal = sd.count === pd.count && sd.sum === pd.sum;
        Object.assign(content, { pysparkSchemaIds: pd.schemaIds, decodedPyspark: pd.count, equal, rawBytesEqual: sd.count === pd.count && sd.rawSum === pd.rawSum, sampled: sd.sample.length });
        if (pd.schemaIds.join() !== sd.schemaIds.join()) problems.push(`demo: schema ids differ (sluice ${sd.schemaIds}, pyspark ${pd.schemaIds})`);
        if (!equal) {
          const onlyS = sd.sample.filter((x) => !pd.sample.includes(x));
          const onlyP = pd.sample.filter((x) => !sd.sample.includes(x));
          content.firstDifference = onlyS.length || onlyP.length ? { sluice: onlyS[0] ?? null, pyspark: onlyP[0] ?? null } : 'the decoded multisets differ, but not in the 1-in-1000 sample';
          problems.push('demo: the decoded outputs of Sluice and PySpark differ');
        }
      }
      verification.demo = { counts, content };
    }
    const win = cases.find((c) => c.pipeline === 'windowed');
    if (win) {
      const s = await windowFinals(conf, out('windowed', 'sluice'));
      const w: Record<string, unknown> = {
        sluice: { outputRecords: s.records, keys: s.finals.size, finalEventsTotal: s.totalEvents, droppedByWatermark: win.sluice.droppedByWatermark ?? null },
      };
      if (win.pyspark) {
        const p = await windowFinals(conf, out('windowed', 'pyspark'));
        w.pyspark = { outputRecords: p.records, keys: p.finals.size, finalEventsTotal: p.totalEvents, droppedByWatermark: win.pyspark.droppedByWatermark ?? null };
        const cmp = compareWindows(s.finals, p.finals);
        w.finalValues = cmp;
        if (Number(cmp.differ) || Number(cmp.onlySluice) || Number(cmp.onlyPyspark)) {
          problems.push(`windowed: ${cmp.differ} keys differ, ${cmp.onlySluice} only in Sluice, ${cmp.onlyPyspark} only in PySpark`);
        }
      }
      verification.windowed = w;
    }
    verification.ok = problems.length === 0;
    for (const p of problems) note(`VERIFICATION: ${p}`);
    if (!verification.ok) process.exitCode = 1;

    const rate = (c: PeerCase, e: 'sluice' | 'pyspark'): number | undefined => cases.find((x) => x.pipeline === c)?.[e]?.recordsPerSecond;
    const vsKcat = (e: 'sluice' | 'pyspark'): number | null => {
      const r = rate('demo', e);
      return r ? round2(r / kcat.recordsPerSecond) : null;
    };
    return {
      suite: 'peer',
      records: N,
      batch: o.batch,
      partitions: o.partitions,
      machine: { cores: cpus().length, node: process.version, java, pyspark: spark.version },
      sluiceConf,
      sparkShufflePartitions: Number(shuffle),
      ...(spark.skipped ? { pysparkSkipped: spark.skipped } : {}),
      kcat,
      cases,
      demoVsKcat: vsKcat('sluice'),
      pysparkDemoVsKcat: vsKcat('pyspark'),
      verification,
    };
  } finally {
    await close();
  }
}

/** The human-readable report. */
export function peerLines(r: PeerResult): string {
  const e = (x: EngineRun): string =>
    `${x.recordsPerSecond} records/s, wall ${x.wallMs} ms, first output ${x.firstOutputMs} ms, CPU ${x.cpuSeconds} s (${x.cpuCores} cores), ` +
    `peak RSS ${x.peakRssMB} MB, ${x.outputRecords} output records${x.jvmStartMs !== undefined ? `, JVM start ${x.jvmStartMs} ms` : ''}`;
  const lines = [
    `records: ${r.records} (${r.partitions} partitions, batches of ${r.batch}); ${r.machine.cores} cores, node ${r.machine.node}, ${r.machine.java ?? 'no Java'}, PySpark ${r.machine.pyspark ?? '-'}`,
    `kcat copy:          ${r.kcat.recordsPerSecond} records/s, wall ${r.kcat.wallMs} ms, CPU ${r.kcat.cpuSeconds} s (${r.kcat.cpuCores} cores)`,
  ];
  for (const c of r.cases) {
    lines.push(`${c.pipeline} sluice:  ${' '.repeat(Math.max(0, 9 - c.pipeline.length))}${e(c.sluice)}`);
    if (c.pyspark) lines.push(`${c.pipeline} pyspark: ${' '.repeat(Math.max(0, 9 - c.pipeline.length))}${e(c.pyspark)}`);
    if (c.ratio !== null) lines.push(`${c.pipeline} sluice / pyspark: ${c.ratio}`);
  }
  if (r.pysparkSkipped) lines.push(`pyspark skipped: ${r.pysparkSkipped}`);
  if (r.demoVsKcat !== null) lines.push(`demo sluice / kcat: ${r.demoVsKcat}${r.pysparkDemoVsKcat !== null ? `; demo pyspark / kcat: ${r.pysparkDemoVsKcat}` : ''}`);
  lines.push(`verification: ${r.verification.ok ? 'ok' : r.verification.problems.join('; ')}`);
  lines.push(`  ${JSON.stringify({ demo: r.verification.demo, windowed: r.verification.windowed })}`);
  return lines.join('\n') + '\n';
}
