/**
 * SQL strings run: each construct gives the same rows as its column-function twin (and the rows worked
 * out by hand), selectExpr / filter strings / session.sql() over temp views build the same plans as the
 * DataFrame methods — on batches and on in-memory streams with the memory sink — and what Sluice cannot
 * run is refused with the reason and the position.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  AnalysisError, Column, SluiceSession, SqlError, UnsupportedSqlError, approx_count_distinct, coalesce, col, count, date_format, expr,
  from_json, hour, interval, lit, max, struct, sum, to_date, to_json, upper, when, window,
} from '../../src/index.js';
import type { DataFrame, OutputMode } from '../../src/index.js';
import { epochMicros } from '../../src/types/timestamp.js';

type Row = Record<string, unknown>;

function newSession(name: string): SluiceSession {
  const s = new SluiceSession(name);
  s.out = () => {};
  s.log = () => {};
  return s;
}

const session = newSession('sql-run');
const t = (iso: string): Date => new Date(iso);
const people = session.createDataFrame(
  [
    { name: 'Ada', age: 36, city: 'London', ts: t('2025-08-22T17:23:54Z'), tags: ['a', 'b'], json: '{"user":"u1","n":3}' },
    { name: 'Linus', age: null, city: null, ts: t('2025-01-31T09:05:00Z'), tags: null, json: 'oops' },
    { name: 'Grace', age: 85, city: 'NYC', ts: t('2024-02-29T00:00:00Z'), tags: ['c'], json: '{"user":"u3"}' },
  ],
  'name STRING, age INT, city STRING, ts TIMESTAMP, tags ARRAY<STRING>, json STRING',
);

/** [SQL, its twin, the value for each of the three people]. */
const constructs: Array<[string, Column, unknown[]]> = [
  ['age + 1', col('age').plus(1), [37, null, 86]],
  ['age * 2 - 1', col('age').multiply(2).minus(1), [71, null, 169]],
  ['age / 4', col('age').divide(4), [9, null, 21.25]],
  ['age % 10', col('age').mod(10), [6, null, 5]],
  ['-age', col('age').negate(), [-36, null, -85]],
  ['age BETWEEN 30 AND 40', col('age').between(30, 40), [true, null, false]],
  ['age NOT BETWEEN 30 AND 40', col('age').between(30, 40).not(), [false, null, true]],
  ["city IN ('London', 'Paris')", col('city').isin('London', 'Paris'), [true, null, false]],
  ["city NOT IN ('London')", col('city').isin('London').not(), [false, null, true]],
  ['city IS NULL', col('city').isNull(), [false, true, false]],
  ['city IS NOT NULL AND age > 50', col('city').isNotNull().and(col('age').gt(50)), [false, false, true]],
  ['age > 50 OR city IS NULL', col('age').gt(50).or(col('city').isNull()), [false, true, true]],
  ['NOT age > 50', col('age').gt(50).not(), [true, null, false]],
  ['age <=> NULL', col('age').eqNullSafe(null), [false, true, false]],
  ["name LIKE 'A%'", col('name').like('A%'), [true, false, false]],
  ["name RLIKE '^[GL]'", col('name').rlike('^[GL]'), [false, true, true]],
  [
    "CASE WHEN age < 40 THEN 'young' WHEN age >= 40 THEN 'senior' ELSE 'unknown' END",
    when(col('age').lt(40), 'young').when(col('age').geq(40), 'senior').otherwise('unknown'),
    ['young', 'unknown', 'senior'],
  ],
  ["CASE city WHEN 'NYC' THEN 1 ELSE 0 END", when(col('city').eq('NYC'), 1).otherwise(0), [0, 0, 1]],
  ['CAST(age AS STRING)', col('age').cast('string'), ['36', null, '85']],
  ['CAST(age AS DOUBLE) / 2', col('age').cast('double').divide(2), [18, null, 42.5]],
  ['ts + INTERVAL 1 HOUR', col('ts').plus(interval('1 hour')), [t('2025-08-22T18:23:54Z'), t('2025-01-31T10:05:00Z'), t('2024-02-29T01:00:00Z')]],
  ['ts - interval 10 minutes', col('ts').minus(interval('10 minutes')), [t('2025-08-22T17:13:54Z'), t('2025-01-31T08:55:00Z'), t('2024-02-28T23:50:00Z')]],
  // A month later is the same day of the next month, clamped to its length (Spark's rule), not 30 days.
  ['ts + INTERVAL 1 MONTH', col('ts').plus(interval('1 month')), [t('2025-09-22T17:23:54Z'), t('2025-02-28T09:05:00Z'), t('2024-03-29T00:00:00Z')]],
  ['INTERVAL 1 DAY + ts', interval('1 day').plus(col('ts')), [t('2025-08-23T17:23:54Z'), t('2025-02-01T09:05:00Z'), t('2024-03-01T00:00:00Z')]],
  ["DATE '2025-01-31' + INTERVAL 1 DAY", lit('2025-01-31').cast('date').plus(interval('1 day')), ['2025-02-01', '2025-02-01', '2025-02-01']],
  ["TIMESTAMP '2025-01-01 00:00:00' < ts", lit(t('2025-01-01T00:00:00Z')).lt(col('ts')), [true, true, false]],
  ["date_format(ts, 'yyyy-MM-dd')", date_format(col('ts'), 'yyyy-MM-dd'), ['2025-08-22', '2025-01-31', '2024-02-29']],
  ['hour(ts)', hour(col('ts')), [17, 9, 0]],
  ['to_date(ts)', to_date(col('ts')), ['2025-08-22', '2025-01-31', '2024-02-29']],
  ['tags[0]', col('tags').getItem(0), ['a', null, 'c']],
  ["from_json(json, 'user STRING').user", from_json(col('json'), 'user STRING').getField('user'), ['u1', null, 'u3']],
  ["upper(name) || '!'", upper('name').alias('u'), ['ADA!', 'LINUS!', 'GRACE!']],
  ["coalesce(city, 'nowhere')", coalesce(col('city'), lit('nowhere')), ['London', 'nowhere', 'NYC']],
];

