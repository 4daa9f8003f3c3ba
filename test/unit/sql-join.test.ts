/**
 * JOIN in session.sql(): each SQL join builds the plan of its DataFrame twin (views become df.alias(alias or
 * view name), the ON condition expr(), USING the list of names) and gives the same rows, on batches and on
 * memory streams (stream-static and stream-stream, the condition character for character); bad JOIN
 * clauses are reported at their position.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AnalysisError, SluiceSession, SqlError, UnsupportedSqlError, col, count, expr, sum } from '../../src/index.js';
import type { DataFrame, OutputMode } from '../../src/index.js';

type Row = Record<string, unknown>;

function newSession(name: string): SluiceSession {
  const s = new SluiceSession(name);
  s.out = () => {};
  s.log = () => {};
  return s;
}

const tmp = (): string => mkdtempSync(join(tmpdir(), 'sluice-sql-join-'));
const show = (v: unknown): string => (v == null ? 'null' : v instanceof Date ? v.toISOString().slice(11, 16) : String(v));

describe('batch joins in session.sql()', () => {
  const s = newSession('sql-join-batch');
  const orders = s.createDataFrame(
    [
      { order_id: 'o1', customer: 'c1', amount: 10 },
      { order_id: 'o2', customer: 'c2', amount: 20 },
      { order_id: 'o3', customer: 'c9', amount: 5 },
      { order_id: 'o4', customer: 'c1', amount: 30 },
      { order_id: 'o5', customer: 'c2', amount: 7 },
    ],
    'order_id STRING, customer STRING, amount INT',
  );
  const customers = s.createDataFrame(
    [
      { customer: 'c1', name: 'Ann', country: 'UK' },
      { customer: 'c2', name: 'Bob', country: 'US' },
      { customer: 'c3', name: 'Cy', country: 'FR' },
    ],
    'customer STRING, name STRING, country STRING',
  );
  const payments = s.createDataFrame(
    [
      { order_id: 'o1', method: 'card' },
      { order_id: 'o2', method: 'cash' },
      { order_id: 'o6', method: 'card' },
    ],
    'order_id STRING, method STRING',
  );
  orders.createOrReplaceTempView('orders');
  customers.createOrReplaceTempView('customers');
  payments.createOrReplaceTempView('payments');
  const o = orders.alias('o');
  const c = customers.alias('c');
  const p = payments.alias('p');

  it('JOIN … ON with aliases is alias() + join(other, expr(on)) + select', async () => {
    const q = s.sql('SELECT o.order_id, c.name FROM orders o JOIN customers AS c ON o.customer = c.customer');
    const twin = o.join(c, expr('o.customer = c.customer')).select(col('o.order_id'), col('c.name'));
    expect(q.plan).toEqual(twin.plan);
    const rows = await q.collect();
    expect(rows).toEqual(await twin.collect());
    expect(rows.map((r) => `${show(r.order_id)}/${show(r.name)}`).sort()).toEqual(['o1/Ann', 'o2/Bob', 'o4/Ann', 'o5/Bob']);
  });

  it('o.* is the columns of the view aliased o (Spark expands a qualified star to that side)', async () => {
    const rows = await s.sql('SELECT O.*, c.name FROM orders o JOIN customers c ON o.customer = c.customer WHERE o.amount > 15').collect();
    // o's columns: order_id, customer (renamed o.customer: both sides have it), amount; then c.name.
    expect(rows.map((r) => Object.keys(r).join(','))).toEqual(['order_id,o.customer,amount,name', 'order_id,o.customer,amount,name']);
    expect(rows.map((r) => `${show(r.order_id)}/${show(r.name)}`).sort()).toEqual(['o2/Bob', 'o4/Ann']);
  });

  // [join keyword(s), the `how` of the twin, order/name of each row (worked out by hand)].
  const types: Array<[string, string, string[]]> = [
    ['JOIN', 'inner', ['o1/Ann', 'o2/Bob', 'o4/Ann', 'o5/Bob']],
    ['INNER JOIN', 'inner', ['o1/Ann', 'o2/Bob', 'o4/Ann', 'o5/Bob']],
    ['LEFT JOIN', 'left', ['o1/Ann', 'o2/Bob', 'o3/null', 'o4/Ann', 'o5/Bob']],
    ['LEFT OUTER JOIN', 'left_outer', ['o1/Ann', 'o2/Bob', 'o3/null', 'o4/Ann', 'o5/Bob']],
    ['RIGHT JOIN', 'right', ['null/Cy', 'o1/Ann', 'o2/Bob', 'o4/Ann', 'o5/Bob']],
    ['RIGHT OUTER JOIN', 'right_outer', ['null/Cy', 'o1/Ann', 'o2/Bob', 'o4/Ann', 'o5/Bob']],
    ['FULL JOIN', 'full', ['null/Cy', 'o1/Ann', 'o2/Bob', 'o3/null', 'o4/Ann', 'o5/Bob']],
    ['FULL OUTER JOIN', 'full_outer', ['null/Cy', 'o1/Ann', 'o2/Bob', 'o3/null', 'o4/Ann', 'o5/Bob']],
    // Semi and anti joins keep the left side's columns only.
    ['LEFT SEMI JOIN', 'left_semi', ['o1/undefined', 'o2/undefined', 'o4/undefined', 'o5/undefined']],
    ['SEMI JOIN', 'semi', ['o1/undefined', 'o2/undefined', 'o4/undefined', 'o5/undefined']],
    ['LEFT ANTI JOIN', 'left_anti', ['o3/undefined']],
    ['anti join', 'anti', ['o3/undefined']],
  ];
  for (const [keywords, how, expected] of types) {
    it(`${keywords} … ON is join(other, expr(on), '${how}')`, async () => {
      const q = s.sql(`SELECT * FROM orders o ${keywords} customers c ON o.customer = c.customer`);
      const twin = o.join(c, expr('o.customer = c.customer'), how);
      expect(q.plan).toEqual(twin.plan);
      const rows = await q.collect();
      expect(rows).toEqual(await twin.collect());
      expect(rows.map((r) => `${show(r.order_id)}/${r.name === undefined ? 'undefined' : show(r.name)}`).sort()).toEqual(expected);
      // Both sides have `customer`: SELECT * shows both, qualified.
      if (!how.includes('semi') && !how.includes('anti')) expect((await q.schema()).fieldNames).toEqual(['order_id', 'o.customer', 'amount', 'c.customer', 'name', 'country']);
    });
  }

  it('CROSS JOIN and JOIN without a condition pair every row, as join(other)', async () => {
    const cross = s.sql('SELECT o.order_id, c.name FROM orders o CROSS JOIN customers c');
    expect(cross.plan).toEqual(o.join(c, undefined, 'cross').select(col('o.order_id'), col('c.name')).plan);
    expect(cross.plan).toEqual(o.crossJoin(c).select(col('o.order_id'), col('c.name')).plan);
    expect(s.sql('SELECT o.order_id, c.name FROM orders o JOIN customers c').plan).toEqual(cross.plan);
    expect(await cross.collect()).toHaveLength(15);
  });

  it('USING (…) is join(other, [names]); a view without an alias is aliased by its name', async () => {
    const q = s.sql('SELECT * FROM orders JOIN customers USING (customer)');
    const twin = orders.alias('orders').join(customers.alias('customers'), ['customer']);
    expect(q.plan).toEqual(twin.plan);
    expect((await q.schema()).fieldNames).toEqual(['customer', 'order_id', 'amount', 'name', 'country']);
    expect(await q.collect()).toEqual(await twin.collect());
    const named = s.sql('SELECT orders.order_id, customers.name FROM orders LEFT JOIN customers USING (customer) WHERE customers.name IS NULL');
    expect(await named.collect()).toEqual([{ order_id: 'o3', name: null }]);
    // Several columns (the plan only: these two views share one).
    expect(s.sql('SELECT * FROM orders o JOIN payments p USING (order_id, customer)').plan).toEqual(o.join(p, ['order_id', 'customer']).plan);
  });

  it('joins chain left to right; WHERE / GROUP BY / HAVING / ORDER BY read the joined columns', async () => {
    const q = s.sql(`
      SELECT c.country, count(*) AS n, sum(o.amount) AS total
      FROM orders o
      JOIN customers c ON o.customer = c.customer
      LEFT JOIN payments p ON o.order_id = p.order_id
      WHERE p.method IS NOT NULL OR o.amount > 15
      GROUP BY c.country
      HAVING count(*) > 1 OR total < 25
      ORDER BY c.country`);
    const twin = o
      .join(c, expr('o.customer = c.customer'))
      .join(p, expr('o.order_id = p.order_id'), 'left')
      .filter(expr('p.method IS NOT NULL OR o.amount > 15'))
      .groupBy(col('c.country'))
      .agg(count('*').alias('n'), sum(col('o.amount')).alias('total'))
      .filter(col('n').gt(1).or(col('total').lt(25)))
      .orderBy(col('country'));
    expect(q.plan).toEqual(twin.plan);
    // o1 (UK, card), o2 (US, cash), o4 (UK, no payment but 30 > 15) pass WHERE; o5 (US, 7, unpaid) does not;
    // o3 has no customer. UK: 2 orders, 40; US: 1 order, 20 (kept by total < 25).
    expect(await q.collect()).toEqual([{ country: 'UK', n: 2, total: 40 }, { country: 'US', n: 1, total: 20 }]);
    expect(await twin.collect()).toEqual(await q.collect());
  });

  it('bare names resolve when only one side has them; a shared one is ambiguous, with the fix', async () => {
    const q = s.sql('SELECT order_id, name, amount * 2 AS doubled FROM orders o JOIN customers c ON o.customer = c.customer WHERE country = \'US\'');
    expect(q.plan).toEqual(o.join(c, expr('o.customer = c.customer')).filter(col('country').eq('US')).select(col('order_id'), col('name'), col('amount').multiply(2).alias('doubled')).plan);
    expect(await q.collect()).toEqual([{ order_id: 'o2', name: 'Bob', doubled: 40 }, { order_id: 'o5', name: 'Bob', doubled: 14 }]);
    const ambiguous = s.sql('SELECT customer FROM orders o JOIN customers c ON o.customer = c.customer');
    await expect(ambiguous.collect()).rejects.toThrow(/Column `customer` is ambiguous: both sides of the join have it, as `o.customer` and `c.customer`/);
    const inCondition = s.sql('SELECT * FROM orders o JOIN customers c ON customer = customer');
    await expect(inCondition.collect()).rejects.toThrow(/Column `customer` is ambiguous[\s\S]*alias\('o'\)/);
  });

  it('qualifiers are case-insensitive, as Spark', () => {
    const lower = s.sql('SELECT o.order_id FROM orders o JOIN customers c ON o.customer = c.customer WHERE c.country = \'UK\'');
    const mixed = s.sql('SELECT O.order_id FROM Orders o JOIN CUSTOMERS c ON O.customer = C.customer WHERE C.country = \'UK\'');
    expect(mixed.plan).toEqual(lower.plan);
  });
});

/** Rows each batch wrote, for a query built over the session's views. */
async function runQuery(s: SluiceSession, df: DataFrame, feed: Array<() => void>, mode: OutputMode = 'append'): Promise<Row[][]> {
  const name = `q${Math.random().toString(36).slice(2)}`;
  const q = await df.writeStream.format('memory').queryName(name).outputMode(mode).option('checkpointLocation', tmp()).start();
  for (const step of feed) {
    step();
    await q.processAllAvailable();
  }
  await q.stop();
  if (q.exception) throw q.exception;
  const table = s.memoryTable(name);
  return q.recentProgress.map((pr) => table.batches.get(pr.batchId) ?? []);
}

