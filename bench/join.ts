/**
 * Stream-stream inner join throughput, state size and peak RSS, one case per process (so RSS is the case's own):
 *   node dist/bench/join.js [--records 1000000] [--batch 100000] [--provider memory|lmdb] [--partitions 4] [--json] [--verify]
 *   node dist/bench/join.js --write-data DIR [--records N] [--batch B]   the same input as JSON files, for bench/peers/spark_join.py
 *   node dist/bench/join.js --from-files DIR …   feed the memory streams from those files, read and parsed in the timed loop
 *
 * Two memory streams, orders and payments (N rows each), joined as issue 9 asks:
 *   orders.withWatermark('order_time', '10 minutes').join(payments.withWatermark('pay_time', '10 minutes'),
 *     expr('pay_order = order_id AND pay_time >= order_time AND pay_time <= order_time + interval 10 minutes'))
 * in append mode into a foreachBatch sink that only counts rows (`--verify` also sums a CRC-32 of each output
 * pair, the same figure spark_join.py --verify computes). Each trigger gets B rows per side (add data to both
 * streams, processAllAvailable, repeat). records/s = input rows of both sides / the time spent in addData +
 * processAllAvailable (generating the rows is not timed). Sluice has no streaming file source: `--from-files` reads
 * and parses the JSON files the PySpark peer reads (JSON.parse, timestamps to Date) inside the timed loop, to
 * show what reading them would add.
 *
 * The data (`generate`, deterministic, no Math.random): order i at BASE + i·100 ms ± 30 s. Its payment i is:
 * 5% an orphan (pays an order id that does not exist), 3% out of range (10–20 min after the order), 2% a second
 * payment for order i−1, otherwise 0–10 min after order i (1% exactly at 0, 1% exactly at 10 min, the inclusive
 * bounds). 1% of payments and 0.5% of orders are *late*: delivered lateBatches(B) batches after their own (3 at
 * B = 100,000), where they are behind the watermark and dropped. Everything else is on time by a margin of
 * minutes: whether the watermark for late rows is the previous batch's or the one before it (Spark runs no
 * no-data batch between data batches read by a file source; processAllAvailable here runs one) drops the same
 * rows, so the output is the same either way — see docs/benchmarks.md, "Stream-stream join".
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { SluiceSession } from '../src/api/session.js';
import { expr } from '../src/sql/index.js';
import type { StreamingQueryProgress } from '../src/exec/progress.js';
import type { Row } from '../src/types/index.js';

const ORDERS_SCHEMA = 'order_id STRING, order_time TIMESTAMP, amount INT';
const PAYMENTS_SCHEMA = 'payment_id STRING, pay_order STRING, pay_time TIMESTAMP';
const JOIN_CONDITION = 'pay_order = order_id AND pay_time >= order_time AND pay_time <= order_time + interval 10 minutes';

const BASE = Date.parse('2025-01-01T00:00:00Z');
const STEP_MS = 100;
const JITTER_MS = 30_000;
const RANGE_MS = 600_000;

/** A 32-bit integer hash of (i, salt) in [0, 1): the data's only source of randomness. */
function u(i: number, salt: number): number {
  // murmur3's 32-bit finalizer of i + salt·φ
  let h = (i + Math.imul(salt, 0x9e3779b9)) | 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) / 4294967296;
}

const orderTime = (i: number): number => BASE + i * STEP_MS + Math.floor((u(i, 1) * 2 - 1) * JITTER_MS);

function order(i: number): Row {
  return { order_id: `o${i}`, order_time: new Date(orderTime(i)), amount: (i * 37) % 1000 };
}

function payment(i: number): Row {
  const kind = u(i, 2);
  const delta = (): number => {
    const b = u(i, 3);
    return b < 0.01 ? 0 : b < 0.02 ? RANGE_MS : Math.floor(u(i, 4) * (RANGE_MS + 1));
  };
  if (kind < 0.05) return { payment_id: `p${i}`, pay_order: `x${i}`, pay_time: new Date(orderTime(i) + delta()) }; // orphan
  if (kind < 0.08) return { payment_id: `p${i}`, pay_order: `o${i}`, pay_time: new Date(orderTime(i) + RANGE_MS + 1 + Math.floor(u(i, 4) * RANGE_MS)) }; // too late for its order
  if (kind < 0.1 && i > 0) return { payment_id: `p${i}`, pay_order: `o${i - 1}`, pay_time: new Date(orderTime(i - 1) + delta()) }; // a second payment
  return { payment_id: `p${i}`, pay_order: `o${i}`, pay_time: new Date(orderTime(i) + delta()) };
}

