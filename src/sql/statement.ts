/**
 * SQL statements for `session.sql()`: the SELECT query Sluice can run (SELECT [DISTINCT] … FROM view
 * [[AS] alias] [JOIN view [AS] alias ON … | USING (…)]… [WHERE …] [GROUP BY …] [HAVING …], UNION [ALL] of
 * such, ORDER BY), parsed into a small syntax tree that sql/plan.ts turns into DataFrame calls. Everything
 * else is refused here, at its position, with the reason and what to write instead.
 */
import type { Expr } from '../expr/column.js';
import { Parser } from './parser.js';

export interface Positioned<T> {
  readonly value: T;
  /** Offset in the SQL string, for messages. */
  readonly pos: number;
}

/** A view in FROM or JOIN: `events`, `events AS e`, `events e`. */
export interface TableRef {
  readonly name: string;
  readonly alias?: string;
  /** Offset of the view's name. */
  readonly pos: number;
  /** Offset of the alias, when there is one. */
  readonly aliasPos?: number;
}

/** Join types as `DataFrame.join(other, on, how)` takes them (src/plan/join.ts parseJoinType). */
export type SqlJoinType = 'inner' | 'cross' | 'left_outer' | 'right_outer' | 'full_outer' | 'left_semi' | 'left_anti';

/** `[INNER|LEFT [OUTER]|…] JOIN view [AS] alias [ON condition | USING (c1, c2)]`. */
export interface JoinClause {
  readonly how: SqlJoinType;
  readonly table: TableRef;
  /** The ON condition; neither it nor `using`: every pair (a cross join, or Spark's join without criteria). */
  readonly on?: Positioned<Expr>;
  readonly using?: Array<Positioned<string>>;
  /** Offset of the join's first keyword. */
  readonly pos: number;
}