describe('stream-static join in session.sql()', () => {
  it('a streaming view LEFT JOIN a static view: the twin\'s plan and batches', async () => {
    const s = newSession('sql-join-stream-static');
    const events = s.memoryStream('event STRING, user_id STRING');
    events.toDF().createOrReplaceTempView('events');
    s.createDataFrame([{ user_id: 'u1', name: 'Ann' }, { user_id: 'u2', name: 'Bob' }], 'user_id STRING, name STRING').createOrReplaceTempView('users');
    const q = s.sql('SELECT e.event, u.name FROM events e LEFT JOIN users u ON e.user_id = u.user_id');
    const twin = s.table('events').alias('e').join(s.table('users').alias('u'), expr('e.user_id = u.user_id'), 'left').select(col('e.event'), col('u.name'));
    expect(q.plan).toEqual(twin.plan);
    expect(q.isStreaming).toBe(true);
    const feed = [
      () => events.addData([{ event: 'e1', user_id: 'u1' }, { event: 'e2', user_id: 'u9' }]),
      () => events.addData([{ event: 'e3', user_id: 'u2' }]),
    ];
    const out = await runQuery(s, q, feed);
    expect(out.map((b) => b.map((r) => `${show(r.event)}:${show(r.name)}`).sort())).toEqual([['e1:Ann', 'e2:null'], ['e3:Bob']]);
  });
});

