/**
 * SQL strings parse to the expression tree the column functions build (deep equality of `.expr`), and
 * errors point at the right place. Running the same constructs is in sql-run.test.ts.
 */
import { describe, expect, it } from 'vitest';
import {
  Column, ParseException, SluiceSession, UnsupportedSqlError, abs, approx_count_distinct, avg, coalesce, col, collect_list, collect_set, concat,
  count, countDistinct, current_date, current_timestamp, date_format, dayofmonth, expr, first, from_json, from_unixtime, hour, interval, last,
  lit, lower, max, min, regexp_extract, round, session_window, split, struct, substring, sum, to_date, to_json, to_timestamp,
  unix_timestamp, upper, when, window, year,
} from '../../src/index.js';
import { aggregateNames } from '../../src/expr/aggregates.js';
import { functionNames } from '../../src/expr/compile.js';

/** [SQL, its column-function twin]. */
type Case = [string, Column];

const cases: Record<string, Case[]> = {
  literals: [
    ['42', lit(42)],
    ['-7', lit(-7)],
    ['3000000000', lit(3_000_000_000)],
    ['1.5', lit(1.5)],
    ['1.0', lit(1).cast('double')],
    ['1e3', lit(1000).cast('double')],
    ['10L', lit(10).cast('bigint')],
    ['2S', lit(2).cast('smallint')],
    ['2.5D', lit(2.5)],
    ["'it''s'", lit('its')], // adjacent strings concatenate, as in Spark
    ['"double quoted"', lit('double quoted')],
    ["'tab\\there'", lit('tab\there')],
    ["'50\\%'", lit('50\\%')], // LIKE escapes are kept
    ['TRUE', lit(true)],
    ['false', lit(false)],
    ['NULL', lit(null)],
    ["X'CAFE'", lit(Buffer.from([0xca, 0xfe]))],
    ["TIMESTAMP '2025-08-22 17:23:54'", lit(new Date('2025-08-22T17:23:54Z'))],
    ["timestamp '2025-08-22T17:23:54+02:00'", lit(new Date('2025-08-22T15:23:54Z'))],
    ["DATE '2025-8-2'", lit('2025-08-02').cast('date')],
    ['INTERVAL 1 HOUR', interval('1 hour')],
    ['interval 10 minutes', interval('10 minutes')],
    ["INTERVAL '1' HOUR", interval('1 hour')],
    ['INTERVAL 1 DAY 2 HOURS', interval('1 day 2 hours')],
    ["INTERVAL '1 hour 30 minutes'", interval('90 minutes')],
    ['INTERVAL -5 SECONDS', interval('-5 seconds')],
    ['INTERVAL 1.5 SECONDS', interval('1500 milliseconds')],
    ['INTERVAL 2 MONTHS', interval('2 months')],
  ],
  names: [
    ['user_id', col('user_id')],
    ['`my col`', col('my col')],
    ['`key`', col('key')],
    ['a.b.c', col('a.b.c')],
    ['`a.b`.c', col('`a.b`.c')],
    ['window.start', col('window.start')],
    ['window.end', col('window.end')], // END is a keyword, but not after a dot
    ['timestamp', col('timestamp')], // a keyword that is also a common column name
    ['date', col('date')],
    ['value', col('value')],
    ['*', col('*')],
    ['s.*', col('s.*')],
    ['a.b.*', col('a.b.*')],
    ['arr[0]', col('arr').getItem(0)],
    ["m['k']", col('m').getItem('k')],
    ["from_json(j, 'a INT').a", from_json(col('j'), 'a INT').getField('a')],
    ["window(ts, '5 minutes').end", window(col('ts'), '5 minutes').getField('end')],
  ],
  arithmetic: [
    ['a + b * c', col('a').plus(col('b').multiply(col('c')))],
    ['(a + b) * c', col('a').plus(col('b')).multiply(col('c'))],
    ['a - b - c', col('a').minus(col('b')).minus(col('c'))],
    ['a / 2 % 3', col('a').divide(2).mod(3)],
    ['-a', col('a').negate()],
    ['- -a', col('a').negate().negate()],
    ['a - -1', col('a').minus(-1)],
    ['+a', col('a')],
    ["first_name || ' ' || last_name", concat(concat('first_name', lit(' ')), 'last_name')],
    ['ts + INTERVAL 1 HOUR', col('ts').plus(interval('1 hour'))],
    ['ts - interval 10 minutes', col('ts').minus(interval('10 minutes'))],
  ],
  comparisons: [
    ['a = 1', col('a').eq(1)],
    ['a == 1', col('a').eq(1)],
    ['a != 1', col('a').neq(1)],
    ['a <> 1', col('a').neq(1)],
    ['a < 1', col('a').lt(1)],
    ['a <= 1', col('a').leq(1)],
    ['a > 1', col('a').gt(1)],
    ['a >= 1', col('a').geq(1)],
    ['a <=> b', col('a').eqNullSafe(col('b'))],
    ['a + 1 > b * 2', col('a').plus(1).gt(col('b').multiply(2))],
  ],
  logic: [
    ['a AND b OR c', col('a').and(col('b')).or(col('c'))],
    ['a OR b AND c', col('a').or(col('b').and(col('c')))],
    ['NOT a = 1 AND b', col('a').eq(1).not().and(col('b'))],
    ['NOT (a OR b)', col('a').or(col('b')).not()],
    ['!a', col('a').not()],
    ['a IS NULL', col('a').isNull()],
    ['a IS NOT NULL', col('a').isNotNull()],
    ['a IS NOT NULL AND b IS NULL', col('a').isNotNull().and(col('b').isNull())],
    ['a IS TRUE', col('a').eqNullSafe(true)],
    ['a IS NOT DISTINCT FROM b', col('a').eqNullSafe(col('b'))],
    ['a IS DISTINCT FROM b', col('a').eqNullSafe(col('b')).not()],
    ["a IN ('x', 'y')", col('a').isin('x', 'y')],
    ['a NOT IN (1, 2)', col('a').isin(1, 2).not()],
    ['a BETWEEN 1 AND 10', col('a').between(1, 10)],
    ['a BETWEEN 1 AND 10 AND b', col('a').between(1, 10).and(col('b'))],
    ['a NOT BETWEEN b - 1 AND b + 1', col('a').between(col('b').minus(1), col('b').plus(1)).not()],
    ["name LIKE 'A%'", col('name').like('A%')],
    ["name NOT LIKE '%x'", col('name').like('%x').not()],
    ["name RLIKE '^A.*'", col('name').rlike('^A.*')],
    ["name REGEXP '^A'", col('name').rlike('^A')],
  ],
  case: [
    ["CASE WHEN a > 0 THEN 'pos' WHEN a < 0 THEN 'neg' ELSE 'zero' END", when(col('a').gt(0), 'pos').when(col('a').lt(0), 'neg').otherwise('zero')],
    ["CASE WHEN a > 0 THEN 'pos' END", when(col('a').gt(0), 'pos')],
    ["CASE device WHEN 'tv' THEN 30 WHEN 'phone' THEN 5 ELSE 10 END", when(col('device').eq('tv'), 30).when(col('device').eq('phone'), 5).otherwise(10)],
    ['if(a > 0, 1, 2)', when(col('a').gt(0), 1).otherwise(2)],
    ['nvl(a, 0)', coalesce(col('a'), lit(0))],
    ['isnull(a)', col('a').isNull()],
  ],
  casts: [
    ['CAST(key AS STRING)', col('key').cast('string')],
    ['cast(value as string)', col('value').cast('string')],
    ['CAST(n AS BIGINT)', col('n').cast('bigint')],
    ['CAST(x AS DECIMAL(10, 2))', col('x').cast('decimal(10,2)')],
    ['CAST(s AS STRUCT<a: INT, b: ARRAY<STRING>>)', col('s').cast('struct<a:int,b:array<string>>')],
    ['CAST(m AS MAP<STRING, INT>)', col('m').cast('map<string,int>')],
    ['CAST(arr AS ARRAY<ARRAY<INT>>)', col('arr').cast('array<array<int>>')],
    ['TRY_CAST(s AS INT)', col('s').cast('int')],
    ['int(s)', col('s').cast('int')],
    ['CAST(a + 1 AS DOUBLE)', col('a').plus(1).cast('double')],
  ],
  functions: [
    ['upper(name)', upper('name')],
    ['LOWER(Name)', lower('Name')],
    ['abs(-x)', abs(col('x').negate())],
    ["from_json(json, 'user STRING')", from_json(col('json'), 'user STRING')],
    ["from_json(CAST(value AS STRING), 'a INT, b ARRAY<STRING>')", from_json(col('value').cast('string'), 'a INT, b ARRAY<STRING>')],
    ['to_json(struct(*))', to_json(struct('*'))],
    ['struct(a, b)', struct('a', 'b')],
    ["window(ts, '10 minutes')", window(col('ts'), '10 minutes')],
    ["window(ts, '10 minutes', '5 minutes')", window(col('ts'), '10 minutes', '5 minutes')],
    ["window(ts, '10 minutes', '10 minutes', '2 minutes')", window(col('ts'), '10 minutes', '10 minutes', '2 minutes')],
    ["session_window(ts, '5 minutes')", session_window(col('ts'), '5 minutes')],
    ["session_window(ts, CASE WHEN device = 'tv' THEN '30 minutes' ELSE '5 minutes' END)", session_window(col('ts'), when(col('device').eq('tv'), '30 minutes').otherwise('5 minutes'))],
    ['current_timestamp()', current_timestamp()],
    ['current_timestamp', current_timestamp()],
    ['CURRENT_DATE', current_date()],
    ['now()', current_timestamp()],
    ["date_format(ts, 'yyyy-MM-dd HH:mm')", date_format(col('ts'), 'yyyy-MM-dd HH:mm')],
    ['to_timestamp(s)', to_timestamp(col('s'))],
    ["to_timestamp(s, 'dd.MM.yyyy')", to_timestamp(col('s'), 'dd.MM.yyyy')],
    ['to_date(ts)', to_date(col('ts'))],
    ['hour(timestamp)', hour(col('timestamp'))],
    ['year(ts)', year('ts')],
    ['day(ts)', dayofmonth('ts')],
    ['unix_timestamp(s)', unix_timestamp(col('s'))],
    ['unix_timestamp()', unix_timestamp()],
    ['from_unixtime(n)', from_unixtime(col('n'))],
    ["split(s, ',')", split(col('s'), ',')],
    ["split(s, ',', 2)", split(col('s'), ',', 2)],
    ['round(x)', round(col('x'))],
    ['round(x, 2)', round(col('x'), 2)],
    ['substring(s, 2, 3)', substring(col('s'), 2, 3)],
    ['substr(s, 2, 3)', substring(col('s'), 2, 3)],
    ["regexp_extract(s, '(\\\\d+)')", regexp_extract(col('s'), '(\\d+)', 1)],
    ['coalesce(a, b, 0)', coalesce('a', 'b', lit(0))],
    ['concat(a, b)', concat('a', 'b')],
  ],
  aggregates: [
    ['count(*)', count('*')],
    ['COUNT(1)', count('*')],
    ['count(user_id)', count('user_id')],
    ['count(DISTINCT user_id)', countDistinct('user_id')],
    ['sum(amount)', sum('amount')],
    ['avg(amount)', avg('amount')],
    ['mean(amount)', avg('amount')],
    ['min(ts)', min('ts')],
    ['max(ts)', max('ts')],
    ['first(x)', first('x')],
    ['last(x)', last('x')],
    ['collect_list(x)', collect_list('x')],
    ['collect_set(x)', collect_set('x')],
    ['approx_count_distinct(session_id)', approx_count_distinct('session_id')],
    ['approx_count_distinct(session_id, 0.01)', approx_count_distinct('session_id', 0.01)],
  ],
  aliases: [
    ['a AS b', col('a').alias('b')],
    ['a b', col('a').alias('b')],
    ['a AS `my b`', col('a').alias('my b')],
    ['count(*) AS n', count('*').alias('n')],
    ['count(*) n', count('*').alias('n')],
    ['CAST(user AS STRING) AS key', col('user').cast('string').alias('key')],
    ["from_json(json, 'user STRING') as data", from_json(col('json'), 'user STRING').alias('data')],
    ['to_json(struct(*)) AS value', to_json(struct('*')).alias('value')],
    ['a + 1 AS date', col('a').plus(1).alias('date')],
  ],
};

