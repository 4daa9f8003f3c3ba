/**
 * User state per key that need not fit in memory (issue 10, item 3): `groupByKey('user').mapGroupsWithState`
 * keeping a running count and sum per user, on the LMDB state provider and, for contrast, the memory one.
 *
 *   node dist/bench/userState.js --suite [--keys 10000000] [--records N] [--batch 500000] [--provider lmdb|memory]
 *        [--peer auto|spark|none] [--peer-keys 100000] [--partitions 4] [--json]
 *     every case in its own process (own peak RSS): Sluice at --peer-keys (LMDB and memory) and PySpark 3.5
 *     (bench/peers/spark_user_state.py, RocksDB) on the same data, then Sluice alone at --keys (PySpark's
 *     applyInPandasWithState runs about 2,000 records/s here: 10M keys would take hours); prints the table, the
 *     Sluice/PySpark ratio and whether the outputs agree. At K keys a batch has min(--batch, K/2) rows; records
 *     default to 3 per key. `npm run bench -- --suite userstate …` runs this.
 *   node dist/bench/userState.js --keys K --records N [--batch B] [--provider lmdb|memory] [--partitions 4] [--json]
 *     one case, in this process.
 *
 * The data (deterministic, no randomness): record i (0 ≤ i < N) is { user: 'u' + (i·7919 mod K), amount: i·37 mod
 * 1000 }. 7919 is prime and does not divide K = 10^n, so i ↦ i·7919 mod K is a bijection on each run of K
 * consecutive records: every user is seen N/K times (3 by default), once per K records, and a batch of B ≤ K rows
 * has B distinct users. The first K/B batches create state; the later ones update it. The PySpark peer writes the
 * same rows as Parquet files, one per batch (untimed), and reads them with maxFilesPerTrigger=1, so both engines
 * run the same batches.
 *
 * The query: a source that generates the rows of (start, end] on demand and keeps none (a MemoryStream would
 * keep all N rows), at most B rows per batch, Trigger.AvailableNow; the function adds a batch's rows to the
 * state { count, sum } (declared stateSchema 'count LONG, sum LONG') and returns { user, count, sum }; update
 * mode; a foreachBatch sink that keeps nothing: it counts the rows and sums count, sum and
 * CRC-32(user|count|sum) over them — the figures spark_user_state.py computes, to check that both agree.
 *
 * records/s = N / (query start → end), including checkpoint writes and the state's commits. Peak RSS is
 * process.resourceUsage().maxRSS; after every batch the benchmark also reads /proc/self/status (RssAnon: heap
 * and other private memory; RssFile: file pages mapped in, which for LMDB are its database's pages — page cache
 * the kernel can take back) and the V8 heap, to tell what grows with the number of keys. State on disk is the
 * space the checkpoint's state/ folder takes at the end (LMDB's files, the delta and snapshot files).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { crc32 } from 'node:zlib';
import { DataFrame } from '../src/api/dataframe.js';
import { SluiceSession } from '../src/api/session.js';
import type { Offset } from '../src/checkpoint/checkpoint.js';
import { GroupStateTimeout } from '../src/plan/groupState.js';
import { CHUNK_ROWS, type ReadLimit, type Source } from '../src/sources/source.js';
import { parseSchema, type Row } from '../src/types/index.js';

const { values: a } = parseArgs({
  options: {
    suite: { type: 'boolean', default: false },
    keys: { type: 'string', default: '10000000' },
    records: { type: 'string' },
    batch: { type: 'string', default: '500000' },
    provider: { type: 'string' },
    partitions: { type: 'string', default: '4' },
    peer: { type: 'string', default: 'auto' },
    'peer-keys': { type: 'string', default: '100000' },
    json: { type: 'boolean', default: false },
  },
});

const RECORDS_PER_KEY = 3;
const note = (l: string): void => void process.stderr.write(l + '\n');
const mb = (bytes: number): number => Math.round(bytes / 1048576);

/** Record i of the benchmark's input (spark_user_state.py computes the same). */
const userOf = (i: number, keys: number): string => `u${(i * 7919) % keys}`;
const amountOf = (i: number): number => (i * 37) % 1000;

/**
 * The rows of the sequence, made on demand: offsets are row numbers; a batch ends at most `batch` rows after its
 * start (and at `upTo`, Trigger.AvailableNow's target). Nothing is kept, so the input costs no memory across batches.
 */
