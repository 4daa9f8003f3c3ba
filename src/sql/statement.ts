/**
 * SQL statements for `session.sql()`: the SELECT query over one temp view that Sluice can run
 * (SELECT [DISTINCT] … FROM view [WHERE …] [GROUP BY …] [HAVING …], UNION [ALL] of such, ORDER BY),
 * parsed into a small syntax tree that sql/plan.ts turns into DataFrame calls. Everything else is
 * refused here, at its position, with the reason and what to write instead.
 */
import type { Expr } from '../expr/column.js';
import { Parser } from './parser.js';

export interface Positioned<T> {
  readonly value: T;
  /** Offset in the SQL string, for messages. */
  readonly pos: number;
}

/** One SELECT block. */
export interface QuerySpec {
  readonly distinct: boolean;
  readonly items: Array<Positioned<Expr>>;
  readonly from?: { name: string; alias?: string; pos: number };
  readonly where?: Positioned<Expr>;
  readonly groupBy: Array<Positioned<Expr>>;
  readonly having?: Positioned<Expr>;
  readonly pos: number;
}

/** SELECT blocks joined by UNION [ALL], then ORDER BY over the result. */
export interface Query {
  readonly terms: QuerySpec[];
  /** `unions[i]` joins `terms[i]` and `terms[i + 1]`: ALL keeps duplicates, DISTINCT (plain UNION) drops them. */
  readonly unions: Array<'all' | 'distinct'>;
  readonly orderBy: Array<Positioned<{ expr: Expr; ascending: boolean }>>;
}

/** Statements other than queries, with why Sluice does not run them and what to do instead. */
const NOT_QUERIES: Record<string, string> = {
  INSERT: 'INSERT is not supported: session.sql() runs queries. Write a result with df.writeStream (a stream) or collect() it (a batch)',
  CREATE:
    "CREATE is not supported: session.sql() runs queries. Name a DataFrame with df.createOrReplaceTempView('name'); " +
    'a stream is written with df.writeStream',
  DROP: "DROP is not supported: session.sql() runs queries. A temp view is removed with session.catalog.dropTempView('name')",
  ALTER: 'ALTER is not supported: session.sql() runs queries; Sluice has no catalog of tables',
  UPDATE: 'UPDATE is not supported: streams are append-only; derive a new DataFrame instead (withColumn, select)',
  DELETE: 'DELETE is not supported: streams are append-only; filter the rows out instead (WHERE)',
  MERGE: 'MERGE is not supported: streams are append-only; upsert into an external store with foreachBatch',
  TRUNCATE: 'TRUNCATE is not supported: session.sql() runs queries',
  WITH: 'Common table expressions (WITH) are not supported yet: make each one a temp view (df.createOrReplaceTempView) and select from it',
  VALUES: "VALUES is not supported: make rows with session.createDataFrame(rows, 'a INT, b STRING')",
  EXPLAIN: 'EXPLAIN is not supported in SQL: call explain() on the DataFrame session.sql() returns',
  DESCRIBE: 'DESCRIBE is not supported in SQL: call printSchema() on the DataFrame',
  SHOW: 'SHOW is not supported in SQL: session.catalog.listTables() lists the temp views',
  USE: 'USE is not supported: Sluice has no databases, only temp views',
  SET: "SET is not supported in SQL: use session.conf.set('key', value)",
  CACHE: 'CACHE is not supported: Sluice does not cache DataFrames',
  FROM: 'Queries that start with FROM are not supported: write SELECT … FROM …',
  TABLE: "TABLE name is not supported: write SELECT * FROM name",
};

/** Parses a query for session.sql(); throws ParseException / UnsupportedSqlError with positions. */
export function parseQuery(sql: string): { query: Query; parser: Parser } {
  const p = new Parser(sql);
  const first = p.peek();
  if (first.kind === 'word' && !p.isWord('SELECT') && first.upper in NOT_QUERIES) p.unsupported(first.start, NOT_QUERIES[first.upper]!);
  if (first.kind === 'eof') p.fail('a query (SELECT …)');
  const terms = [queryTerm(p)];
  const unions: Query['unions'] = [];
  for (;;) {
    if (p.acceptWord('UNION')) {
      unions.push(p.acceptWord('ALL') ? 'all' : (p.acceptWord('DISTINCT'), 'distinct'));
      terms.push(queryTerm(p));
      continue;
    }
    const setOp = p.peek();
    if (p.isWord('INTERSECT') || p.isWord('EXCEPT') || p.isWord('MINUS')) {
      p.unsupported(setOp.start, `${setOp.upper} is not supported: it needs a join of the two inputs, and Sluice has no joins yet`);
    }
    break;
  }
  const orderBy: Query['orderBy'] = [];
  if (p.acceptWord('ORDER')) {
    p.expectWord('BY', ' after ORDER');
    do {
      const pos = p.peek().start;
      const expr = p.expression();
      const ascending = !p.acceptWord('DESC') && (p.acceptWord('ASC'), true);
      if (p.isWord('NULLS')) p.unsupported(p.peek().start, 'NULLS FIRST/LAST is not supported: nulls sort first ascending and last descending, as Spark\'s default');
      orderBy.push({ value: { expr, ascending }, pos });
    } while (p.acceptOp(','));
  }
  const tail = p.peek();
  for (const w of ['LIMIT', 'OFFSET', 'FETCH']) {
    if (p.isWord(w)) p.unsupported(tail.start, `${w} is not supported yet: Sluice has no limit operator. On a batch, take rows from collect(); on a stream, Spark keeps a count in state`);
  }
  for (const w of ['SORT', 'CLUSTER', 'DISTRIBUTE']) {
    if (p.isWord(w)) p.unsupported(tail.start, `${w} BY is not supported: Sluice does not partition rows by key; use ORDER BY`);
  }
  p.end('the query');
  return { query: { terms, unions, orderBy }, parser: p };
}

