/**
 * A large backlog with no maxOffsetsPerTrigger: peak RSS of one query process (so RSS is the query's own).
 *   node dist/bench/backlog.js --bootstrap HOST:PORT --input TOPIC --output TOPIC [--json]
 * A new query with startingOffsets=earliest on a topic holding N records, Trigger.AvailableNow, no
 * maxOffsetsPerTrigger: the whole backlog is one batch. It reads, transforms (value to upper case) and
 * writes to Kafka; the batch is streamed through in chunks, so memory stays bounded whatever N is
 * (ARCHITECTURE.md, "Bounded memory"). Reports records/s, batches, peak RSS and heap.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { SluiceSession } from '../src/api/session.js';
import { col, upper } from '../src/index.js';

const { values: a } = parseArgs({
  options: {
    bootstrap: { type: 'string' },
    input: { type: 'string' },
    output: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});

const dir = mkdtempSync(join(tmpdir(), 'sluice-backlog-'));
const session = new SluiceSession('backlog');
session.log = () => {};
const t0 = performance.now();
const q = await session.readStream
  .format('kafka')
  .option('kafka.bootstrap.servers', a.bootstrap!)
  .option('subscribe', a.input!)
  .option('startingOffsets', 'earliest')
  .load()
  .select(col('key'), upper(col('value').cast('string')).alias('value'))
  .writeStream.format('kafka')
  .option('kafka.bootstrap.servers', a.bootstrap!)
  .option('topic', a.output!)
  .option('checkpointLocation', join(dir, 'checkpoint'))
  .trigger({ availableNow: true })
  .start();
await q.awaitTermination();
const secs = (performance.now() - t0) / 1000;
const records = q.recentProgress.reduce((n, p) => n + p.numInputRows, 0);
const result = {
  records,
  batches: q.recentProgress.filter((p) => p.numInputRows > 0).length,
  recordsPerSecond: Math.round(records / secs),
  peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
  heapUsedMB: Math.round(process.memoryUsage().heapUsed / 1048576),
};
rmSync(dir, { recursive: true, force: true });
if (a.json) process.stdout.write(JSON.stringify(result) + '\n');
else process.stdout.write(`backlog of ${records} records in ${result.batches} batch(es): ${result.recordsPerSecond} records/s, peak RSS ${result.peakRssMB} MB\n`);
process.exit(0);
