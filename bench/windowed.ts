/**
 * Windowed aggregation throughput and peak RSS, one case per process (so RSS is the case's own):
 *   node dist/bench/windowed.js --keys 10000 --provider memory [--records 1000000] [--batch 100000] [--partitions 4] [--workers 1] [--json]
 * A memory stream of `records` rows over `keys` distinct users, event time advancing 1 ms per row;
 * withWatermark('ts', '1 minute').groupBy(window(ts, '10 minutes'), user).agg(count, sum), update mode,
 * batches of `batch` rows, checkpointed state (delta files every batch), `partitions` state partitions.
 *
 * It also measures what handing a batch to worker threads would cost at the least: one structured clone of
 * a batch's rows (the copy postMessage makes), against the time the batch's stateful work took
 * (`handoffToWork`). See docs/decisions.md, "Parallelism".
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { SluiceSession } from '../src/api/session.js';
import { col, count, sum, window } from '../src/index.js';

const { values: a } = parseArgs({
  options: {
    keys: { type: 'string', default: '10000' },
    provider: { type: 'string', default: 'memory' },
    records: { type: 'string', default: '1000000' },
    batch: { type: 'string', default: '100000' },
    partitions: { type: 'string', default: '4' },
    workers: { type: 'string', default: '1' },
    json: { type: 'boolean', default: false },
  },
});
const keys = Number(a.keys);
const records = Number(a.records);
const batch = Number(a.batch);

const s = new SluiceSession('bench');
s.log = () => {};
s.conf.set('sluice.sql.streaming.stateStore.provider', a.provider!);
s.conf.set('sluice.sql.shuffle.partitions', a.partitions!);
s.conf.set('sluice.sql.streaming.aggregation.workers', a.workers!);
const input = s.memoryStream('user STRING, ts TIMESTAMP, amount INT');
const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-win-'));
let out = 0;
const q = await input
  .toDF()
  .withWatermark('ts', '1 minute')
  .groupBy(window(col('ts'), '10 minutes'), col('user'))
  .agg(count('*').alias('n'), sum('amount').alias('total'))
  .writeStream.foreachBatch(async (df) => {
    out += await df.count();
  })
  .outputMode('update')
  .option('checkpointLocation', join(dir, 'cp'))
  .start();
const base = Date.parse('2025-01-01T00:00:00Z');
const t0 = performance.now();
let cloneMs = 0;
let batches = 0;
for (let i = 0; i < records; i += batch) {
  const rows = [];
  for (let j = i; j < Math.min(records, i + batch); j++) rows.push({ user: `user-${(j * 7919) % keys}`, ts: new Date(base + j), amount: j % 100 });
  input.addData(rows);
  await q.processAllAvailable();
  // Outside the timed loop's throughput: the copy a hand-off to a worker thread would make.
  const c0 = performance.now();
  structuredClone(rows);
  cloneMs += performance.now() - c0;
  batches++;
}
const secs = (performance.now() - t0 - cloneMs) / 1000;
const workMs = q.recentProgress.filter((p) => p.numInputRows > 0).reduce((n, p) => n + p.durationMs.addBatch, 0);
const heapUsedMB = Math.round(process.memoryUsage().heapUsed / 1048576);
const state = q.lastProgress!.stateOperators[0]!;
await q.stop();
rmSync(dir, { recursive: true, force: true });
const result = {
  provider: a.provider,
  keys,
  records,
  partitions: Number(a.partitions),
  workers: Number(a.workers),
  recordsPerSecond: Math.round(records / secs),
  /** One structured clone of a batch's rows, over the batch's stateful work (state, sink, commit). */
  handoffToWork: Math.round((cloneMs / batches / (workMs / batches)) * 100) / 100,
  stateRows: state.numRowsTotal,
  outputRows: out,
  peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
  heapUsedMB,
};
process.stdout.write(
  (a.json
    ? JSON.stringify(result)
    : `${result.provider} state, ${keys} keys, ${result.partitions} partitions, ${result.workers} worker(s): ${result.recordsPerSecond} records/s, peak RSS ${result.peakRssMB} MB, ` +
      `heap at end ${heapUsedMB} MB, clone/work ${result.handoffToWork}`) + '\n',
);
process.exit(0);
