/**
 * Tasks (exec/tasks/): a query's per-row steps in worker threads give exactly what the query's own thread
 * gives — the same rows in the same order, the same dead letters, the same event-time statistics and
 * watermark, the same state — and what cannot cross threads stays in the query's thread, with the reason.
 *
 * Each query runs twice on the same input: `sluice.sql.streaming.tasks=0` (every step in the query's thread,
 * the reference) and `=2` with `tasks.minRows=0` (every chunk to a worker once the workers are up). The
 * memory source hands a batch over in chunks of 10,000 rows, so a batch of 25,000 rows is 3 tasks.
 */
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import avro from 'avsc';
import { describe, expect, it } from 'vitest';
import { SluiceSession, avg, col, count, first, lit, max, sum, struct, upper, when, window } from '../../src/index.js';
import type { DataFrame, OutputMode } from '../../src/index.js';
import { fromAvro, toAvro } from '../../src/serde/avro.js';
import { NotPortable, planFromData, planToData, statelessPrefix } from '../../src/plan/portable.js';
import { packer, unpacker } from '../../src/exec/tasks/wire.js';
import { Decimal, MicrosDate, parseSchema } from '../../src/types/index.js';
import type { StreamingQueryProgress } from '../../src/exec/progress.js';

type Row = Record<string, unknown>;

const EVENT = {
  type: 'record',
  name: 'Event',
  fields: [
    { name: 'user', type: 'string' },
    { name: 'amount', type: 'int' },
    { name: 'ts', type: { type: 'long', logicalType: 'timestamp-micros' } },
    { name: 'note', type: ['null', 'string'], default: null },
  ],
};
const eventType = avro.Type.forSchema(EVENT as avro.Schema);
const KAFKA = 'key BINARY, value BINARY, topic STRING, partition INT, offset BIGINT, timestamp TIMESTAMP';
const T0 = Date.UTC(2026, 0, 1);

/**
 * Kafka-shaped rows: event i of user u(i mod 97), amount i mod 50, event time T0 + i seconds plus i mod 1000
 * microseconds (so timestamps keep a µs part) — except every 1000th, which is back at T0 (late, once the
 * watermark has passed it) — and every 500th record not Avro (a dead letter).
 */
function records(from: number, n: number): Row[] {
  const out: Row[] = [];
  for (let i = from; i < from + n; i++) {
    const value =
      i % 500 === 499
        ? Buffer.from(`not avro ${i}`)
        : eventType.toBuffer({ user: `u${i % 97}`, amount: i % 50, ts: (i % 1000 === 500 ? T0 : T0 + i * 1000) * 1000 + (i % 1000), note: i % 3 ? null : `n${i}` });
    out.push({ key: Buffer.from(`u${i % 97}`), value, topic: 'events', partition: i % 3, offset: i, timestamp: new Date(T0 + i) });
  }
  return out;
}

const decoded = (df: DataFrame): DataFrame => df.select(col('key'), fromAvro(col('value'), { schema: JSON.stringify(EVENT) }).alias('e')).select('key', 'e.*');

interface Run {
  batches: Row[][];
  progress: StreamingQueryProgress[];
  deadLetters: string[];
  tasksLine: string;
}

