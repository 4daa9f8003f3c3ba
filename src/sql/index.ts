/**
 * Spark SQL strings: `expr()`, and the entry points DataFrame and SluiceSession use for `selectExpr()`,
 * `filter('…')` and `session.sql()`. A string parses to the expression tree the column functions build
 * (src/expr/column.ts), so both ways of writing a query give one plan.
 *
 * Module map: lexer.ts (tokens with offsets) → parser.ts (Pratt parser for expressions) → functions.ts
 * (calls resolved through the function registries) · statement.ts (SELECT … FROM view [JOIN view …] …) → plan.ts
 * (DataFrame calls) · errors.ts (messages with a caret under the position).
 */
import type { DataFrame } from '../api/dataframe.js';
import { AnalysisError } from '../expr/compile.js';
import { Column, Expr, colExpr } from '../expr/column.js';
import type { SqlCall } from '../expr/compile.js';
import { SqlError, UnsupportedSqlError } from './errors.js';
import { isAggregateName, sqlCall } from './functions.js';
import { Parser, parseExpression, parseNamedExpression } from './parser.js';
import { SqlEnv, planQuery, planSelect } from './plan.js';
import { parseQuery } from './statement.js';

export { ParseException, SqlError, UnsupportedSqlError } from './errors.js';
export { parseExpression, parseNamedExpression } from './parser.js';
export type { SqlEnv } from './plan.js';

/**
 * A column from a Spark SQL expression, as PySpark's `expr()`: `expr("count(*) AS n")`,
 * `expr("clickTime <= impressionTime + interval 1 hour")`, `expr("CASE WHEN x > 0 THEN 'pos' ELSE 'neg' END")`.
 * Throws a {@link ParseException} pointing at the position when the string does not parse.
 */
export function expr(sql: string): Column {
  return new Column(parseNamedExpression(sql));
}

/** A filter condition written in SQL (`"country = 'US' AND age > 18"`); no alias allowed. */
export function conditionFromSql(sql: string): Column {
  return new Column(parseExpression(sql));
}

/**
 * `df.selectExpr(...)`: each string is one SELECT item (`"CAST(key AS STRING) AS key"`, `"s.*"`,
 * `"count(*) AS n"`). With aggregates and no other columns it is a global aggregation, as in Spark.
 */
export function selectExprs(df: DataFrame, items: string[]): DataFrame {
  if (!items.length) throw new AnalysisError('selectExpr() needs at least one expression.');
  const parsed: Array<{ text: string; e: Expr; parser: Parser }> = items.map((text) => {
    const parser = new Parser(text);
    const e = parser.namedExpression();
    parser.end('the expression');
    return { text, e, parser };
  });
  return planSelect(df, parsed.map((p) => p.e), [], undefined, (at, reason) => {
    // Point into the string that holds the offending node.
    for (const p of parsed) {
      const pos = at && p.parser.positionOf(at);
      if (pos !== undefined) throw new SqlError(p.text, pos, reason);
    }
    throw new AnalysisError(`selectExpr(${items.map((i) => JSON.stringify(i)).join(', ')}): ${reason}`);
  });
}

/** `session.sql(query)`: a SELECT over temp views and their joins, as a DataFrame (streaming when a view it reads is). */
export function sqlQuery(sql: string, env: SqlEnv): DataFrame {
  const { query, parser } = parseQuery(sql);
  return planQuery(query, env, parser.positions, (pos, reason, unsupported) => {
    throw unsupported ? new UnsupportedSqlError(sql, pos, reason) : new SqlError(sql, pos, reason);
  });
}

/**
 * `agg({ age: 'max', '*': 'count' })`, PySpark's dictionary form: each entry is the aggregate function of
 * that SQL name over that column, named as Spark names it (`max(age)`, `count(1)`).
 */
export function aggregatesFromDict(spec: Record<string, string>): Column[] {
  const entries = Object.entries(spec);
  if (!entries.length) throw new AnalysisError('agg({}) needs at least one column: function entry, e.g. { amount: "sum" }.');
  return entries.map(([column, fn]) => {
    const say = `agg({ ${JSON.stringify(column)}: ${JSON.stringify(fn)} })`;
    if (!isAggregateName(fn)) throw new AnalysisError(`${say}: ${fn} is not an aggregate function (count, sum, avg, min, max, first, last, collect_list, collect_set, approx_count_distinct, …).`);
    const call: SqlCall = {
      name: fn,
      args: [colExpr(column)],
      fail(message: string): never {
        throw new AnalysisError(`${say}: ${message}`);
      },
      literal(): never {
        throw new AnalysisError(`${say}: the dictionary form takes no arguments besides the column`);
      },
    };
    return new Column(sqlCall(call, false));
  });
}