class UserSequence implements Source {
  readonly schema = parseSchema('user STRING, amount INT');
  constructor(
    private readonly records: number,
    private readonly keys: number,
    private readonly batch: number,
  ) {}
  describe(): string {
    return `UserSequence[records=${this.records}, keys=${this.keys}]`;
  }
  async initialOffset(): Promise<Offset> {
    return 0;
  }
  async latestOffset(start: Offset, limit: ReadLimit): Promise<Offset> {
    if (limit.unlimited) return this.records;
    let end = Math.min(this.records, (start as number) + this.batch);
    if (limit.upTo !== undefined) end = Math.min(end, limit.upTo as number);
    return Math.max(end, start as number);
  }
  async *getBatch(start: Offset, end: Offset): AsyncGenerator<Row[]> {
    for (let i = start as number; i < (end as number); i += CHUNK_ROWS) {
      const rows: Row[] = [];
      for (let j = i; j < Math.min(i + CHUNK_ROWS, end as number); j++) rows.push({ user: userOf(j, this.keys), amount: amountOf(j) });
      yield rows;
    }
  }
  async stop(): Promise<void> {}
}

/** RssAnon and RssFile of this process, in MB (Linux; zeros elsewhere). */
function procStatus(): { anon: number; file: number } {
  try {
    const s = readFileSync('/proc/self/status', 'utf8');
    const kb = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? 0);
    return { anon: Math.round(kb('RssAnon') / 1024), file: Math.round(kb('RssFile') / 1024) };
  } catch {
    return { anon: 0, file: 0 };
  }
}

/** Space taken on disk by the files under `dir` (allocated blocks: LMDB's map file is sparse). */
function diskBytes(dir: string, filter: (path: string) => boolean = () => true): number {
  if (!existsSync(dir)) return 0;
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) n += diskBytes(p, filter);
    else if (filter(p)) n += lstatSync(p).blocks * 512;
  }
  return n;
}

interface Totals {
  outputRows: number;
  countSum: number;
  sumSum: number;
  crcSum: string;
}

/** One case in this process: the query over `records` rows, then its figures as one JSON line. */
async function runCase(keys: number, records: number, batch: number, provider: string, partitions: number): Promise<Record<string, unknown>> {
  const s = new SluiceSession('bench-user-state');
  s.log = () => {};
  s.conf.set('sluice.sql.streaming.stateStore.provider', provider);
  s.conf.set('sluice.sql.shuffle.partitions', String(partitions));
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-us-'));
  const checkpoint = join(dir, 'cp');
  const input = new DataFrame(s, { kind: 'streamingSource', spec: { format: 'memory', options: {}, instance: new UserSequence(records, keys, batch) } });
  let outputRows = 0;
  let countSum = 0;
  let sumSum = 0;
  let crcSum = 0n;
  // Memory after each batch's state work (in the sink, before the commit) and after each batch.
  const peak = { anon: 0, file: 0, heap: 0 };
  const trace: Array<{ batch: number; stateRows: number; rssAnonMB: number; rssFileMB: number; heapUsedMB: number; heapTotalMB: number; externalMB: number; liveHeapMB?: number }> = [];
  // With `node --expose-gc`: the heap left after a full collection between batches — what is kept across batches.
  const gc = (globalThis as { gc?: () => void }).gc;
  const sample = (): { anon: number; file: number; heap: number } => {
    const p = procStatus();
    const heap = mb(process.memoryUsage().heapUsed);
    peak.anon = Math.max(peak.anon, p.anon);
    peak.file = Math.max(peak.file, p.file);
    peak.heap = Math.max(peak.heap, heap);
    return { anon: p.anon, file: p.file, heap };
  };
  const batches = Math.ceil(records / batch);
  const every = Math.max(1, Math.round(batches / 12));
  s.streams.addListener({
    onQueryProgress: ({ progress: p }) => {
      const m = sample();
      if (gc || p.batchId % every === 0 || p.batchId === batches - 1) {
        const u = process.memoryUsage();
        gc?.();
        trace.push({
          batch: p.batchId,
          stateRows: p.stateOperators[0]?.numRowsTotal ?? 0,
          rssAnonMB: m.anon,
          rssFileMB: m.file,
          heapUsedMB: m.heap,
          heapTotalMB: mb(u.heapTotal),
          externalMB: mb(u.external),
          ...(gc ? { liveHeapMB: mb(process.memoryUsage().heapUsed) } : {}),
        });
      }
    },
  });
  const q = await input
    .groupByKey<string>('user')
    .mapGroupsWithState<{ count: number; sum: number }>(
      GroupStateTimeout.NoTimeout,
      (user, rows, state) => {
        const st = state.getOption();
        let count = st?.count ?? 0;
        let sum = st?.sum ?? 0;
        for (const r of rows) {
          count++;
          sum += r.amount as number;
        }
        state.update({ count, sum });
        return { user, count, sum };
      },
      { outputSchema: 'user STRING, count LONG, sum LONG', stateSchema: 'count LONG, sum LONG' },
    )
    .writeStream.foreachBatch(async (df) => {
      let crc = 0; // < 2^53 for a batch: 500,000 × 2^32
      for (const r of await df.collect()) {
        outputRows++;
        countSum += r.count as number;
        sumSum += r.sum as number;
        crc += crc32(`${String(r.user)}|${String(r.count)}|${String(r.sum)}`);
      }
      crcSum += BigInt(crc);
      sample();
    })
    .outputMode('update')
    .option('checkpointLocation', checkpoint)
    .trigger({ availableNow: true })
    .start();
  const t0 = performance.now();
  await q.awaitTermination();
  const seconds = (performance.now() - t0) / 1000;
  if (q.exception) throw q.exception;
  const progress = q.recentProgress;
  const last = q.lastProgress;
  const stateDir = join(checkpoint, 'state');
  const stateDisk = diskBytes(stateDir);
  const lmdbDisk = diskBytes(stateDir, (p) => p.includes('/lmdb/'));
  rmSync(dir, { recursive: true, force: true });
  const totals: Totals = { outputRows, countSum, sumSum, crcSum: String(crcSum) };
  return {
    engine: 'sluice',
    provider,
    keys,
    records,
    batch,
    partitions,
    batches: progress.filter((p) => p.numInputRows > 0).length,
    inputRows: progress.reduce((n, p) => n + p.numInputRows, 0),
    seconds: Math.round(seconds * 10) / 10,
    recordsPerSecond: Math.round(records / seconds),
    stateRows: last?.stateOperators[0]?.numRowsTotal ?? 0,
    ...totals,
    peakRssMB: mb(process.resourceUsage().maxRSS * 1024),
    peakRssAnonMB: peak.anon,
    peakRssFileMB: peak.file,
    peakHeapUsedMB: peak.heap,
    stateDiskMB: mb(stateDisk),
    lmdbDiskMB: mb(lmdbDisk),
    stateFilesDiskMB: mb(stateDisk - lmdbDisk),
    trace,
    node: process.version,
  };
}

