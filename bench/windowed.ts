/**
 * Windowed aggregation throughput and peak RSS, one case per process (so RSS is the case's own):
 *   node dist/bench/windowed.js --keys 10000 --provider memory [--records 1000000] [--batch 100000] [--json]
 * A memory stream of `records` rows over `keys` distinct users, event time advancing 1 ms per row;
 * withWatermark('ts', '1 minute').groupBy(window(ts, '10 minutes'), user).agg(count, sum), update mode,
 * batches of `batch` rows, checkpointed state (delta files every batch).
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
    json: { type: 'boolean', default: false },
  },
});
const keys = Number(a.keys);
const records = Number(a.records);
const batch = Number(a.batch);

const s = new SluiceSession('bench');
s.log = () => {};
s.conf.set('sluice.sql.streaming.stateStore.provider', a.provider!);
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
for (let i = 0; i < records; i += batch) {
  const rows = [];
  for (let j = i; j < Math.min(records, i + batch); j++) rows.push({ user: `user-${(j * 7919) % keys}`, ts: new Date(base + j), amount: j % 100 });
  input.addData(rows);
  await q.processAllAvailable();
}
const secs = (performance.now() - t0) / 1000;
const heapUsedMB = Math.round(process.memoryUsage().heapUsed / 1048576);
const state = q.lastProgress!.stateOperators[0]!;
await q.stop();
rmSync(dir, { recursive: true, force: true });
const result = {
  provider: a.provider,
  keys,
  records,
  recordsPerSecond: Math.round(records / secs),
  stateRows: state.numRowsTotal,
  outputRows: out,
  peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
  heapUsedMB,
};
process.stdout.write((a.json ? JSON.stringify(result) : `${result.provider} state, ${keys} keys: ${result.recordsPerSecond} records/s, peak RSS ${result.peakRssMB} MB, heap at end ${heapUsedMB} MB`) + '\n');
process.exit(0);
