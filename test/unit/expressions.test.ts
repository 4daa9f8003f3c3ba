import { describe, expect, it } from 'vitest';
import {
  SluiceSession, col, lit, when, coalesce, upper, lower, trim, length, substring, concat, concat_ws, regexp_replace,
  regexp_extract, to_date, to_timestamp, unix_timestamp, hour, date_format, struct, to_json, from_json, current_timestamp,
  AnalysisError, split, max, min,
} from '../../src/index.js';

const session = SluiceSession.builder().getOrCreate();
session.out = () => {};
const people = session.createDataFrame(
  [
    { name: ' Ada ', age: 36, city: 'London', ts: '2025-08-22 17:23:54' },
    { name: 'Linus', age: null, city: null, ts: '2025-08-22T09:05:00Z' },
    { name: 'Grace', age: 85, city: 'NYC', ts: 'not a time' },
  ],
  'name STRING, age INT, city STRING, ts STRING',
);

describe('column expressions', () => {
  it('computes arithmetic, comparisons and SQL null logic', async () => {
    const rows = await people
      .select(
        col('age').plus(1).alias('next'),
        col('age').divide(2).alias('half'),
        col('age').gt(50).alias('old'),
        col('age').gt(50).and(lit(false)).alias('f'),
        col('age').gt(50).or(lit(true)).alias('t'),
        col('age').isNull().alias('unknown'),
        col('city').isin('London', 'Paris').alias('in'),
      )
      .collect();
    // null + 1 = null; null > 50 = null; null AND false = false; null OR true = true (three-valued logic)
    expect(rows).toEqual([
      { next: 37, half: 18, old: false, f: false, t: true, unknown: false, in: true },
      { next: null, half: null, old: null, f: false, t: true, unknown: true, in: null },
      { next: 86, half: 42.5, old: true, f: false, t: true, unknown: false, in: false },
    ]);
  });

  it('evaluates when/otherwise and coalesce', async () => {
    const rows = await people
      .select(
        when(col('age').lt(40), 'young').when(col('age').geq(40), 'senior').otherwise('unknown').alias('band'),
        coalesce(col('city'), lit('nowhere')).alias('c'),
      )
      .collect();
    expect(rows.map((r) => [r.band, r.c])).toEqual([
      ['young', 'London'],
      ['unknown', 'nowhere'],
      ['senior', 'NYC'],
    ]);
  });

  it('applies string functions', async () => {
    const [r] = await people
      .select(
        trim(col('name')).alias('t'),
        upper(trim('name')).alias('u'),
        lower('city').alias('l'),
        length('name').alias('len'),
        substring(trim(col('name')), 2, 2).alias('sub'),
        concat(trim(col('name')), lit('@'), col('city')).alias('cc'),
        concat_ws('-', 'city', 'age').alias('ws'),
        regexp_replace(col('city'), 'o', '0').alias('rr'),
        regexp_extract(col('ts'), '(\\d{4})-(\\d{2})', 2).alias('month'),
        split(col('ts'), ' ').alias('parts'),
        col('city').like('Lon%').alias('like'),
      )
      .collect();
    expect(r).toEqual({
      t: 'Ada', u: 'ADA', l: 'london', len: 5, sub: 'da', cc: 'Ada@London', ws: 'London-36', rr: 'L0nd0n',
      month: '08', parts: ['2025-08-22', '17:23:54'], like: true,
    });
  });

  it('parses and formats time, null when a string does not parse (Spark non-ANSI)', async () => {
    const rows = await people
      .select(
        to_timestamp(col('ts')).alias('t'),
        to_date(col('ts')).alias('d'),
        hour(to_timestamp(col('ts'))).alias('h'),
        unix_timestamp(col('ts')).alias('u'),
        date_format(to_timestamp(col('ts')), "yyyy/MM/dd'T'HH").alias('f'),
        to_timestamp(lit('22.08.2025 17:23'), 'dd.MM.yyyy HH:mm').alias('p'),
      )
      .collect();
    expect(rows[0]).toEqual({
      t: new Date('2025-08-22T17:23:54Z'), d: '2025-08-22', h: 17, u: 1755883434, f: '2025/08/22T17',
      p: new Date('2025-08-22T17:23:00Z'),
    });
    expect(rows[1]!.h).toBe(9);
    expect(rows[2]).toMatchObject({ t: null, d: null, h: null, u: null, f: null });
  });

  it('casts with Spark rules', async () => {
    const df = session.createDataFrame([{ s: '42', b: 'yes', x: 'abc', n: 3.9 }], 's STRING, b STRING, x STRING, n DOUBLE');
    const [r] = await df
      .select(col('s').cast('int').alias('i'), col('b').cast('boolean').alias('bb'), col('x').cast('int').alias('bad'), col('n').cast('int').alias('trunc'), col('n').cast('string').alias('str'))
      .collect();
    expect(r).toEqual({ i: 42, bb: true, bad: null, trunc: 3, str: '3.9' });
  });

  it('NaN follows Spark SQL\'s NaN semantics: equal to itself, greater than any other number', async () => {
    // Spark SQL reference, "NaN Semantics": NaN = NaN is true; NaN is larger than any other numeric value,
    // so it goes last in ascending order and is the max of a group that holds one; rows with NaN group
    // together. Before, NaN compared as equal to everything, so max() depended on the order of the rows.
    const df = session.createDataFrame([1, NaN, 3, NaN].map((d, i) => ({ k: i % 2, d })), 'k INT, d DOUBLE');
    const agg = await df.groupBy('k').agg(max('d').alias('hi'), min('d').alias('lo')).orderBy('k').collect();
    expect(agg).toEqual([{ k: 0, hi: 3, lo: 1 }, { k: 1, hi: NaN, lo: NaN }]);
    const all = await df.agg(max('d').alias('hi'), min('d').alias('lo')).collect();
    expect(all).toEqual([{ hi: NaN, lo: 1 }]);
    expect((await df.orderBy('d').collect()).map((r) => r.d)).toEqual([1, 3, NaN, NaN]);
    expect((await df.groupBy('d').count().orderBy('d').collect()).map((r) => [r.d, r.count])).toEqual([[1, 1], [3, 1], [NaN, 2]]);
  });

  it('to_json writes doubles and floats as Spark does (Jackson: Java Double/Float.toString)', async () => {
    // Java's Double.toString: plain decimal with at least one fraction digit for 1e-3 ≤ |x| < 1e7, else
    // d.dddE±n (no '+'); the shortest digits that read back (Float.toString: as a float). Jackson quotes
    // NaN and ±Infinity (QUOTE_NON_NUMERIC_NUMBERS). Found by the PySpark peer: avg() of whole numbers
    // gave {"avg":31} here and {"avg":31.0} in Spark.
    const rows = [31, 2.5, -0.5, 0, 1e7, 12345678.9, 0.001, 0.0001, 1.5e-5, 1e21, NaN, Infinity].map((d) => ({ d, f: Math.fround(0.1) }));
    const df = session.createDataFrame(rows, 'd DOUBLE, f FLOAT');
    expect((await df.select(to_json(struct('d', 'f')).alias('j')).collect()).map((r) => r.j)).toEqual([
      '{"d":31.0,"f":0.1}', '{"d":2.5,"f":0.1}', '{"d":-0.5,"f":0.1}', '{"d":0.0,"f":0.1}', '{"d":1.0E7,"f":0.1}',
      '{"d":1.23456789E7,"f":0.1}', '{"d":0.001,"f":0.1}', '{"d":1.0E-4,"f":0.1}', '{"d":1.5E-5,"f":0.1}', '{"d":1.0E21,"f":0.1}',
      '{"d":"NaN","f":0.1}', '{"d":"Infinity","f":0.1}',
    ]);
  });

  it('reads a JSON number as a timestamp the way Spark does: whole seconds since the epoch, a fraction as null', async () => {
    // Spark's JacksonParser: VALUE_NUMBER_INT for TimestampType is seconds × 10^6 µs; a float is not converted.
    // (Sluice read milliseconds until the Spark Connect backend compared the two: 1767225600 is 2026-01-01.)
    const nums = session.createDataFrame([{ j: '{"ts": 1767225600}' }, { j: '{"ts": 1.5}' }, { j: '{"ts": "2026-01-01T00:00:01Z"}' }], 'j STRING');
    expect(await nums.select(from_json(col('j'), 'ts TIMESTAMP').alias('e')).select('e.ts').collect()).toEqual([
      { ts: new Date('2026-01-01T00:00:00Z') },
      { ts: null },
      { ts: new Date('2026-01-01T00:00:01Z') },
    ]);
  });

  it('builds structs, expands stars and round-trips JSON', async () => {
    const json = people.select(to_json(struct('name', 'age')).alias('j'));
    expect((await json.collect()).map((r) => r.j)).toEqual(['{"name":" Ada ","age":36}', '{"name":"Linus"}', '{"name":"Grace","age":85}']);
    const back = json.select(from_json(col('j'), 'name STRING, age INT').alias('p')).select('p.*');
    expect(await back.collect()).toEqual([
      { name: ' Ada ', age: 36 },
      { name: 'Linus', age: null },
      { name: 'Grace', age: 85 },
    ]);
    // Spark 3.5's PERMISSIVE mode: a malformed record (not JSON, or not an object) gives a struct of nulls —
    // not a null struct, so isNull() is false — and its text in _corrupt_record when the schema has it.
    const bad = session.createDataFrame([{ j: '{oops' }, { j: '123' }, { j: 'null' }], 'j STRING');
    expect(await bad.select(from_json(col('j'), 'a INT').alias('p'), from_json(col('j'), 'a INT').isNull().alias('isNull')).collect()).toEqual([
      { p: { a: null }, isNull: false },
      { p: { a: null }, isNull: false },
      { p: null, isNull: true }, // JSON null is null
    ]);
    expect((await bad.select(from_json(col('j'), 'a INT, _corrupt_record STRING').alias('p')).collect()).slice(0, 1)).toEqual([
      { p: { a: null, _corrupt_record: '{oops' } },
    ]);
  });

  it('withColumn replaces in place, drop and rename keep order', async () => {
    const df = people.withColumn('age', col('age').plus(100)).withColumn('z', lit(1)).drop('ts', 'nope').withColumnRenamed('city', 'town');
    expect((await df.schema()).fieldNames).toEqual(['name', 'age', 'town', 'z']);
    expect((await df.collect())[0]).toEqual({ name: ' Ada ', age: 136, town: 'London', z: 1 });
  });

  it('current_timestamp is the batch time', async () => {
    const analyzed = await people.select(current_timestamp().alias('now')).analyze({ batchTimestampMs: 1_000_000 });
    const stage = analyzed.stages[0]!;
    expect(stage.kind === 'map' && stage.fn({})).toEqual({ now: new Date(1_000_000) });
  });

  it('explains unknown columns with the ones that exist', async () => {
    await expect(people.select(col('nmae')).collect()).rejects.toThrow(/Column `nmae` does not exist. Available columns: `name`, `age`, `city`, `ts`/);
    await expect(people.filter(col('age').plus(1)).collect()).rejects.toThrow(AnalysisError);
    await expect(people.select(col('age'), col('age')).collect()).rejects.toThrow(/two columns named `age`/);
  });

  it('selectExpr reads SQL (the full grammar is tested in sql-parser.test.ts and sql-run.test.ts)', async () => {
    const rows = await people.selectExpr('name AS n', 'CAST(age AS string) AS a', 'age + 1 AS next').collect();
    expect(rows[0]).toEqual({ n: ' Ada ', a: '36', next: 37 });
    expect(() => people.selectExpr('age +')).toThrow(/expected an expression after '\+', found end of input/);
  });
});