async function run(tasks: number, build: (df: DataFrame) => DataFrame, mode: OutputMode, steps: Row[][]): Promise<Run> {
  const s = new SluiceSession(`tasks-${tasks}`);
  s.out = () => {};
  s.log = () => {};
  s.conf.set('sluice.sql.streaming.tasks', String(tasks));
  s.conf.set('sluice.sql.streaming.tasks.minRows', '0');
  const input = s.memoryStream(KAFKA);
  const name = `q${Math.random().toString(36).slice(2)}`;
  const checkpoint = mkdtempSync(join(tmpdir(), 'sluice-tasks-'));
  const q = await build(input.toDF()).writeStream.format('memory').queryName(name).outputMode(mode).option('checkpointLocation', checkpoint).start();
  for (const [i, rows] of steps.entries()) {
    input.addData(rows);
    await q.processAllAvailable();
    // The first chunk starts the workers (and runs here meanwhile); let them come up before the next batches.
    for (let waited = 0; i === 0 && /\((starting|started by)/.test(q.explain()) && waited < 60_000; waited += 50) await new Promise((r) => setTimeout(r, 50));
  }
  const tasksLine = q.explain().split('\n').find((l) => l.startsWith('tasks:'))!;
  await q.stop();
  const table = s.memoryTable(name);
  const dir = join(checkpoint, 'deadletter');
  let deadLetters: string[] = [];
  try {
    deadLetters = readdirSync(dir).sort().flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n').filter(Boolean));
  } catch {
    /* none */
  }
  return { batches: q.recentProgress.map((p) => table.batches.get(p.batchId) ?? []), progress: q.recentProgress, deadLetters, tasksLine };
}

/** What must not differ between the two runs: progress without times and ids. */
const comparable = (p: StreamingQueryProgress): unknown => ({
  batchId: p.batchId,
  numInputRows: p.numInputRows,
  numDeadLetterRows: p.numDeadLetterRows,
  numFilteredRows: p.numFilteredRows,
  eventTime: p.eventTime,
  sink: p.sink.numOutputRows,
  state: p.stateOperators.map((o) => ({ total: o.numRowsTotal, updated: o.numRowsUpdated, dropped: o.numRowsDroppedByWatermark })),
});

const workersRan = (line: string): number => Number(/(\d+) in workers/.exec(line)?.[1] ?? 0);

describe('tasks: per-row steps in worker threads', () => {
  const steps = [records(0, 25_000), records(25_000, 25_000), records(50_000, 25_000), records(75_000, 12_345)];

  it('a stateless pipeline (Avro in, filter, derived columns with µs timestamps and decimals, Avro out) gives the same rows in the same order, and the same dead letters', async () => {
    const build = (df: DataFrame): DataFrame =>
      decoded(df)
        .filter(col('amount').gt(3))
        .withColumn('big', when(col('amount').geq(40), lit('big')).otherwise(upper(col('user'))))
        .withColumn('price', col('amount').cast('decimal(10,2)'))
        .select(col('key'), col('ts'), col('price'), col('note'), toAvro(struct('user', 'amount', 'ts', 'big', 'note')).alias('value'));
    const serial = await run(0, build, 'append', steps);
    const parallel = await run(2, build, 'append', steps);

    expect(serial.tasksLine).toMatch(/per-row steps in the query's thread/);
    expect(workersRan(parallel.tasksLine)).toBeGreaterThan(0);
    // 100 records per 50,000 are not Avro; 4/50 of the rest have amount ≤ 3.
    const total = steps.reduce((n, s) => n + s.length, 0);
    const bad = Math.floor((total + 1) / 500);
    expect(serial.progress.reduce((n, p) => n + p.numDeadLetterRows, 0)).toBe(bad);
    expect(serial.batches.flat().length).toBeGreaterThan(0.9 * (total - bad));

    expect(parallel.batches).toEqual(serial.batches); // the same rows, in the same order, batch by batch
    const first = parallel.batches[1]![0]!;
    expect(Buffer.isBuffer(first.key) && Buffer.isBuffer(first.value)).toBe(true);
    expect(first.ts).toBeInstanceOf(MicrosDate); // the µs part crossed the thread
    expect(first.price).toBeInstanceOf(Decimal);
    expect(parallel.deadLetters).toEqual(serial.deadLetters);
    expect(parallel.deadLetters.length).toBe(bad);
    expect(parallel.progress.map(comparable)).toEqual(serial.progress.map(comparable));
  });

  it('a windowed aggregation pre-aggregated by the workers gives the same watermark, late rows, state and output', async () => {
    // The tasks decode, keep the watermark's statistics and aggregate each chunk on its own (partial buffers
    // per group, late rows aside); the query's thread merges the partials into state. Integer sums and counts
    // (and avg from them), first, max: exact whatever the grouping, so equal to the row-by-row run.
    const build = (df: DataFrame): DataFrame =>
      decoded(df)
        .withWatermark('ts', '1 minute')
        .groupBy(window(col('ts'), '10 minutes'), col('user'))
        .agg(count(lit(1)).alias('n'), sum('amount').alias('total'), avg('amount').alias('mean'), first('note').alias('firstNote'), max('amount').alias('top'));
    const serial = await run(0, build, 'update', steps);
    const parallel = await run(2, build, 'update', steps);
    expect(Number(/\((\d+) pre-aggregated\)/.exec(parallel.tasksLine)?.[1])).toBeGreaterThan(0);
    expect(parallel.progress.map(comparable)).toEqual(serial.progress.map(comparable));
    expect(parallel.batches).toEqual(serial.batches);
    // The watermark moved: event times reached the progress through the workers' statistics.
    expect(parallel.progress.at(-1)!.eventTime.watermark).not.toBe('1970-01-01T00:00:00.000Z');
    // Late rows were met (and counted the same): every 1000th event, back at T0, after the first batch.
    expect(parallel.progress.reduce((n, p) => n + p.stateOperators[0]!.numRowsDroppedByWatermark, 0)).toBeGreaterThan(0);
  });

  it('a step with a JavaScript function keeps the per-row steps in the query thread, and says why', async () => {
    const build = (df: DataFrame): DataFrame => decoded(df).map((r) => ({ ...r, n: 1 }), 'key BINARY, user STRING, amount INT, ts TIMESTAMP, note STRING, n INT');
    const r = await run(2, build, 'append', [records(0, 2_000)]);
    expect(r.tasksLine).toMatch(/JavaScript function/);
    expect(r.batches[0]!.length).toBe(1996);
  });
});

describe('tasks: what crosses threads', () => {
  it('packed rows keep Buffers, nulls, numbers, bigints, µs timestamps, decimals, strings and nested values', () => {
    const schema = parseSchema('b BINARY, n DOUBLE, l BIGINT, t TIMESTAMP, s STRING, d DECIMAL(10,2), nested STRUCT<x: BINARY, y: DECIMAL(5,1)>, times ARRAY<TIMESTAMP>');
    const rows: Row[] = [
      { b: Buffer.from('ab'), n: 1.5, l: 2, t: new MicrosDate(T0, 7), s: 'é', d: Decimal.of(1234n, 2), nested: { x: Buffer.from([0, 255]), y: Decimal.of(-5n, 1) }, times: [new MicrosDate(T0, 1), new Date(T0)] },
      { b: null, n: null, l: 9007199254740993n, t: null, s: null, d: null, nested: null, times: null },
      { b: Buffer.alloc(0), n: -0.25, l: 3, t: new Date(T0 + 1), s: '', d: Decimal.of(0n, 2), nested: { x: null, y: null }, times: [] },
    ];
    const { packed, transfer } = packer(schema)(rows);
    // What postMessage does: a structured clone with the buffers moved.
    const back = unpacker(schema)(structuredClone(packed, { transfer }));
    expect(back).toEqual(rows);
    expect(Buffer.isBuffer(back[0]!.b)).toBe(true);
    expect(Buffer.isBuffer((back[0]!.nested as Row).x)).toBe(true);
    expect((back[0]!.t as MicrosDate).microsOfMilli).toBe(7);
    expect(((back[0]!.times as Date[])[0] as MicrosDate).microsOfMilli).toBe(1);
    expect(back[1]!.l).toBe(9007199254740993n);
    expect(back[0]!.d).toBeInstanceOf(Decimal);
    expect(Object.keys(back[0]!)).toEqual(schema.fieldNames);
  });

  it('the stateless part of a plan is found, crosses as data and analyzes to the same schema', async () => {
    const s = new SluiceSession('portable');
    const df = decoded(s.memoryStream(KAFKA).toDF()).filter(col('amount').gt(1)).withWatermark('ts', '1 minute');
    const agg = df.groupBy(window(col('ts'), '1 minute')).agg(count(lit(1)).alias('n'));
    const prefix = statelessPrefix(agg.plan);
    expect('plan' in prefix && prefix.plan).toBe(df.plan); // cut right below the aggregation
    // Only the columns the aggregation names come back from the workers (the event time, twice: key and watermark).
    expect('plan' in prefix && [...new Set(prefix.needed)]).toEqual(['ts']);
    const copy = planFromData(structuredClone(planToData(df.plan)));
    const { analyze } = await import('../../src/plan/analyzer.js');
    expect((await analyze(copy, { batchTimestampMs: 0 })).schema).toEqual((await analyze(df.plan, { batchTimestampMs: 0 })).schema);

    const source = s.memoryStream(KAFKA).toDF();
    expect(statelessPrefix(source.groupBy('key').count().plan)).toEqual({ reason: 'there are no per-row steps to run' });
    expect(statelessPrefix(source.join(source.alias('b'), 'key').plan)).toMatchObject({ reason: expect.stringMatching(/join/) });
    expect(() => planToData({ kind: 'filter', child: source.plan, condition: { kind: 'lit', value: () => true } })).toThrow(NotPortable);
  });
});