describe('SQL expressions parse to the column functions\' expression tree', () => {
  for (const [group, list] of Object.entries(cases)) {
    it(group, () => {
      for (const [sql, twin] of list) expect(expr(sql).expr, sql).toEqual(twin.expr);
    });
  }

  it('the issue\'s snippets', () => {
    expect(expr('clickAdId = impressionAdId AND clickTime >= impressionTime AND clickTime <= impressionTime + interval 1 hour').expr).toEqual(
      col('clickAdId').eq(col('impressionAdId')).and(col('clickTime').geq(col('impressionTime'))).and(col('clickTime').leq(col('impressionTime').plus(interval('1 hour')))).expr,
    );
  });

  it('keeps comments and white space out of the way', () => {
    expect(expr('a /* the a */ +\n  -- one\n  1').expr).toEqual(col('a').plus(1).expr);
  });

  it('finds every registered function and aggregate by its SQL name', () => {
    // Functions are looked up in the registries the column functions fill, not in a list of the parser's own:
    // each registered name is callable (some want other arguments, which is a different message).
    const names = [...functionNames(), ...aggregateNames()].filter((n) => n !== 'get_item');
    expect(names.length).toBeGreaterThan(50);
    for (const name of names) {
      try {
        expr(`${name}(x)`);
      } catch (e) {
        expect((e as Error).message, name).not.toMatch(/no such function/);
      }
    }
    expect(() => expr('no_such_fn(x)')).toThrow(/no such function/);
  });
});