describe('each construct runs to the same rows as its column-function twin', () => {
  for (const [sql, twin, values] of constructs) {
    it(sql, async () => {
      const viaSql = await people.select(expr(sql).alias('r')).collect();
      expect(viaSql.map((r) => r.r)).toEqual(values);
      if (!sql.includes('||')) {
        expect(expr(sql).expr).toEqual(twin.expr);
        expect(await people.select(twin.alias('r')).collect()).toEqual(viaSql);
      }
    });
  }
});

describe('intervals', () => {
  it('keep microseconds, and print as Spark names them', async () => {
    const df = session.createDataFrame([{ x: 1 }], 'x INT');
    const [r] = await df.selectExpr("TIMESTAMP '2025-01-01 00:00:00.000001' + INTERVAL 2 MICROSECONDS AS t", "TIMESTAMP '2025-01-31 10:00:00' + INTERVAL 1 MONTH - INTERVAL 1 DAY AS u").collect();
    expect(epochMicros(r!.t as Date) - Date.parse('2025-01-01T00:00:00Z') * 1000).toBe(3);
    expect(r!.u).toEqual(t('2025-02-27T10:00:00Z'));
    expect((await df.selectExpr('INTERVAL 1 DAY 2 HOURS 30 MINUTES 5 MICROSECONDS').schema()).fieldNames).toEqual([
      "INTERVAL '1 days 2 hours 30 minutes 5 microseconds'",
    ]);
    expect(await df.selectExpr("'2025-01-01' + INTERVAL 1 DAY AS d", "'x' - INTERVAL 1 DAY AS bad").collect()).toEqual([{ d: t('2025-01-02T00:00:00Z'), bad: null }]);
    await expect(df.selectExpr('x + INTERVAL 1 DAY').collect()).rejects.toThrow(/Cannot apply \+ to int and interval in \(x \+ INTERVAL '1 days'\): an interval is added to or subtracted from a timestamp or a date/);
  });
});

/**
 * Runs `build(stream)` as a memory-sink query; each step adds rows and waits for every batch they cause.
 * Returns the rows each batch wrote.
 */
async function runStream(
  s: SluiceSession, schema: string, build: (df: DataFrame) => DataFrame, steps: Row[][], mode: OutputMode = 'append', name = `q${Math.random().toString(36).slice(2)}`,
): Promise<Row[][]> {
  const input = s.memoryStream(schema);
  const q = await build(input.toDF())
    .writeStream.format('memory').queryName(name).outputMode(mode)
    .option('checkpointLocation', mkdtempSync(join(tmpdir(), 'sluice-sql-')))
    .start();
  for (const rows of steps) {
    input.addData(rows);
    await q.processAllAvailable();
  }
  await q.stop();
  const table = s.memoryTable(name);
  return q.recentProgress.map((p) => table.batches.get(p.batchId) ?? []);
}

const kafkaSchema = 'key BINARY, value BINARY, topic STRING, partition INT, offset BIGINT, timestamp TIMESTAMP';
const kafkaRow = (key: string, value: unknown, i: number): Row => ({
  key: Buffer.from(key), value: Buffer.from(JSON.stringify(value)), topic: 'events', partition: 0, offset: i, timestamp: t(`2025-01-01T12:0${i}:00Z`),
});

