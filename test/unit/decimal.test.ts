/**
 * Spark's DecimalType in Sluice (issue 7, item 2.7): the type and its parsing, the Decimal value (exact,
 * scale kept), Spark's cast rules, comparison and grouping, printing (show, CAST AS STRING, to_json),
 * the state codec, and sum/avg/min/max. Also microsecond timestamps in the codec and in comparisons.
 * Spark 3.5 is the reference; each test cites the rule it pins.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SluiceSession, avg, col, first, max, struct, sum, to_json } from '../../src/index.js';
import { bindAggregate } from '../../src/expr/aggregates.js';
import type { Expr } from '../../src/expr/column.js';
import { castToString, castValue, compareValues, formatTimestamp, literalType, parseTimestamp } from '../../src/expr/values.js';
import { decodeState, encodeState, slowDecode, slowEncode } from '../../src/state/codec.js';
import { showString } from '../../src/sinks/show.js';
import {
  Decimal,
  DecimalType,
  DoubleType,
  IntegerType,
  LongType,
  MicrosDate,
  StringType,
  StructType,
  TimestampType,
  epochMicros,
  fromEpochMicros,
  parseDataType,
  parseSchema,
} from '../../src/types/index.js';

const d = (s: string): Decimal => Decimal.parse(s)!;

describe('DecimalType', () => {
  it('parses and prints as Spark: decimal(p,s), DECIMAL = decimal(10,0), DECIMAL(p) = decimal(p,0)', () => {
    expect(parseDataType('decimal(10,2)').simpleString()).toBe('decimal(10,2)');
    expect(parseDataType('decimal').simpleString()).toBe('decimal(10,0)'); // DecimalType.USER_DEFAULT
    expect(parseDataType('DECIMAL(5)').simpleString()).toBe('decimal(5,0)');
    expect(parseDataType('numeric(38, 18)').simpleString()).toBe('decimal(38,18)');
    expect(parseDataType('decimal(10,2)').equals(new DecimalType(10, 2))).toBe(true);
    const s = parseSchema('price DECIMAL(10,2) NOT NULL, tags ARRAY<DECIMAL(4,1)>');
    expect(s.treeString()).toBe(
      ['root', ' |-- price: decimal(10,2) (nullable = false)', ' |-- tags: array (nullable = true)', ' |    |-- element: decimal(4,1) (containsNull = true)', ''].join('\n'),
    );
    // Spark's limits: precision 1..38, scale 0..precision.
    expect(() => parseDataType('decimal(39,0)')).toThrow(/precision must be 1 to 38/);
    expect(() => parseDataType('decimal(5,6)')).toThrow(/scale must be 0 to the precision/);
  });
});

describe('Decimal values', () => {
  it('are exact and keep their scale', () => {
    expect(d('12.30').toString()).toBe('12.30');
    expect(d('12.30').scale).toBe(2);
    expect(d('-0.05').unscaled).toBe(-5n);
    expect(d('1.5e3').toString()).toBe('1500');
    expect(d('12345678901234567890.123456789012345678').toPlainString()).toBe('12345678901234567890.123456789012345678');
    expect(d('0.1').add(d('0.2')).toString()).toBe('0.3'); // not 0.30000000000000004
    expect(Decimal.parse('12,3')).toBeNull();
  });

  it("print as Java's BigDecimal.toString for CAST AS STRING, plain for show()", () => {
    // Spark non-ANSI CAST(decimal AS STRING) uses BigDecimal.toString (scientific below 1E-6);
    // show() uses ToPrettyString, which prints the plain string.
    const tiny = castValue('0.00000001', new DecimalType(10, 8));
    expect(castToString(tiny)).toBe('1E-8');
    expect(castToString(castValue('0', new DecimalType(10, 8)))).toBe('0E-8');
    expect(castToString(d('0.000001'))).toBe('0.000001');
    expect(showString([{ v: tiny }, { v: d('12.30') }], new StructType().add('v', new DecimalType(10, 8)))).toBe(
      ['+----------+', '|         v|', '+----------+', '|0.00000001|', '|     12.30|', '+----------+', ''].join('\n'),
    );
  });

  it("cast as Spark's non-ANSI Cast: HALF_UP to the scale, null on overflow, truncation to integers", () => {
    const t = new DecimalType(10, 2);
    expect(String(castValue('12.345', t))).toBe('12.35');
    expect(String(castValue('-12.345', t))).toBe('-12.35'); // HALF_UP rounds away from zero
    expect(String(castValue(0.1, t))).toBe('0.10'); // a double casts through its shortest digits
    expect(String(castValue(7, t))).toBe('7.00');
    expect(castValue('123456789.5', t)).toBeNull(); // 11 digits do not fit decimal(10,2)
    expect(castValue('abc', t)).toBeNull();
    expect(castValue(Number.NaN, t)).toBeNull();
    expect(castValue(d('12.99'), IntegerType)).toBe(12);
    expect(castValue(d('-12.99'), LongType)).toBe(-12);
    expect(castValue(d('12.30'), DoubleType)).toBe(12.3);
    expect(castValue(d('12.30'), StringType)).toBe('12.30');
    // A timestamp is its seconds since the epoch, to the microsecond.
    expect(String(castValue(fromEpochMicros(1_500_000), new DecimalType(20, 6)))).toBe('1.500000');
    expect(epochMicros(castValue(d('1.0000015'), TimestampType) as Date)).toBe(1_000_001);
    expect(literalType(d('-0.05')).simpleString()).toBe('decimal(2,2)');
  });

  it('compare by value, and group by exact value', async () => {
    expect(compareValues(d('12.3'), d('12.30'))).toBe(0);
    expect(compareValues(d('-1'), d('0.001'))).toBeLessThan(0);
    expect([d('10.5'), d('-2'), d('9.75')].sort(compareValues).map(String)).toEqual(['-2', '9.75', '10.5']);
    // Two decimal(38,18) values that are the same double must stay two groups (Spark compares decimals exactly).
    const a = d('0.100000000000000000');
    const b = d('0.100000000000000001');
    expect(a.toNumber()).toBe(b.toNumber());
    expect(encodeState([a])).not.toBe(encodeState([b]));
    const s = SluiceSession.builder().getOrCreate();
    const df = s.createDataFrame([{ k: a }, { k: b }, { k: d('0.100000000000000001') }], 'k DECIMAL(38,18)');
    const rows = await df.groupBy('k').count().orderBy('k').collect();
    expect(rows.map((r) => [String(r.k), r.count])).toEqual([
      ['0.100000000000000000', 1],
      ['0.100000000000000001', 2],
    ]);
  });

  it('compare with other numbers in the wider type, as Spark coerces them; arithmetic is refused for now', async () => {
    // Spark: decimal vs int → int as decimal(10,0), both widened to decimal(max integer digits + max scale);
    // decimal vs double → double. Decimal arithmetic (Spark's result-precision rules) is not built yet.
    const s = SluiceSession.builder().getOrCreate();
    const df = s.createDataFrame([{ p: d('9.99') }, { p: d('10.00') }, { p: d('10.01') }], 'p DECIMAL(4,2)');
    expect((await df.filter(col('p').gt(10)).collect()).map((r) => String(r.p))).toEqual(['10.01']);
    expect((await df.filter(col('p').equalTo(9.99)).collect()).map((r) => String(r.p))).toEqual(['9.99']);
    expect((await df.filter(col('p').lt(col('p').cast('decimal(10,4)'))).collect())).toEqual([]);
    await expect(df.select(col('p').plus(1)).collect()).rejects.toThrow(/Cannot apply \+ to decimal\(4,2\) and int/);
  });

  it('to_json writes decimals as JSON numbers with their scale, as Spark (Jackson writeNumber(BigDecimal))', async () => {
    const s = SluiceSession.builder().getOrCreate();
    const df = s.createDataFrame([{ id: 'a', price: d('12.30'), tiny: castValue('0.00000001', new DecimalType(10, 8)) }], 'id STRING, price DECIMAL(10,2), tiny DECIMAL(10,8)');
    const [row] = await df.select(to_json(struct(col('id'), col('price'), col('tiny'))).alias('j')).collect();
    expect(row!.j).toBe('{"id":"a","price":12.30,"tiny":1E-8}');
  });
});

describe('state codec: decimals and microseconds round-trip exactly', () => {
  it('encodes a decimal with every digit and its scale, and decodes the same value', () => {
    const v = { k: [d('12.30'), d('-99999999999999999999.999999999999999999')], sum: d('0.00') };
    const text = encodeState(v);
    expect(text).toBe('{"k":[{"$dec":"12.30"},{"$dec":"-99999999999999999999.999999999999999999"}],"sum":{"$dec":"0.00"}}');
    expect(slowEncode(v)).toBe(text); // the fast path writes what the reference encoder writes
    const back = decodeState(text) as { k: Decimal[]; sum: Decimal };
    expect(back.k[0]).toBeInstanceOf(Decimal);
    expect(back.k.map((x) => x.toPlainString())).toEqual(['12.30', '-99999999999999999999.999999999999999999']);
    expect(back.sum.scale).toBe(2);
    expect(encodeState(back)).toBe(text); // a key read back is the same key
    expect(slowDecode(text)).toEqual(back);
  });

  it('keeps a timestamp’s microseconds, and writes plain Dates as before', () => {
    const ts = fromEpochMicros(1_700_000_000_123_456);
    const text = encodeState({ ts, plain: new Date(5) });
    expect(text).toBe('{"ts":{"$d":1700000000123,"$us":456},"plain":{"$d":5}}');
    expect(slowEncode({ ts, plain: new Date(5) })).toBe(text);
    const back = decodeState(text) as { ts: Date; plain: Date };
    expect(back.ts).toBeInstanceOf(MicrosDate);
    expect(epochMicros(back.ts)).toBe(1_700_000_000_123_456);
    expect(epochMicros((slowDecode(text) as { ts: Date }).ts)).toBe(1_700_000_000_123_456);
    expect(back.plain).not.toBeInstanceOf(MicrosDate);
  });
});

describe('microsecond timestamps', () => {
  it('parse, print and compare to the microsecond, as Spark', () => {
    const t = parseTimestamp('2025-08-22 17:23:54.123456')!;
    expect(epochMicros(t) % 1_000_000).toBe(123_456);
    expect(formatTimestamp(t)).toBe('2025-08-22 17:23:54.123456');
    expect(formatTimestamp(parseTimestamp('2025-08-22 17:23:54.000120')!)).toBe('2025-08-22 17:23:54.00012');
    expect(formatTimestamp(parseTimestamp('2025-08-22 17:23:54.5')!)).toBe('2025-08-22 17:23:54.5');
    // Two instants in the same millisecond are different timestamps.
    expect(compareValues(fromEpochMicros(1001), fromEpochMicros(1002))).toBeLessThan(0);
    expect(compareValues(fromEpochMicros(1000), new Date(1))).toBe(0);
  });
});

describe('sum, avg, min, max of decimals (Spark: Sum, Average, Min, Max)', () => {
  const schema = new StructType().add('v', new DecimalType(10, 2));
  const run = (fn: string, values: Array<Decimal | null>, split = 2): { type: string; value: string | null } => {
    const expr: Expr = { kind: 'fn', name: fn, args: [{ kind: 'col', name: 'v' }] };
    const a = bindAggregate(expr, schema, { batchTimestampMs: 0 });
    // Two partial buffers merged, and each buffer through the state codec (as it is stored between batches).
    const part = (vs: Array<Decimal | null>): unknown => decodeState(encodeState(vs.reduce((b, v) => a.update(b, { v }), a.init())));
    const out = a.finish(a.merge(part(values.slice(0, split)), part(values.slice(split))));
    return { type: a.type.simpleString(), value: out == null ? null : String(out) };
  };

  it('sum is decimal(p+10,s), exact; null for no values', () => {
    expect(run('sum', [d('0.10'), d('0.20'), null, d('12.30')])).toEqual({ type: 'decimal(20,2)', value: '12.60' });
    expect(run('sum', [null, null])).toEqual({ type: 'decimal(20,2)', value: null });
  });

  it('sum is null once it overflows decimal(p+10,s) (non-ANSI)', () => {
    const big = new StructType().add('v', new DecimalType(38, 0));
    const expr: Expr = { kind: 'fn', name: 'sum', args: [{ kind: 'col', name: 'v' }] };
    const a = bindAggregate(expr, big, { batchTimestampMs: 0 });
    const nines = d('9'.repeat(38));
    expect(a.type.simpleString()).toBe('decimal(38,0)'); // bounded at 38
    let b = a.update(a.init(), { v: nines });
    expect(String(a.finish(b))).toBe('9'.repeat(38));
    b = a.update(b, { v: d('1') });
    b = a.update(b, { v: d('-5') }); // back in range, but Spark's sum stays null once it has overflowed
    expect(a.finish(b)).toBeNull();
  });

  it('avg is decimal(p+4,s+4), rounded HALF_UP', () => {
    // 5.00 / 3 = 1.666666… → decimal(14,6) 1.666667
    expect(run('avg', [d('1.00'), d('2.00'), d('2.00')])).toEqual({ type: 'decimal(14,6)', value: '1.666667' });
    expect(run('avg', [d('-1.00'), d('-0.01')])).toEqual({ type: 'decimal(14,6)', value: '-0.505000' });
    expect(run('avg', [null])).toEqual({ type: 'decimal(14,6)', value: null });
  });

  it('min and max keep the type and the exact value', () => {
    expect(run('min', [d('12.30'), d('-0.05'), null, d('3.00')])).toEqual({ type: 'decimal(10,2)', value: '-0.05' });
    expect(run('max', [d('12.30'), d('-0.05'), null, d('3.00')])).toEqual({ type: 'decimal(10,2)', value: '12.30' });
  });

  it('accept a Decimal that lost its class crossing a worker thread', () => {
    const expr: Expr = { kind: 'fn', name: 'sum', args: [{ kind: 'col', name: 'v' }] };
    const a = bindAggregate(expr, schema, { batchTimestampMs: 0 });
    const cloned = structuredClone(d('1.25')); // what postMessage delivers: { unscaled: 125n, scale: 2 }
    expect(cloned).not.toBeInstanceOf(Decimal);
    expect(String(a.finish(a.update(a.init(), { v: cloned })))).toBe('1.25');
  });
});

describe.each([
  ['memory', '1'],
  ['lmdb', '1'],
  // Aggregation state in worker threads: values cross threads as the state codec's text, so decimals and µs
  // timestamps arrive as they left (a structured clone would make them plain objects and Dates).
  ['memory', '2'],
  ['lmdb', '2'],
])('a streaming aggregation keyed by decimals and µs timestamps, restarted (%s state store, %s worker(s))', (provider, workers) => {
  it('keeps keys apart and sums exact across a restart from the state files', async () => {
    // Spark keeps decimal(38,18) keys exact and timestamps to the µs; state is restored exactly on restart.
    // Keys 0.1…0 and 0.1…1 are the same double, and so are two instants 1 µs apart in the same millisecond.
    const k0 = d('0.100000000000000000');
    const k1 = d('0.100000000000000001');
    const t0 = fromEpochMicros(1_700_000_000_000_001);
    const t1 = fromEpochMicros(1_700_000_000_000_002);
    const input = [
      [{ k: k0, ts: t0, v: d('0.10') }, { k: k1, ts: t0, v: d('0.20') }, { k: k1, ts: t1, v: d('99999999.99') }],
      [{ k: k0, ts: t0, v: d('0.20') }, { k: k1, ts: t1, v: d('99999999.99') }, { k: k1, ts: t1, v: d('0.01') }],
    ];
    const cp = mkdtempSync(join(tmpdir(), 'sluice-decimal-restart-'));
    let last: Array<Record<string, string>> = [];
    for (let i = 1; i <= input.length; i++) {
      const s = new SluiceSession('decimal-restart');
      s.out = () => {};
      s.log = () => {};
      s.conf.set('sluice.sql.streaming.stateStore.provider', provider);
      s.conf.set('sluice.sql.streaming.aggregation.workers', workers);
      const stream = s.memoryStream('k DECIMAL(38,18), ts TIMESTAMP, v DECIMAL(10,2)');
      stream.addData(input.slice(0, i).flat()); // each run sees all input so far; the checkpoint knows what was read
      const out = stream.toDF().groupBy('k', 'ts').agg(sum('v').alias('s'), avg('v').alias('a'), max('v').alias('m'), first('ts').alias('f'));
      const q = await out.writeStream.format('memory').queryName('dec').outputMode('complete').option('checkpointLocation', cp).start();
      await q.processAllAvailable();
      await q.stop();
      last = (await s.table('dec').collect())
        .map((r) => ({ k: String(r.k), ts: castToString(r.ts)!, s: String(r.s), a: String(r.a), m: String(r.m), f: castToString(r.f)! }))
        .sort((x, y) => (x.k + x.ts < y.k + y.ts ? -1 : 1));
      if (i === 1) expect(last).toHaveLength(3);
    }
    // sum is decimal(20,2), avg decimal(14,6): 99999999.99 * 2 + 0.01 exceeds neither.
    expect(last).toEqual([
      { k: '0.100000000000000000', ts: '2023-11-14 22:13:20.000001', s: '0.30', a: '0.150000', m: '0.20', f: '2023-11-14 22:13:20.000001' },
      { k: '0.100000000000000001', ts: '2023-11-14 22:13:20.000001', s: '0.20', a: '0.200000', m: '0.20', f: '2023-11-14 22:13:20.000001' },
      { k: '0.100000000000000001', ts: '2023-11-14 22:13:20.000002', s: '199999999.99', a: '66666666.663333', m: '99999999.99', f: '2023-11-14 22:13:20.000002' },
    ]);
  });
});