const lateOrder = (i: number): boolean => u(i, 5) < 0.005;
const latePayment = (i: number): boolean => u(i, 6) < 0.01;

/**
 * How many batches late a late row comes: enough that it is behind the watermark for late events whether that is
 * the previous batch's or the one before (the latter is 2 batches behind; +40 min of event time for the 10-minute
 * delay, the 10-minute range, the out-of-range payments and the jitter).
 */
function lateBatches(batch: number): number {
  return 2 + Math.ceil((40 * 60_000) / (batch * STEP_MS));
}

/**
 * Batch b of each side: the on-time rows of indices [b·B, (b+1)·B), then the late rows of batch b − LATE_BATCHES.
 * A late row of one of the last LATE_BATCHES batches comes on time (there is no later batch to put it in).
 */
function generate(n: number, batch: number, b: number): { orders: Row[]; payments: Row[] } {
  const batches = Math.ceil(n / batch);
  const lb = lateBatches(batch);
  const isLate = (late: (i: number) => boolean) => (i: number): boolean => late(i) && Math.floor(i / batch) + lb < batches;
  const side = (make: (i: number) => Row, late: (i: number) => boolean): Row[] => {
    const rows: Row[] = [];
    for (let i = b * batch; i < Math.min(n, (b + 1) * batch); i++) if (!late(i)) rows.push(make(i));
    if (b - lb >= 0) for (let i = (b - lb) * batch; i < Math.min(n, (b - lb + 1) * batch); i++) if (late(i)) rows.push(make(i));
    return rows;
  };
  return { orders: side(order, isLate(lateOrder)), payments: side(payment, isLate(latePayment)) };
}