function queryTerm(p: Parser): QuerySpec {
  if (p.isOp('(')) {
    p.unsupported(p.peek().start, 'Parenthesised queries are not supported: make the inner query a temp view and select from it');
  }
  const kw = p.expectWord('SELECT');
  const distinct = !!p.acceptWord('DISTINCT');
  if (!distinct) p.acceptWord('ALL');
  const items: QuerySpec['items'] = [];
  do {
    const pos = p.peek().start;
    items.push({ value: p.namedExpression(), pos });
  } while (p.acceptOp(','));

  let from: QuerySpec['from'];
  if (p.acceptWord('FROM')) {
    const t = p.peek();
    if (p.isOp('(')) p.unsupported(t.start, 'Subqueries in FROM are not supported: make the inner query a temp view (df.createOrReplaceTempView) and select from it');
    if (p.isWord('LATERAL')) p.unsupported(t.start, 'LATERAL is not supported');
    const parts = [p.name('a view name after FROM')];
    while (p.acceptOp('.')) parts.push(p.name('a view name'));
    if (parts.length > 1) p.unsupported(t.start, `Sluice has no databases or catalogs: name the temp view alone (FROM ${parts[parts.length - 1]})`);
    let alias: string | undefined;
    if (p.acceptWord('AS')) alias = p.name('an alias for the view');
    else if (p.isName() && !isClauseWord(p)) alias = p.next().text;
    from = { name: parts[0]!, pos: t.start, ...(alias !== undefined ? { alias } : {}) };
    const j = p.peek();
    if (p.isOp(',') || ['JOIN', 'INNER', 'LEFT', 'RIGHT', 'FULL', 'CROSS', 'NATURAL', 'SEMI', 'ANTI'].some((w) => p.isWord(w))) {
      p.unsupported(
        j.start,
        'Joins are not supported yet: Sluice has no join operator. A stream-stream join condition such as ' +
          "expr('clickAdId = impressionAdId AND clickTime <= impressionTime + interval 1 hour') already parses, for when joins exist",
      );
    }
    if (p.isWord('TABLESAMPLE') || p.isWord('PIVOT') || p.isWord('UNPIVOT')) p.unsupported(j.start, `${j.upper} is not supported`);
  }
  const where = p.acceptWord('WHERE') ? positioned(p) : undefined;
  const groupBy: QuerySpec['groupBy'] = [];
  if (p.acceptWord('GROUP')) {
    p.expectWord('BY', ' after GROUP');
    if (p.isWord('GROUPING') || p.isWord('ROLLUP') || p.isWord('CUBE')) p.unsupported(p.peek().start, `${p.peek().upper} is not supported: group by plain expressions`);
    do groupBy.push(positioned(p));
    while (p.acceptOp(','));
    if (p.isWord('WITH')) p.unsupported(p.peek().start, 'WITH ROLLUP / CUBE is not supported: group by plain expressions');
  }
  const having = p.acceptWord('HAVING') ? positioned(p) : undefined;
  if (p.isWord('WINDOW') || p.isWord('QUALIFY')) p.unsupported(p.peek().start, `${p.peek().upper} is not supported: Sluice has no window functions (OVER)`);
  return { distinct, items, groupBy, pos: kw.start, ...(from ? { from } : {}), ...(where ? { where } : {}), ...(having ? { having } : {}) };
}

function positioned(p: Parser): Positioned<Expr> {
  const pos = p.peek().start;
  return { value: p.expression(), pos };
}

/** Words that start the next clause: `FROM events WHERE …` must not read WHERE as the view's alias. */
function isClauseWord(p: Parser): boolean {
  return ['WINDOW', 'QUALIFY', 'LIMIT'].some((w) => p.isWord(w));
}