describe('stream-stream join in session.sql(): the issue\'s condition, character for character', () => {
  const condition = 'clickAdId = impressionAdId AND clickTime >= impressionTime AND clickTime <= impressionTime + interval 1 hour';
  const t = (hhmm: string): Date => new Date(`2025-01-01T${hhmm}:00Z`);

  /** A session with the two streaming views (watermarks set before the views are made), and its feed. */
  function setup(name: string): { s: SluiceSession; feed: Array<() => void> } {
    const s = newSession(name);
    const impressions = s.memoryStream('impressionAdId STRING, impressionTime TIMESTAMP');
    const clicks = s.memoryStream('clickAdId STRING, clickTime TIMESTAMP');
    impressions.toDF().withWatermark('impressionTime', '2 hours').createOrReplaceTempView('impressions');
    clicks.toDF().withWatermark('clickTime', '3 hours').createOrReplaceTempView('clicks');
    // The steps of test/unit/joins.test.ts's left outer trace.
    const feed = [
      () => (impressions.addData([{ impressionAdId: 'A', impressionTime: t('10:00') }]), clicks.addData([{ clickAdId: 'Z', clickTime: t('11:00') }])),
      () => (impressions.addData([{ impressionAdId: 'B', impressionTime: t('13:00') }]), clicks.addData([{ clickAdId: 'B', clickTime: t('13:20') }])),
      () => (impressions.addData([{ impressionAdId: 'C', impressionTime: t('14:30') }]), clicks.addData([{ clickAdId: 'D', clickTime: t('14:00') }])),
      () => clicks.addData([{ clickAdId: 'E', clickTime: t('15:00') }, { clickAdId: 'A', clickTime: t('10:59') }]),
    ];
    return { s, feed };
  }
  const pairs = (batches: Row[][]): string[][] =>
    batches.map((b) => b.map((r) => `${show(r.impressionAdId)}@${show(r.impressionTime)}+${show(r.clickAdId)}@${show(r.clickTime)}`).sort());

  it('inner: SELECT * FROM impressions JOIN clicks ON … is the twin\'s plan and batches', async () => {
    const sql = `SELECT * FROM impressions JOIN clicks ON ${condition}`;
    const viaSql = setup('ss-inner-sql');
    const q = viaSql.s.sql(sql);
    const twinOf = (s: SluiceSession): DataFrame => s.table('impressions').alias('impressions').join(s.table('clicks').alias('clicks'), expr(condition));
    expect(q.plan).toEqual(twinOf(viaSql.s).plan);
    expect(q.isStreaming).toBe(true);
    const out = pairs(await runQuery(viaSql.s, q, viaSql.feed));
    const viaFns = setup('ss-inner-fns');
    expect(pairs(await runQuery(viaFns.s, twinOf(viaFns.s), viaFns.feed))).toEqual(out);
    expect(out.filter((b) => b.length)).toEqual([['B@13:00+B@13:20']]);
  });

  it('LEFT OUTER JOIN: the null row comes out when the watermark passes the impression\'s bound', async () => {
    const sql = `SELECT impressionAdId, impressionTime, clickAdId, clickTime FROM impressions LEFT OUTER JOIN clicks ON ${condition}`;
    const viaSql = setup('ss-left-sql');
    const q = viaSql.s.sql(sql);
    const twinOf = (s: SluiceSession): DataFrame =>
      s.table('impressions').alias('impressions').join(s.table('clicks').alias('clicks'), expr(condition), 'left_outer').select('impressionAdId', 'impressionTime', 'clickAdId', 'clickTime');
    expect(q.plan).toEqual(twinOf(viaSql.s).plan);
    const out = pairs(await runQuery(viaSql.s, q, viaSql.feed));
    const viaFns = setup('ss-left-fns');
    expect(pairs(await runQuery(viaFns.s, twinOf(viaFns.s), viaFns.feed))).toEqual(out);
    // As joins.test.ts worked out: B's pair in batch 2; A's null row in batch 7, after the watermark reached 12:00.
    expect(out.map((b, i) => [i, b]).filter(([, b]) => (b as string[]).length)).toEqual([
      [2, ['B@13:00+B@13:20']],
      [7, ['A@10:00+null@null']],
    ]);
  });

  it('what a stream-stream join needs is still checked at start (a LEFT JOIN without a time range)', async () => {
    const { s } = setup('ss-refused');
    const q = s.sql('SELECT * FROM impressions LEFT JOIN clicks ON clickAdId = impressionAdId');
    await expect(q.writeStream.format('memory').queryName('r').option('checkpointLocation', tmp()).start()).rejects.toThrow(
      /Stream-stream LeftOuter join .* not supported without a watermark in the join keys/,
    );
  });
});