/** One SELECT block. */
export interface QuerySpec {
  readonly distinct: boolean;
  readonly items: Array<Positioned<Expr>>;
  readonly from?: TableRef;
  /** The joins after the first view, left to right: `a JOIN b … JOIN c …` is `(a ⋈ b) ⋈ c`. */
  readonly joins: JoinClause[];
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
      const anti = setOp.upper !== 'INTERSECT';
      p.unsupported(
        setOp.start,
        `${setOp.upper} is not supported: make each query a temp view and write SELECT DISTINCT * FROM a LEFT ${anti ? 'ANTI' : 'SEMI'} JOIN b ` +
          `USING (col1, col2, …) (unlike ${setOp.upper}, it does not match nulls)`,
      );
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
  const joins: JoinClause[] = [];
  if (p.acceptWord('FROM')) {
    from = tableRef(p, 'FROM');
    for (;;) {
      const join = joinClause(p);
      if (!join) break;
      joins.push(join);
    }
    const j = p.peek();
    if (p.isWord('TABLESAMPLE') || p.isWord('PIVOT') || p.isWord('UNPIVOT')) p.unsupported(j.start, `${j.upper} is not supported`);
    // The same name twice would give both sides one qualifier, and `x.col` could not say which side it means.
    const seen = new Map<string, TableRef>();
    for (const t of [from, ...joins.map((jc) => jc.table)]) {
      const q = (t.alias ?? t.name).toLowerCase();
      const first = seen.get(q);
      if (first) {
        p.unsupported(
          t.aliasPos ?? t.pos,
          `\`${t.alias ?? t.name}\` names two inputs of the FROM clause (the first at ${p.whereIs(first.aliasPos ?? first.pos)}): give each an alias of its own ` +
            `(FROM ${first.name} a JOIN ${t.name} b ON …), and qualify columns with it (a.col, b.col)`,
        );
      }
      seen.set(q, t);
    }
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
  return { distinct, items, joins, groupBy, pos: kw.start, ...(from ? { from } : {}), ...(where ? { where } : {}), ...(having ? { having } : {}) };
}

/** A view after FROM or JOIN, with its alias; subqueries, LATERAL and database-qualified names are refused. */
function tableRef(p: Parser, after: string): TableRef {
  const t = p.peek();
  if (p.isOp('(')) {
    p.unsupported(
      t.start,
      after === 'FROM'
        ? 'Subqueries in FROM are not supported: make the inner query a temp view (df.createOrReplaceTempView) and select from it'
        : 'Subqueries and parenthesised joins after JOIN are not supported: make the inner query a temp view (df.createOrReplaceTempView) and join it',
    );
  }
  if (p.isWord('LATERAL')) p.unsupported(t.start, 'LATERAL is not supported');
  const parts = [p.name(`a view name after ${after}`)];
  while (p.acceptOp('.')) parts.push(p.name('a view name'));
  if (parts.length > 1) p.unsupported(t.start, `Sluice has no databases or catalogs: name the temp view alone (${after} ${parts[parts.length - 1]})`);
  if (p.isOp('(')) {
    p.unsupported(t.start, `Table-valued functions (${parts[0]}(…)) are not supported: name a temp view (df.createOrReplaceTempView)`);
  }
  let alias: string | undefined;
  const aliasPos = p.isWord('AS') ? p.peek(1).start : p.peek().start;
  if (p.acceptWord('AS')) alias = p.name('an alias for the view');
  else if (p.isName() && !isClauseWord(p)) alias = p.next().text;
  return { name: parts[0]!, pos: t.start, ...(alias !== undefined ? { alias, aliasPos } : {}) };
}

/**
 * One `… JOIN view [AS] alias [ON … | USING (…)]`, or undefined when the FROM clause has no more joins. Join
 * types as Spark's grammar (SqlBaseParser.g4 `joinType`): INNER, CROSS, LEFT [OUTER], RIGHT [OUTER],
 * FULL [OUTER], [LEFT] SEMI, [LEFT] ANTI.
 */
function joinClause(p: Parser): JoinClause | undefined {
  const first = p.peek();
  if (p.isOp(',')) {
    p.unsupported(
      first.start,
      'A list of views in FROM (FROM a, b) is not supported: write FROM a JOIN b ON <condition> ' +
        '(Spark turns a WHERE over the list into the join condition; Sluice does not, and a stream-stream join needs the condition to bound its state)',
    );
  }
  if (p.isWord('NATURAL')) {
    p.unsupported(first.start, 'NATURAL JOIN is not supported: name the shared columns, JOIN b USING (col1, col2)');
  }
  if (p.isWord('LATERAL')) p.unsupported(first.start, 'LATERAL is not supported');
  let how: SqlJoinType;
  if (p.acceptWord('JOIN')) how = 'inner';
  else {
    if (p.acceptWord('INNER')) how = 'inner';
    else if (p.acceptWord('CROSS')) how = 'cross';
    else if (p.acceptWord('LEFT')) {
      how = p.acceptWord('SEMI') ? 'left_semi' : p.acceptWord('ANTI') ? 'left_anti' : (p.acceptWord('OUTER'), 'left_outer');
    } else if (p.acceptWord('RIGHT')) {
      if (p.isWord('SEMI') || p.isWord('ANTI')) {
        p.unsupported(p.peek().start, `RIGHT ${p.peek().upper} JOIN does not exist in Spark SQL: swap the views and write LEFT ${p.peek().upper} JOIN`);
      }
      p.acceptWord('OUTER');
      how = 'right_outer';
    } else if (p.acceptWord('FULL')) {
      p.acceptWord('OUTER');
      how = 'full_outer';
    } else if (p.acceptWord('SEMI')) how = 'left_semi';
    else if (p.acceptWord('ANTI')) how = 'left_anti';
    else return undefined;
    p.expectWord('JOIN', ` after ${p.sql.slice(first.start, p.peek(-1).end).replace(/\s+/g, ' ').toUpperCase()}`);
  }
  const table = tableRef(p, 'JOIN');
  const base = { how, table, pos: first.start };
  if (p.acceptWord('ON')) return { ...base, on: positioned(p) };
  if (p.acceptWord('USING')) {
    const open = p.expectOp('(', ' after USING (USING (col1, col2))');
    const using: Array<Positioned<string>> = [];
    do {
      const pos = p.peek().start;
      using.push({ value: p.name('a column name in USING (…)'), pos });
    } while (p.acceptOp(','));
    if (!p.acceptOp(')')) p.fail(`',' or ')' to close the USING list opened at ${p.whereIs(open.start)}`);
    return { ...base, using };
  }
  return base;
}

function positioned(p: Parser): Positioned<Expr> {
  const pos = p.peek().start;
  return { value: p.expression(), pos };
}

/** Words that start the next clause: `FROM events WHERE …` must not read WHERE as the view's alias. */
function isClauseWord(p: Parser): boolean {
  return ['WINDOW', 'QUALIFY', 'LIMIT'].some((w) => p.isWord(w));
}