/** The suite: each case in its own process; PySpark on the same data at --peer-keys. */
function suite(): void {
  const keys = Number(a.keys);
  const peerKeys = Math.min(keys, Number(a['peer-keys']));
  const batch = Number(a.batch);
  const recordsAt = (k: number): number => (a.records && k === keys ? Number(a.records) : k * RECORDS_PER_KEY);
  // At most half the keys per batch, so that at every size a batch has distinct users, each seen once.
  const batchAt = (k: number): number => Math.min(batch, Math.max(1, Math.floor(k / 2)));
  const providers = a.provider ? [a.provider] : ['lmdb', 'memory'];
  const python = process.env.PYTHON ?? 'python3';
  // dist/bench/userState.js → bench/peers; bench/userState.ts (tsx) → bench/peers
  const peer = [new URL('../../bench/peers/spark_user_state.py', import.meta.url), new URL('./peers/spark_user_state.py', import.meta.url)]
    .map((u) => u.pathname)
    .find((p) => existsSync(p))!;
  const hasSpark = a.peer === 'spark' || (a.peer === 'auto' && spawnSync(python, ['-c', 'import pyspark, pandas, pyarrow'], { stdio: 'ignore' }).status === 0);
  if (a.peer === 'auto' && !hasSpark) note('PySpark, pandas or pyarrow not found (pip install pyspark==3.5.9 "pandas<3" pyarrow): the PySpark peer is skipped.');
  const runJson = (cmd: string, argv: string[], what: string): Record<string, unknown> => {
    const t0 = performance.now();
    const r = spawnSync(cmd, argv, { encoding: 'utf8', maxBuffer: 1 << 26 });
    if (r.status !== 0) {
      // A case that does not fit (the memory provider's heap) is a result, not a failure of the suite.
      const why = (r.stderr || '').split('\n').filter((l) => /heap out of memory|Error|error:/.test(l)).slice(-2).join(' ').trim() || `exit ${r.status ?? r.signal}`;
      note(`  ${what} failed after ${Math.round((performance.now() - t0) / 1000)} s: ${why}`);
      return { failed: why, failedAfterSeconds: Math.round((performance.now() - t0) / 1000), peakRssMB: undefined };
    }
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
  };
  const sluice = (k: number, provider: string): Record<string, unknown> => {
    const records = recordsAt(k);
    note(`User state: Sluice, ${provider} state, ${k} keys, ${records} records, batches of ${batchAt(k)}…`);
    const self = new URL(import.meta.url).pathname;
    const argv = [self, '--keys', String(k), '--records', String(records), '--batch', String(batchAt(k)), '--provider', provider, '--partitions', a.partitions!, '--json'];
    return { engine: 'sluice', provider, keys: k, records, batch: batchAt(k), ...runJson(process.execPath, argv, `Sluice ${provider} at ${k} keys`) };
  };
  const rows: Array<Record<string, unknown>> = [];
  const sizes = peerKeys < keys ? [peerKeys, keys] : [keys];
  for (const k of sizes) {
    for (const provider of providers) rows.push(sluice(k, provider));
    if (hasSpark && k === peerKeys) {
      const records = recordsAt(k);
      const data = mkdtempSync(join(tmpdir(), 'sluice-bench-us-data-'));
      try {
        note(`Writing the same ${records} records as Parquet files, one per batch (${data})…`);
        runJson(python, [peer, '--write-data', data, '--keys', String(k), '--records', String(records), '--batch', String(batchAt(k))], 'writing the data');
        note(`User state: PySpark local[2] applyInPandasWithState, RocksDB state, ${k} keys…`);
        rows.push({ engine: 'pyspark', provider: 'rocksdb', keys: k, records, batch: batchAt(k), ...runJson(python, [peer, '--data', data, '--partitions', a.partitions!, '--provider', 'rocksdb', '--json'], 'PySpark') });
      } finally {
        rmSync(data, { recursive: true, force: true });
      }
    }
  }
  // Outputs agree: every run at the same size gave the same rows.
  const mismatch: string[] = [];
  for (const k of sizes) {
    const done = rows.filter((r) => r.keys === k && !r.failed);
    for (const f of ['outputRows', 'countSum', 'sumSum', 'crcSum']) if (!done.every((r) => String(r[f]) === String(done[0]![f]))) mismatch.push(`${f} at ${k} keys`);
  }
  const rate = (engine: string, provider: string): number | undefined =>
    rows.find((r) => r.engine === engine && r.provider === provider && r.keys === peerKeys && !r.failed)?.recordsPerSecond as number | undefined;
  const ratio = (x?: number, y?: number): number | undefined => (x && y ? Math.round((x / y) * 100) / 100 : undefined);
  const ratios = { lmdbToSparkRocksdb: ratio(rate('sluice', 'lmdb'), rate('pyspark', 'rocksdb')), memoryToSparkRocksdb: ratio(rate('sluice', 'memory'), rate('pyspark', 'rocksdb')) };
  if (a.json) process.stdout.write(JSON.stringify({ suite: 'userstate', batch, partitions: Number(a.partitions), runs: rows, ratioKeys: peerKeys, ratios, mismatch }) + '\n');
  else {
    for (const r of rows) {
      const name = `${String(r.engine)} ${String(r.provider)}`.padEnd(16);
      if (r.failed) process.stdout.write(`${name} ${r.keys} keys, ${r.records} records: failed after ${r.failedAfterSeconds} s (${r.failed})\n`);
      else {
        process.stdout.write(
          `${name} ${r.keys} keys, ${r.records} records in ${r.batches} batches of ${r.batch}: ${r.recordsPerSecond} records/s, peak RSS ${r.peakRssMB} MB` +
            (r.engine === 'sluice' ? ` (anon ${r.peakRssAnonMB} MB, file ${r.peakRssFileMB} MB, heap ${r.peakHeapUsedMB} MB)` : ` (JVM; with Python workers ${r.peakRssWithWorkersMB} MB)`) +
            `, state on disk ${r.stateDiskMB} MB, crc ${r.crcSum}\n`,
        );
      }
    }
    if (ratios.lmdbToSparkRocksdb !== undefined) process.stdout.write(`at ${peerKeys} keys: sluice lmdb / pyspark rocksdb: ${ratios.lmdbToSparkRocksdb}, sluice memory / pyspark rocksdb: ${ratios.memoryToSparkRocksdb}\n`);
  }
  if (mismatch.length) {
    process.stderr.write(`Output differs between runs (${mismatch.join(', ')}): see the rows above.\n`);
    process.exitCode = 1;
  }
}

if (a.suite) suite();
else {
  const keys = Number(a.keys);
  const records = a.records ? Number(a.records) : keys * RECORDS_PER_KEY;
  const batch = Number(a.batch);
  if (!(keys > 0 && records > 0 && batch > 0)) throw new Error('--keys, --records and --batch must be positive numbers');
  // i ↦ i·7919 mod keys must be a bijection (7919 is prime), or some users would never be seen.
  if (keys % 7919 === 0) throw new Error('--keys must not be a multiple of 7919');
  const r = await runCase(keys, records, batch, a.provider ?? 'lmdb', Number(a.partitions));
  process.stdout.write(
    (a.json
      ? JSON.stringify(r)
      : `sluice ${r.provider} state, ${keys} keys, ${records} records: ${r.recordsPerSecond} records/s, peak RSS ${r.peakRssMB} MB (anon ${r.peakRssAnonMB} MB, ` +
        `file ${r.peakRssFileMB} MB, heap ${r.peakHeapUsedMB} MB), state on disk ${r.stateDiskMB} MB, ${r.stateRows} keys in state, crc ${r.crcSum}`) + '\n',
  );
}
process.exit(process.exitCode ?? 0);