/** CRC-32 (IEEE), as Spark's crc32(): the verify figure sums crc32(order_id || '|' || payment_id) over the output. */
const CRC_TABLE = Int32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c;
});
function crc32(s: string): number {
  const bytes = Buffer.from(s, 'utf8');
  let c = ~0;
  for (const x of bytes) c = CRC_TABLE[(c ^ x) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

const json = (r: Row): string => JSON.stringify(r); // Dates as ISO 8601 with milliseconds and Z

/** One JSON Lines file per batch and side, with increasing modification times (Spark's file source reads in that order). */
function writeData(dir: string, n: number, batch: number): { batches: number; orders: number; payments: number } {
  const batches = Math.ceil(n / batch);
  let orders = 0;
  let payments = 0;
  for (const sideDir of ['orders', 'payments']) mkdirSync(join(dir, sideDir), { recursive: true });
  for (let b = 0; b < batches; b++) {
    const d = generate(n, batch, b);
    const name = `part-${String(b).padStart(5, '0')}.json`;
    const mtime = 1_700_000_000 + b * 10;
    for (const [sideDir, rows] of [['orders', d.orders], ['payments', d.payments]] as const) {
      const file = join(dir, sideDir, name);
      writeFileSync(file, rows.map(json).join('\n') + '\n');
      utimesSync(file, mtime, mtime);
    }
    orders += d.orders.length;
    payments += d.payments.length;
  }
  return { batches, orders, payments };
}

/** Batch b of each side, read back from the files writeData wrote. */
function readBatch(dir: string, b: number): { orders: Row[]; payments: Row[] } {
  const name = `part-${String(b).padStart(5, '0')}.json`;
  const read = (side: string, time: string): Row[] =>
    readFileSync(join(dir, side, name), 'utf8')
      .split('\n')
      .filter((l) => l)
      .map((l) => {
        const r = JSON.parse(l) as Row;
        r[time] = new Date(r[time] as string);
        return r;
      });
  return { orders: read('orders', 'order_time'), payments: read('payments', 'pay_time') };
}

async function main(): Promise<void> {
  const { values: a } = parseArgs({
    options: {
      records: { type: 'string', default: '1000000' },
      batch: { type: 'string', default: '100000' },
      provider: { type: 'string', default: 'memory' },
      partitions: { type: 'string', default: '4' },
      json: { type: 'boolean', default: false },
      verify: { type: 'boolean', default: false },
      'write-data': { type: 'string' },
      'from-files': { type: 'string' },
    },
  });
  const records = Number(a.records);
  const batch = Number(a.batch);
  if (!(records > 0) || !(batch > 0)) throw new Error('--records and --batch must be positive numbers');
  if (a['write-data']) {
    const r = writeData(a['write-data'], records, batch);
    process.stdout.write(JSON.stringify({ dir: a['write-data'], records, batch, lateBatches: lateBatches(batch), ...r }) + '\n');
    return;
  }

  const s = new SluiceSession('bench-join');
  s.log = () => {};
  s.conf.set('sluice.sql.streaming.stateStore.provider', a.provider!);
  s.conf.set('sluice.sql.shuffle.partitions', a.partitions!);
  const orders = s.memoryStream(ORDERS_SCHEMA);
  const payments = s.memoryStream(PAYMENTS_SCHEMA);
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-join-'));
  const progress: StreamingQueryProgress[] = [];
  s.streams.addListener({ onQueryProgress: ({ progress: p }) => void progress.push(p) });
  let out = 0;
  let crcSum = 0;
  const q = await orders
    .toDF()
    .withWatermark('order_time', '10 minutes')
    .join(payments.toDF().withWatermark('pay_time', '10 minutes'), expr(JOIN_CONDITION))
    .writeStream.foreachBatch(async (df) => {
      if (!a.verify) {
        out += await df.count();
        return;
      }
      for (const r of await df.collect()) {
        out++;
        crcSum += crc32(`${String(r.order_id)}|${String(r.payment_id)}`);
      }
    })
    .outputMode('append')
    .option('checkpointLocation', join(dir, 'cp'))
    .start();

  const batches = Math.ceil(records / batch);
  let inputRows = 0;
  let ms = 0;
  const files = a['from-files'];
  for (let b = 0; b < batches; b++) {
    const g = files ? undefined : generate(records, batch, b);
    const t0 = performance.now();
    const d = g ?? readBatch(files!, b);
    inputRows += d.orders.length + d.payments.length;
    orders.addData(d.orders);
    payments.addData(d.payments);
    await q.processAllAvailable();
    ms += performance.now() - t0;
  }
  const heapUsedMB = Math.round(process.memoryUsage().heapUsed / 1048576);
  await q.stop();
  if (q.exception) throw q.exception;
  rmSync(dir, { recursive: true, force: true });
  const op = (p: StreamingQueryProgress) => p.stateOperators[0];
  const result = {
    engine: 'sluice',
    provider: a.provider,
    input: files ? 'JSON files, parsed in the timed loop' : 'generated rows',
    records,
    batch,
    partitions: Number(a.partitions),
    inputRows,
    batches: progress.filter((p) => p.numInputRows > 0).length,
    noDataBatches: progress.filter((p) => p.numInputRows === 0).length,
    seconds: Math.round(ms) / 1000,
    recordsPerSecond: Math.round(inputRows / (ms / 1000)),
    outputRows: out,
    ...(a.verify ? { crcSum } : {}),
    droppedByWatermark: progress.reduce((n, p) => n + (op(p)?.numRowsDroppedByWatermark ?? 0), 0),
    peakStateRows: Math.max(0, ...progress.map((p) => op(p)?.numRowsTotal ?? 0)),
    peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
    heapUsedMB,
    node: process.version,
  };
  process.stdout.write(
    (a.json
      ? JSON.stringify(result)
      : `sluice ${result.provider} state${files ? ' (from JSON files)' : ''}: ${result.inputRows} input rows in ${result.batches} batches (+${result.noDataBatches} no-data), ` +
        `${result.recordsPerSecond} records/s, ${result.outputRows} output rows, ${result.droppedByWatermark} late rows dropped, ` +
        `peak state ${result.peakStateRows} rows, peak RSS ${result.peakRssMB} MB${a.verify ? `, crc sum ${crcSum}` : ''}`) + '\n',
  );
}

await main();
process.exit(0);