describe("the issue's snippets run unchanged", () => {
  it('selectExpr("CAST(key AS STRING)", "CAST(value AS STRING)") on a Kafka-shaped stream', async () => {
    const s = newSession('snippet1');
    const out = await runStream(s, kafkaSchema, (df) => df.selectExpr('CAST(key AS STRING)', 'CAST(value AS STRING)'), [[kafkaRow('u1', { a: 1 }, 0)]]);
    expect(out).toEqual([[{ key: 'u1', value: '{"a":1}' }]]);
    // Same plan as the column functions.
    const input = s.memoryStream(kafkaSchema).toDF();
    expect(input.selectExpr('CAST(key AS STRING)', 'CAST(value AS STRING)').plan).toEqual(input.select(col('key').cast('string'), col('value').cast('string')).plan);
  });

  it('selectExpr("partition", "offset") names the Kafka columns: offset is not a reserved word (Spark\'s default parser)', async () => {
    // Why: OFFSET was reserved (for LIMIT … OFFSET), so selectExpr('offset') failed to parse on a Kafka stream.
    const s = newSession('offset');
    const out = await runStream(s, kafkaSchema, (df) => df.selectExpr('partition', 'offset', 'offset + 1 AS next'), [[kafkaRow('u1', {}, 3)]]);
    expect(out).toEqual([[{ partition: 0, offset: 3, next: 4 }]]);
  });

  it('selectExpr("CAST(user AS STRING) AS key", "to_json(struct(*)) AS value")', async () => {
    const df = session.createDataFrame([{ user: 7, action: 'click', ts: t('2025-01-01T12:00:00Z') }], 'user INT, action STRING, ts TIMESTAMP');
    const sqlDf = df.selectExpr('CAST(user AS STRING) AS key', 'to_json(struct(*)) AS value');
    expect(await sqlDf.collect()).toEqual([{ key: '7', value: '{"user":7,"action":"click","ts":"2025-01-01T12:00:00.000Z"}' }]);
    expect(sqlDf.plan).toEqual(df.select(col('user').cast('string').alias('key'), to_json(struct('*')).alias('value')).plan);
  });

  it('selectExpr("from_json(json, \'user STRING\') as data")', async () => {
    const df = session.createDataFrame([{ json: '{"user":"ada","x":1}' }, { json: 'not json' }], 'json STRING');
    const sqlDf = df.selectExpr("from_json(json, 'user STRING') as data");
    // 'not json' in Spark 3.5's PERMISSIVE mode: a struct of nulls, not a null struct.
    expect(await sqlDf.collect()).toEqual([{ data: { user: 'ada' } }, { data: { user: null } }]);
    expect((await sqlDf.schema()).simpleString()).toBe('struct<data:struct<user:string>>');
    expect(sqlDf.plan).toEqual(df.select(from_json(col('json'), 'user STRING').alias('data')).plan);
  });

  it('the join condition parses, and evaluates on one row that has all four columns', async () => {
    const cond = expr('clickAdId = impressionAdId AND clickTime >= impressionTime AND clickTime <= impressionTime + interval 1 hour');
    const rows = session.createDataFrame(
      [
        { clickAdId: 1, impressionAdId: 1, clickTime: t('2025-01-01T12:30:00Z'), impressionTime: t('2025-01-01T12:00:00Z') }, // within the hour
        { clickAdId: 1, impressionAdId: 1, clickTime: t('2025-01-01T13:00:00Z'), impressionTime: t('2025-01-01T12:00:00Z') }, // exactly an hour: kept
        { clickAdId: 1, impressionAdId: 1, clickTime: t('2025-01-01T13:00:01Z'), impressionTime: t('2025-01-01T12:00:00Z') }, // too late
        { clickAdId: 1, impressionAdId: 2, clickTime: t('2025-01-01T12:30:00Z'), impressionTime: t('2025-01-01T12:00:00Z') }, // other ad
        { clickAdId: 1, impressionAdId: 1, clickTime: t('2025-01-01T11:59:00Z'), impressionTime: t('2025-01-01T12:00:00Z') }, // before
      ],
      'clickAdId INT, impressionAdId INT, clickTime TIMESTAMP, impressionTime TIMESTAMP',
    );
    expect((await rows.select(cond.alias('match')).collect()).map((r) => r.match)).toEqual([true, true, false, false, false]);
  });
});

describe('strings everywhere Spark takes them', () => {
  it('filter / where strings build the plan of the Column condition', async () => {
    expect(people.filter("city = 'NYC' OR age < 40").plan).toEqual(people.filter(col('city').eq('NYC').or(col('age').lt(40))).plan);
    expect((await people.where('age IS NOT NULL AND age > 40').collect()).map((r) => r.name)).toEqual(['Grace']);
  });

  it('withColumn(name, expr(…))', async () => {
    const df = people.withColumn('decade', expr('CAST(age / 10 AS INT) * 10'));
    expect((await df.collect()).map((r) => r.decade)).toEqual([30, null, 80]);
    expect(df.plan).toEqual(people.withColumn('decade', col('age').divide(10).cast('int').multiply(10)).plan);
  });

  it("agg({ col: 'sum' }), agg(expr('count(*) AS n')), groupBy('name') and df.agg()", async () => {
    const sales = session.createDataFrame(
      [{ shop: 'a', amount: 10 }, { shop: 'b', amount: 5 }, { shop: 'a', amount: 7 }],
      'shop STRING, amount INT',
    );
    const dict = sales.groupBy('shop').agg({ amount: 'sum', '*': 'count' });
    expect(dict.plan).toEqual(sales.groupBy('shop').agg(sum('amount'), count('*')).plan);
    expect(await dict.orderBy('shop').collect()).toEqual([{ shop: 'a', 'sum(amount)': 17, 'count(1)': 2 }, { shop: 'b', 'sum(amount)': 5, 'count(1)': 1 }]);
    const e = sales.groupBy('shop').agg(expr('count(*) AS n'), expr('max(amount)'));
    expect(e.plan).toEqual(sales.groupBy(col('shop')).agg(count('*').alias('n'), max('amount')).plan);
    expect(await e.orderBy('shop').collect()).toEqual([{ shop: 'a', n: 2, 'max(amount)': 10 }, { shop: 'b', n: 1, 'max(amount)': 5 }]);
    expect(await sales.agg({ amount: 'avg' }).collect()).toEqual([{ 'avg(amount)': 22 / 3 }]);
    expect(() => sales.groupBy('shop').agg({ amount: 'upper' })).toThrow(/upper is not an aggregate function/);
  });

  it('selectExpr with only aggregates aggregates the whole input, as Spark', async () => {
    const df = people.selectExpr('count(*) AS n', 'max(age)', 'approx_count_distinct(city) AS cities');
    expect(df.plan).toEqual(people.groupBy().agg(count('*').alias('n'), max('age'), approx_count_distinct('city').alias('cities')).plan);
    expect(await df.collect()).toEqual([{ n: 3, 'max(age)': 85, cities: 2 }]);
    expect(() => people.selectExpr('name', 'count(*)')).toThrow(/`name` is neither in GROUP BY nor inside an aggregate function/);
  });

  it('selectExpr keeps * and s.*, and names columns as Spark does', async () => {
    const df = people.selectExpr('*', 'age + 1', 'age + 1 AS next');
    expect((await df.schema()).fieldNames).toEqual(['name', 'age', 'city', 'ts', 'tags', 'json', '(age + 1)', 'next']);
    expect(await df.selectExpr('name', '`(age + 1)`', 'next').collect()).toEqual([
      { name: 'Ada', '(age + 1)': 37, next: 37 },
      { name: 'Linus', '(age + 1)': null, next: null },
      { name: 'Grace', '(age + 1)': 86, next: 86 },
    ]);
    const nested = people.selectExpr("from_json(json, 'user STRING, n INT') AS j").selectExpr('j.*');
    expect(await nested.collect()).toEqual([{ user: 'u1', n: 3 }, { user: null, n: null }, { user: 'u3', n: null }]);
  });
});