/** The error thrown by `f`. */
function errorOf(f: () => unknown): ParseException {
  try {
    f();
  } catch (e) {
    return e as ParseException;
  }
  throw new Error('expected an error');
}

describe('SQL errors say what was expected, and where', () => {
  const errors: Array<[string, number, RegExp]> = [
    ['CAST(key AS )', 12, /expected a type .*found '\)'/],
    ['upper(key', 9, /expected ',' or '\)' to close upper\( at column 6, found end of input/],
    ['a +', 3, /expected an expression after '\+', found end of input/],
    ['a + * 2', 4, /expected an expression after '\+', found '\*'/],
    ["name = 'oops", 7, /string is not closed: expected ' before the end/],
    ['CASE WHEN a THEN 1', 18, /expected WHEN, ELSE or END to close the CASE at column 1/],
    ['a IN (1, 2', 10, /expected ',' or '\)' to close the IN list opened at column 6/],
    ['a BETWEEN 1 OR 2', 12, /expected AND in BETWEEN … AND …, found the keyword OR/],
    ["fromJson(x, 'a INT')", 0, /fromJson\(\): no such function; SQL names are snake_case: did you mean from_json\(\)\?/],
    ['uper(name)', 0, /no such function; did you mean upper\(\)\?/],
    ["from_json(j, 'a INTT')", 13, /unknown type "intt"/],
    ['from_json(j)', 0, /from_json\(\) takes a column and a schema string, got 1/],
    ['window(ts, 10)', 11, /window duration .* must be a string literal/],
    ['CAST(x AS array<int)', 19, /Syntax error in the type of CAST: expected ">"/],
    ["DATE '2025-02-30'", 5, /'2025-02-30' is not a date/],
    ["TIMESTAMP 'yesterday'", 10, /is not a timestamp/],
    ['INTERVAL 1 FORTNIGHT', 11, /expected an interval unit/],
    ['a AS FROM', 5, /FROM is a keyword; to use it as an alias after AS, quote it: `FROM`/],
    ['a b c', 4, /expected the end of the expression, found 'c'/],
    ['count(DISTINCT a, b)', 0, /count\(DISTINCT …\) takes one column/],
    ['sum(DISTINCT a)', 0, /DISTINCT inside sum\(\) is not supported/],
    ['a # b', 2, /unexpected character '#'/],
    ['10minutes', 2, /after the number 10/],
    ['`unclosed', 0, /quoted name is not closed/],
    ['struct(a).1', 10, /expected a field name after \., found the number 1/],
  ];
  for (const [sql, position, message] of errors) {
    it(`${sql} → position ${position}`, () => {
      const e = errorOf(() => expr(sql));
      expect(e).toBeInstanceOf(ParseException);
      expect(e.message).toMatch(message);
      expect(e.position).toBe(position);
    });
  }

  it('shows the string with a caret under the position, Spark-like but readable', () => {
    const e = errorOf(() => expr('CAST(key AS )'));
    expect(e.message).toBe(
      "Syntax error: expected a type (STRING, INT, TIMESTAMP, ARRAY<…>, STRUCT<…>, MAP<…, …>), found ')' (at column 13)\n\n" +
        '  CAST(key AS )\n' +
        '              ^\n',
    );
    expect([e.line, e.column]).toEqual([1, 13]);
  });

  it('counts lines and columns in a string of several lines', () => {
    const e = errorOf(() => expr('a +\n  b +\n  )'));
    expect([e.position, e.line, e.column]).toEqual([12, 3, 3]);
    expect(e.message).toContain('(at line 3, column 3)\n\n    )\n    ^\n');
  });

  it('refuses what Sluice does not have with the reason, at the place', () => {
    const cases2: Array<[string, number, RegExp]> = [
      ['a IN (SELECT b FROM t)', 6, /Subqueries .* not supported/],
      ['EXISTS (SELECT 1)', 0, /Subqueries \(EXISTS\)/],
      ['row_number() OVER (ORDER BY a)', 13, /Window functions \(OVER\) are not supported on streams/],
      ['a DIV 2', 2, /DIV\) is not in Sluice yet; write floor\(a \/ b\)/],
      ['a & 1', 2, /bitwise operator &/],
      ["INTERVAL '1:30' HOUR TO MINUTE", 9, /is not a number of units/],
      ['INTERVAL 1 HOUR TO MINUTE', 16, /Interval ranges/],
      ["name ILIKE 'a%'", 5, /ILIKE is not in Sluice yet; write lower\(x\) LIKE lower\(pattern\)/],
    ];
    for (const [sql, position, message] of cases2) {
      const e = errorOf(() => expr(sql));
      expect(e.message, sql).toMatch(message);
      expect(e.position, sql).toBe(position);
    }
    expect(errorOf(() => expr('a IN (SELECT b FROM t)'))).toBeInstanceOf(UnsupportedSqlError);
  });

  it('filter strings take a condition, not an alias', () => {
    const s = new SluiceSession('sql-errors');
    const df = s.createDataFrame([{ a: 1 }], 'a INT');
    expect(() => df.filter('a > 1 AS b')).toThrow(/expected the end of the condition \(an alias has no meaning here\), found the keyword AS/);
    expect(() => df.where('a >')).toThrow(ParseException);
  });
});