describe('bad JOIN clauses: errors at their position', () => {
  const s = newSession('sql-join-errors');
  s.createDataFrame([{ order_id: 'o1', customer: 'c1' }], 'order_id STRING, customer STRING').createOrReplaceTempView('orders');
  s.createDataFrame([{ customer: 'c1', name: 'Ann' }], 'customer STRING, name STRING').createOrReplaceTempView('customers');

  const catch_ = (sql: string): SqlError | undefined => {
    try {
      s.sql(sql);
    } catch (e) {
      return e as SqlError;
    }
    return undefined;
  };

  it('syntax errors say what was expected', () => {
    const cases: Array<[string, number, RegExp]> = [
      ['SELECT * FROM orders o JOIN', 27, /expected a view name after JOIN, found end of input/],
      ['SELECT * FROM orders o JOIN customers c ON', 42, /expected an expression, found end of input/],
      ['SELECT * FROM orders o JOIN customers c ON o.customer = c.customer AND', 70, /expected an expression after AND/],
      ['SELECT * FROM orders o LEFT OUTER customers c ON o.customer = c.customer', 34, /expected JOIN after LEFT OUTER, found 'customers'/],
      ['SELECT * FROM orders o FULL SEMI JOIN customers c ON o.customer = c.customer', 28, /expected JOIN after FULL, found the keyword SEMI/],
      ['SELECT * FROM orders o JOIN customers c USING customer', 46, /expected '\(' after USING/],
      ['SELECT * FROM orders o JOIN customers c USING (customer', 55, /expected ',' or '\)' to close the USING list opened at column 47, found end of input/],
      ['SELECT * FROM orders o JOIN customers c USING ()', 47, /expected a column name in USING/],
      ['SELECT * FROM orders o JOIN customers c ON o.customer = c.customer JOIN', 71, /expected a view name after JOIN/],
      ['SELECT * FROM orders o JOIN customers c ON o.customer = c.customer GROUP customer', 73, /expected BY after GROUP/],
      ['SELECT * FROM orders o JOIN customers c ON count(*) > 1', 43, /Aggregate functions are not allowed in a join condition/],
    ];
    for (const [sql, position, message] of cases) {
      const err = catch_(sql);
      expect(err, sql).toBeInstanceOf(SqlError);
      expect(err!.message, sql).toMatch(message);
      expect(err!.position, sql).toBe(position);
    }
  });

  it('what Sluice cannot run is refused with the reason', () => {
    const refused: Array<[string, number, RegExp]> = [
      ['SELECT * FROM orders, customers', 20, /A list of views in FROM \(FROM a, b\) is not supported: write FROM a JOIN b ON <condition>/],
      ['SELECT * FROM orders NATURAL JOIN customers', 21, /NATURAL JOIN is not supported: name the shared columns, JOIN b USING \(col1, col2\)/],
      ['SELECT * FROM orders o RIGHT SEMI JOIN customers c ON o.customer = c.customer', 29, /RIGHT SEMI JOIN does not exist in Spark SQL: swap the views and write LEFT SEMI JOIN/],
      ['SELECT * FROM orders o JOIN (SELECT * FROM customers) c ON o.customer = c.customer', 28, /Subqueries and parenthesised joins after JOIN are not supported/],
      ['SELECT * FROM orders JOIN orders ON order_id = order_id', 26, /`orders` names two inputs of the FROM clause \(the first at column 15\): give each an alias/],
      ['SELECT * FROM orders o JOIN customers O ON o.customer = O.customer', 38, /`O` names two inputs of the FROM clause/],
      ['SELECT * FROM orders o JOIN db.customers c ON o.customer = c.customer', 28, /Sluice has no databases or catalogs: name the temp view alone \(JOIN customers\)/],
      ['SELECT * FROM orders o JOIN customers c ON o.customer IN (SELECT customer FROM customers)', 58, /Subqueries \(IN \(SELECT …\)\) are not supported: make the inner query a temp view and join it: `FROM a LEFT SEMI JOIN v/],
      ['SELECT * FROM orders o LATERAL VIEW explode(x) t', 23, /LATERAL is not supported/],
      ['SELECT customer FROM orders EXCEPT SELECT customer FROM customers', 28, /EXCEPT is not supported: make each query a temp view and write SELECT DISTINCT \* FROM a LEFT ANTI JOIN b USING/],
    ];
    for (const [sql, position, message] of refused) {
      const err = catch_(sql);
      expect(err, sql).toBeInstanceOf(UnsupportedSqlError);
      expect(err!.message, sql).toMatch(message);
      expect(err!.position, sql).toBe(position);
    }
  });

  it('an unknown view on the right is reported where it is named', () => {
    const err = catch_('SELECT * FROM orders o JOIN nowhere n ON o.customer = n.customer');
    expect(err).toBeInstanceOf(SqlError);
    expect(err).toBeInstanceOf(AnalysisError);
    expect(err!.position).toBe(28);
    expect(err!.message).toMatch(/Table or view `nowhere` not found \(known: orders, customers\)/);
  });
});