describe('temp views and session.sql()', () => {
  const s = newSession('views');
  const clicks = s.createDataFrame(
    [
      { user: 'ada', page: '/a', ms: 120, ts: t('2025-01-01T12:01:00Z') },
      { user: 'bob', page: '/a', ms: 80, ts: t('2025-01-01T12:02:00Z') },
      { user: 'ada', page: '/b', ms: 300, ts: t('2025-01-01T12:11:00Z') },
      { user: 'cy', page: null, ms: 50, ts: t('2025-01-01T12:12:00Z') },
      { user: 'ada', page: '/a', ms: 100, ts: t('2025-01-01T12:13:00Z') },
    ],
    'user STRING, page STRING, ms INT, ts TIMESTAMP',
  );
  clicks.createOrReplaceTempView('clicks');

  it('SELECT … FROM view WHERE … is the plan of filter + select', async () => {
    const q = s.sql("SELECT user, ms * 2 AS double_ms FROM clicks WHERE page = '/a'");
    expect(q.plan).toEqual(clicks.filter(col('page').eq('/a')).select(col('user'), col('ms').multiply(2).alias('double_ms')).plan);
    expect(await q.collect()).toEqual([{ user: 'ada', double_ms: 240 }, { user: 'bob', double_ms: 160 }, { user: 'ada', double_ms: 200 }]);
    expect(s.sql('SELECT * FROM clicks').plan).toBe(clicks.plan);
    expect(s.sql('select * from CLICKS;').plan).toBe(clicks.plan); // names are case-insensitive; a trailing ; is fine
  });

  it('GROUP BY … HAVING … ORDER BY', async () => {
    const q = s.sql('SELECT user, count(*) AS n, sum(ms) AS total FROM clicks GROUP BY user HAVING count(*) > 1 OR total < 60 ORDER BY n DESC, user');
    expect(await q.collect()).toEqual([{ user: 'ada', n: 3, total: 520 }, { user: 'cy', n: 1, total: 50 }]);
    // The aggregation is the one the DataFrame methods write; HAVING is a filter over its columns.
    const twin = clicks.groupBy('user').agg(count('*').alias('n'), sum('ms').alias('total')).filter(col('n').gt(1).or(col('total').lt(60)))
      .orderBy({ col: 'n', ascending: false }, { col: 'user', ascending: true });
    expect(q.plan).toEqual(twin.plan);
  });

  it('expressions over aggregates, keys by position, aggregates only in HAVING', async () => {
    const q = s.sql('SELECT upper(user) AS who, sum(ms) / count(*) AS avg_ms FROM clicks GROUP BY 1 HAVING max(ms) >= 100 ORDER BY 1');
    // ADA: 120, 300, 100 (max 300 kept); BOB: 80 and CY: 50 fail HAVING max(ms) >= 100.
    expect(await q.collect()).toEqual([{ who: 'ADA', avg_ms: 520 / 3 }]);
    expect((await q.schema()).fieldNames).toEqual(['who', 'avg_ms']);
    const global = s.sql('SELECT count(*), min(ts), max(ms) - min(ms) AS spread FROM clicks');
    expect(await global.collect()).toEqual([{ 'count(1)': 5, 'min(ts)': t('2025-01-01T12:01:00Z'), spread: 250 }]);
  });

  it('GROUP BY window(ts, …): keys named as Spark names them, window.start readable', async () => {
    const q = s.sql("SELECT window.start AS start, user, count(*) AS n FROM clicks GROUP BY window(ts, '10 minutes'), user ORDER BY start, user");
    expect((await q.collect()).map((r) => [(r.start as Date).toISOString().slice(11, 16), r.user, r.n])).toEqual([
      ['12:00', 'ada', 1], ['12:00', 'bob', 1], ['12:10', 'ada', 2], ['12:10', 'cy', 1],
    ]);
  });

  it('DISTINCT, UNION ALL / UNION, view aliases and qualified names, SELECT without FROM', async () => {
    expect(await s.sql('SELECT DISTINCT user FROM clicks ORDER BY user').collect()).toEqual([{ user: 'ada' }, { user: 'bob' }, { user: 'cy' }]);
    const both = s.sql("SELECT user FROM clicks WHERE page = '/b' UNION ALL SELECT user FROM clicks WHERE ms < 90");
    expect((await both.collect()).map((r) => r.user)).toEqual(['ada', 'bob', 'cy']);
    const deduped = s.sql("SELECT user FROM clicks WHERE page = '/a' UNION SELECT user FROM clicks WHERE ms < 90 ORDER BY user");
    expect((await deduped.collect()).map((r) => r.user)).toEqual(['ada', 'bob', 'cy']);
    const aliased = s.sql('SELECT c.user, c.* FROM clicks AS c WHERE c.ms > 200');
    expect(aliased.plan).toEqual(s.sql('SELECT user, * FROM clicks WHERE ms > 200').plan);
    expect(await s.sql("SELECT 1 + 1 AS two, upper('x') AS x").collect()).toEqual([{ two: 2, x: 'X' }]);
  });

  it('errors point into the statement', () => {
    const cases: Array<[string, number, RegExp]> = [
      ['SELECT user, page, count(*) FROM clicks GROUP BY user', 13, /`page` is neither in GROUP BY nor inside an aggregate function: add it to GROUP BY, or aggregate it \(e.g. first\(page\)\)/],
      ['SELECT * FROM nowhere', 14, /Table or view `nowhere` not found \(known: clicks/],
      ['SELECT user FROM clicks WHERE count(*) > 1', 30, /Aggregate functions are not allowed in WHERE .*: use HAVING/],
      ['SELECT user FROM clicks GROUP BY 3', 33, /GROUP BY 3: the SELECT list has 1 item/],
      ['SELECT * FROM clicks GROUP BY user', 7, /\* cannot be selected with GROUP BY/],
      ['SELECT user FROM clicks ORDER BY 2', 33, /ORDER BY 2: there is no SELECT item 2/],
      ['SELECT user FROM clicks WHERE', 29, /expected an expression, found end of input/],
      ['SELECT user clicks more', 19, /expected the end of the query, found 'more'/],
    ];
    for (const [sql, position, message] of cases) {
      let err: SqlError | undefined;
      try {
        s.sql(sql);
      } catch (e) {
        err = e as SqlError;
      }
      expect(err, sql).toBeInstanceOf(SqlError);
      expect(err!.message, sql).toMatch(message);
      expect(err!.position, sql).toBe(position);
      expect(err, sql).toBeInstanceOf(AnalysisError);
    }
  });

  it('refuses statements Sluice cannot run, with the reason', () => {
    const refused: Array<[string, number, RegExp]> = [
      ['INSERT INTO out SELECT * FROM clicks', 0, /INSERT is not supported: session.sql\(\) runs queries. Write a result with df.writeStream/],
      ["CREATE TEMP VIEW v AS SELECT 1", 0, /CREATE is not supported.*createOrReplaceTempView/],
      ['WITH x AS (SELECT 1) SELECT * FROM x', 0, /Common table expressions \(WITH\) are not supported yet/],
      ['SELECT * FROM (SELECT user FROM clicks)', 14, /Subqueries in FROM are not supported: make the inner query a temp view/],
      ['SELECT user FROM clicks WHERE user IN (SELECT user FROM clicks)', 39, /Subqueries .* not supported/],
      ['SELECT user FROM clicks LIMIT 10', 24, /LIMIT is not supported yet/],
      ['SELECT user, row_number() OVER (ORDER BY ts) FROM clicks', 26, /Window functions \(OVER\) are not supported on streams/],
      ['SELECT user FROM clicks INTERSECT SELECT user FROM clicks', 24, /INTERSECT is not supported/],
      ['SELECT * FROM db.clicks', 14, /Sluice has no databases or catalogs/],
      ['DELETE FROM clicks', 0, /DELETE is not supported: streams are append-only/],
    ];
    for (const [sql, position, message] of refused) {
      let err: UnsupportedSqlError | undefined;
      try {
        s.sql(sql);
      } catch (e) {
        err = e as UnsupportedSqlError;
      }
      expect(err, sql).toBeInstanceOf(UnsupportedSqlError);
      expect(err!.message, sql).toMatch(message);
      expect(err!.position, sql).toBe(position);
    }
  });

  it('createTempView refuses a name in use, the catalog lists and drops views', () => {
    const s2 = newSession('catalog');
    const df = s2.createDataFrame([{ a: 1 }], 'a INT');
    df.createTempView('t1');
    expect(() => df.createTempView('T1')).toThrow(/Temporary view 'T1' already exists. Use createOrReplaceTempView/);
    expect(() => df.createOrReplaceTempView('db.t')).toThrow(/view name is letters, digits and underscores/);
    const stream = s2.memoryStream('a INT').toDF();
    stream.createOrReplaceTempView('live');
    expect(s2.catalog.listTables()).toEqual([
      { name: 't1', tableType: 'TEMPORARY', isTemporary: true, isStreaming: false },
      { name: 'live', tableType: 'TEMPORARY', isTemporary: true, isStreaming: true },
    ]);
    expect(s2.sql('SELECT a + 1 AS b FROM live').isStreaming).toBe(true);
    expect(s2.table('LIVE')).toBe(stream);
    expect(s2.catalog.dropTempView('t1')).toBe(true);
    expect(s2.catalog.tableExists('t1')).toBe(false);
    expect(() => s2.sql('SELECT * FROM t1')).toThrow(/Table or view `t1` not found \(known: live\)/);
  });
});

describe('SQL on streams: the same plan and the same batches as the DataFrame methods', () => {
  const at = (hhmm: string): Date => t(`2025-01-01T${hhmm}:00Z`);
  const hm = (d: unknown): string => (d as Date).toISOString().slice(11, 16);

  it('a stateless Kafka-shaped pipeline written with selectExpr and filter strings', async () => {
    const sqlStyle = (df: DataFrame): DataFrame =>
      df.selectExpr('CAST(key AS STRING) AS key', "from_json(CAST(value AS STRING), 'user_id STRING, n INT') AS e")
        .select('key', 'e.*')
        .filter('n > 1 AND user_id IS NOT NULL')
        .withColumn('doubled', expr('n * 2'));
    const fnStyle = (df: DataFrame): DataFrame =>
      df.select(col('key').cast('string').alias('key'), from_json(col('value').cast('string'), 'user_id STRING, n INT').alias('e'))
        .select('key', 'e.*')
        .filter(col('n').gt(1).and(col('user_id').isNotNull()))
        .withColumn('doubled', col('n').multiply(2));
    const s = newSession('stream1');
    const probe = s.memoryStream(kafkaSchema).toDF();
    expect(sqlStyle(probe).plan).toEqual(fnStyle(probe).plan);
    const steps = [[kafkaRow('k1', { user_id: 'u1', n: 1 }, 0), kafkaRow('k2', { user_id: 'u2', n: 5 }, 1)], [kafkaRow('k3', { n: 9 }, 2), kafkaRow('k4', { user_id: 'u4', n: 2 }, 3)]];
    const viaSql = await runStream(s, kafkaSchema, sqlStyle, steps);
    expect(viaSql).toEqual([[{ key: 'k2', user_id: 'u2', n: 5, doubled: 10 }], [{ key: 'k4', user_id: 'u4', n: 2, doubled: 4 }]]);
    expect(await runStream(s, kafkaSchema, fnStyle, steps)).toEqual(viaSql);
  });

  it('session.sql() over a streaming view with a watermark: windows in append mode', async () => {
    const s = newSession('stream2');
    const steps = [
      [{ user: 'a', session: 's1', ts: at('12:07') }, { user: 'b', session: 's2', ts: at('12:08') }, { user: 'a', session: 's3', ts: at('12:09') }],
      [{ user: 'a', session: 's1', ts: at('12:14') }],
      [{ user: 'b', session: 's4', ts: at('12:25') }, { user: 'a', session: 's1', ts: at('12:01') }],
    ];
    const query =
      "SELECT window(ts, '10 minutes') AS w, user, count(*) AS events, approx_count_distinct(session) AS sessions " +
      "FROM events GROUP BY window(ts, '10 minutes'), user";
    const viaSql = (df: DataFrame): DataFrame => {
      df.withWatermark('ts', '5 minutes').createOrReplaceTempView('events');
      return s.sql(query);
    };
    const viaFns = (df: DataFrame): DataFrame =>
      df.withWatermark('ts', '5 minutes').groupBy(window(col('ts'), '10 minutes').alias('w'), 'user')
        .agg(count('*').alias('events'), approx_count_distinct('session').alias('sessions'));
    const probe = s.memoryStream('user STRING, session STRING, ts TIMESTAMP').toDF();
    expect(viaSql(probe).plan).toEqual(viaFns(probe).plan);
    expect(viaSql(probe).isStreaming).toBe(true);
    const show = (batches: Row[][]): string[][] =>
      batches.map((b) => b.map((r) => `${hm((r.w as { start: Date }).start)} ${String(r.user)} ${String(r.events)}/${String(r.sessions)}`));
    const sqlOut = show(await runStream(s, 'user STRING, session STRING, ts TIMESTAMP', viaSql, steps));
    // Watermark after batch 0: 12:09 − 5 = 12:04; after batch 2: 12:14 − 5 = 12:09; after batch 4: 12:25 − 5 = 12:20,
    // which closes 12:10-12:20 (emitted in the no-data batch that follows). 12:00-12:10 closes at 12:10, but
    // 12:01 arrives with watermark 12:09 < 12:10: not late, counted.
    expect(sqlOut).toEqual([[], [], [], [], [], ['12:00 a 3/2', '12:00 b 1/1', '12:10 a 1/1']]);
    expect(show(await runStream(s, 'user STRING, session STRING, ts TIMESTAMP', viaFns, steps))).toEqual(sqlOut);
  });

  it('HAVING on a stream in update mode', async () => {
    const s = newSession('stream3');
    const build = (df: DataFrame): DataFrame => {
      df.createOrReplaceTempView('clicks');
      return s.sql('SELECT user, count(*) AS n FROM clicks GROUP BY user HAVING n >= 2');
    };
    const out = await runStream(s, 'user STRING', build, [[{ user: 'a' }, { user: 'b' }], [{ user: 'a' }], [{ user: 'b' }, { user: 'a' }]], 'update');
    expect(out).toEqual([[], [{ user: 'a', n: 2 }], [{ user: 'a', n: 3 }, { user: 'b', n: 2 }]]);
  });

  it("a memory-sink query's table is readable with session.sql(), as Spark's temp view of it", async () => {
    const s = newSession('stream5');
    await runStream(s, 'user STRING, ms INT', (df) => df.selectExpr('user', 'ms / 1000 AS seconds'), [[{ user: 'a', ms: 1500 }, { user: 'b', ms: 250 }]], 'append', 'timings');
    expect(await s.sql('SELECT user FROM timings WHERE seconds > 1').collect()).toEqual([{ user: 'a' }]);
    expect(s.catalog.listTables()).toEqual([{ name: 'timings', tableType: 'MEMORY', isTemporary: false, isStreaming: false }]);
  });

  it('exact distinct counts are refused on a stream, as the column function is', async () => {
    const s = newSession('stream4');
    const input = s.memoryStream('user STRING').toDF();
    input.createOrReplaceTempView('u');
    const writer = s.sql('SELECT count(DISTINCT user) AS n FROM u').writeStream.format('memory').queryName('x').outputMode('complete')
      .option('checkpointLocation', mkdtempSync(join(tmpdir(), 'sluice-sql-')));
    await expect(writer.start()).rejects.toThrow(
      /exact distinct aggregations are not supported on streams .* approx_count_distinct/,
    );
  });
});

/**
 * The SQL strings of the lessons, run here on in-memory streams (the lessons themselves need Kafka). Lesson 01
 * shows both styles side by side; the strings below are the lesson's, character for character.
 */
describe('SQL strings of the lessons', () => {
  const eventSchema = 'user_id STRING, event_type STRING, timestamp TIMESTAMP, page_url STRING, session_id STRING, country STRING, device_type STRING';
  const event = (i: number, e: Record<string, unknown>): Row => kafkaRow(String(e.user_id ?? 'none'), e, i);

  it('lesson 01: selectExpr + a temp view + session.sql() give the plan and the rows of the column functions', async () => {
    const s = newSession('lesson01');
    // Column functions, as the lesson writes them first.
    const fnStyle = (source: DataFrame): { events: DataFrame; processed: DataFrame } => {
      const events = source
        .select(col('key').cast('string').alias('key'), from_json(col('value').cast('string'), eventSchema).alias('e'))
        .select('key', 'e.*');
      const processed = events
        .filter(col('country').isNotNull())
        .withColumn('event_hour', hour(col('timestamp')))
        .withColumn('event_date', to_date(col('timestamp')))
        .withColumn('is_mobile', col('device_type').isin('mobile', 'tablet'))
        .withColumn('event_category', when(col('event_type').isin('purchase', 'add_to_cart'), lit('commerce')).when(col('event_type').isin('login', 'logout'), lit('account')).otherwise(lit('engagement')));
      return { events, processed };
    };
    // The lesson's SQL cell.
    const sqlStyle = (source: DataFrame): { events: DataFrame; processed: DataFrame } => {
      const eventsSql = source
        .selectExpr('CAST(key AS STRING) AS key', `from_json(CAST(value AS STRING), '${eventSchema}') AS e`)
        .select('key', 'e.*');
      eventsSql.createOrReplaceTempView('lesson01_events');
      const processedSql = s.sql(`
  SELECT *,
         hour(timestamp) AS event_hour,
         to_date(timestamp) AS event_date,
         device_type IN ('mobile', 'tablet') AS is_mobile,
         CASE WHEN event_type IN ('purchase', 'add_to_cart') THEN 'commerce'
              WHEN event_type IN ('login', 'logout') THEN 'account'
              ELSE 'engagement' END AS event_category
  FROM lesson01_events
  WHERE country IS NOT NULL`);
      return { events: eventsSql, processed: processedSql };
    };
    const source = s.memoryStream(kafkaSchema).toDF();
    const viaFns = fnStyle(source);
    const viaSql = sqlStyle(source);
    expect(viaSql.events.plan).toEqual(viaFns.events.plan);
    expect((await viaSql.processed.schema()).treeString()).toBe((await viaFns.processed.schema()).treeString());
    expect(() => s.sql('SELECT user_id, hour(timestamp AS event_hour FROM lesson01_events')).toThrow(
      "Syntax error: expected ',' or ')' to close hour( at column 21, found the keyword AS (at column 32)\n\n" +
        '  SELECT user_id, hour(timestamp AS event_hour FROM lesson01_events\n' +
        '                                 ^\n',
    );

    const rows = [
      event(0, { user_id: 'user_123', event_type: 'page_view', timestamp: '2025-08-22T17:23:54Z', country: 'US', device_type: 'desktop' }),
      event(1, { user_id: 'user_456', event_type: 'purchase', timestamp: '2025-08-22T18:00:00Z', country: 'DE', device_type: 'mobile' }),
      event(2, { user_id: 'user_789', event_type: 'login', timestamp: '2025-08-22T19:30:00Z', device_type: 'tablet' }), // no country: filtered
    ];
    const columns = ['user_id', 'event_hour', 'event_date', 'is_mobile', 'event_category'];
    const sqlOut = await runStream(s, kafkaSchema, (df) => sqlStyle(df).processed.select(...columns), [rows]);
    expect(sqlOut).toEqual([[
      { user_id: 'user_123', event_hour: 17, event_date: '2025-08-22', is_mobile: false, event_category: 'engagement' },
      { user_id: 'user_456', event_hour: 18, event_date: '2025-08-22', is_mobile: true, event_category: 'commerce' },
    ]]);
    expect(await runStream(s, kafkaSchema, (df) => fnStyle(df).processed.select(...columns), [rows])).toEqual(sqlOut);
  });

  it('lesson 04: sliding windows with a watermark, in update mode', async () => {
    const s = newSession('lesson04');
    const build = (df: DataFrame): DataFrame => {
      df.withWatermark('timestamp', '10 minutes').createOrReplaceTempView('user_events');
      return s.sql("SELECT window(timestamp, '10 minutes', '5 minutes') AS window, count(*) AS events FROM user_events GROUP BY 1");
    };
    const twin = (df: DataFrame): DataFrame =>
      df.withWatermark('timestamp', '10 minutes').groupBy(window(col('timestamp'), '10 minutes', '5 minutes').alias('window')).agg(count('*').alias('events'));
    const probe = s.memoryStream('user_id STRING, timestamp TIMESTAMP').toDF();
    expect(build(probe).plan).toEqual(twin(probe).plan);
    const out = await runStream(s, 'user_id STRING, timestamp TIMESTAMP', build, [[{ user_id: 'a', timestamp: t('2025-01-01T12:07:00Z') }]], 'update');
    // 12:07 is in [12:00, 12:10) and [12:05, 12:15).
    expect(out[0]!.map((r) => [(r.window as { start: Date }).start.toISOString().slice(11, 16), r.events])).toEqual([['12:00', 1], ['12:05', 1]]);
  });

  it('lesson 05: approx_count_distinct against the exact count on a batch', async () => {
    const s = newSession('lesson05');
    const ids = Array.from({ length: 300 }, (_, i) => ({ user_id: `u${i % 120}` }));
    s.createDataFrame(ids, 'user_id STRING').createOrReplaceTempView('visits');
    const [r] = await s.sql('SELECT count(DISTINCT user_id) AS exact, approx_count_distinct(user_id) AS approx, approx_count_distinct(user_id, 0.01) AS finer FROM visits').collect();
    expect(r!.exact).toBe(120);
    expect(Math.abs((r!.approx as number) - 120)).toBeLessThanOrEqual(120 * 0.1);
    expect(Math.abs((r!.finer as number) - 120)).toBeLessThanOrEqual(120 * 0.03);
  });
});

describe('README', () => {
  it('the two styles side by side build one plan', async () => {
    const s = newSession('readme');
    const events = s.memoryStream('user INT, ts TIMESTAMP, amount INT, session_id STRING, event_type STRING, user_id STRING').toDF();
    const fns = events
      .select(col('user').cast('string'), col('ts'), col('amount').multiply(2).alias('double'))
      .filter(col('user').neq('bot'))
      .withColumn('due', col('ts').plus(interval('1 hour')))
      .groupBy('user').agg(count('*').alias('n'));
    const sql = events
      .selectExpr('CAST(user AS STRING)', 'ts', 'amount * 2 AS double')
      .filter("user <> 'bot'")
      .withColumn('due', expr('ts + INTERVAL 1 HOUR'))
      .groupBy('user').agg(expr('count(*) AS n'));
    expect(sql.plan).toEqual(fns.plan);
    events.withWatermark('ts', '10 minutes').createOrReplaceTempView('events');
    const perUser = s.sql(`
  SELECT window(ts, '5 minutes') AS window, user_id, count(*) AS events,
         approx_count_distinct(session_id) AS sessions
  FROM events WHERE event_type <> 'heartbeat'
  GROUP BY window(ts, '5 minutes'), user_id`);
    expect(perUser.isStreaming).toBe(true);
    expect(perUser.plan).toEqual(
      events.withWatermark('ts', '10 minutes').filter(col('event_type').neq('heartbeat'))
        .groupBy(window(col('ts'), '5 minutes').alias('window'), 'user_id')
        .agg(count('*').alias('events'), approx_count_distinct('session_id').alias('sessions')).plan,
    );
    expect((await perUser.schema()).fieldNames).toEqual(['window', 'user_id', 'events', 'sessions']);
  });
});
