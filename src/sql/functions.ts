/**
 * Function calls in SQL strings. A call is looked up by name in the registries the column functions
 * define (`registerFunction` in expr/compile.ts, the aggregates in expr/aggregates.ts), so a function
 * added there is callable from SQL with no change here; a definition whose column function builds a
 * different node shape says how in its own `fromSql`. What is left in this file is only what has no
 * registry entry: Spark's SQL synonyms, and SQL functions that are expression nodes in Sluice.
 */
import { aggregateNames, lookupAggregate } from '../expr/aggregates.js';
import type { Expr } from '../expr/column.js';
import { functionNames, lookupFunction, type SqlCall } from '../expr/compile.js';
import '../expr/functions.js'; // registers the built-in functions
import '../expr/window.js'; // registers window() and session_window()
import { parseDataType } from '../types/index.js';
import { editDistance } from '../util/editDistance.js';

/** Spark SQL names that Sluice registers under another name. */
const SYNONYMS: Record<string, string> = {
  substr: 'substring',
  ceiling: 'ceil',
  day: 'dayofmonth',
  mean: 'avg',
  ucase: 'upper',
  lcase: 'lower',
  now: 'current_timestamp',
  char_length: 'length',
  character_length: 'length',
  regexp_like: 'rlike',
  regexp: 'rlike',
};

const arity = (c: SqlCall, n: number): void => {
  if (c.args.length !== n) c.fail(`${c.name}() takes ${n} argument(s), got ${c.args.length}`);
};

/** `int(x)`, `string(x)`, …: Spark's cast functions. */
const castTo = (type: string) => (c: SqlCall): Expr => {
  arity(c, 1);
  return { kind: 'cast', child: c.args[0]!, to: parseDataType(type) };
};

/** SQL functions that are expression nodes (not registry functions) in Sluice, or need a fixed shape. */
const SQL_ONLY: Record<string, (c: SqlCall) => Expr> = {
  isnull: (c) => (arity(c, 1), { kind: 'isNull', child: c.args[0]!, negated: false }),
  isnotnull: (c) => (arity(c, 1), { kind: 'isNull', child: c.args[0]!, negated: true }),
  nvl: (c) => (arity(c, 2), { kind: 'fn', name: 'coalesce', args: [...c.args] }),
  ifnull: (c) => (arity(c, 2), { kind: 'fn', name: 'coalesce', args: [...c.args] }),
  if: (c) => (arity(c, 3), { kind: 'case', branches: [[c.args[0]!, c.args[1]!]], otherwise: c.args[2]! }),
  nullif: (c) => (
    arity(c, 2), { kind: 'case', branches: [[{ kind: 'binary', op: '=', left: c.args[0]!, right: c.args[1]! }, { kind: 'lit', value: null }]], otherwise: c.args[0]! }
  ),
  string: castTo('string'),
  int: castTo('int'),
  bigint: castTo('bigint'),
  smallint: castTo('smallint'),
  tinyint: castTo('tinyint'),
  double: castTo('double'),
  float: castTo('float'),
  boolean: castTo('boolean'),
  timestamp: castTo('timestamp'),
  date: castTo('date'),
  binary: castTo('binary'),
  // Spark SQL's from_avro(col, jsonFormatSchema) / to_avro(col[, jsonFormatSchema]). These belong with their
  // definitions in serde/avro.ts (as fromSql); they are here until that file can take them.
  from_avro: (c) => {
    arity(c, 2);
    return { kind: 'fn', name: 'from_avro', args: [c.args[0]!], options: { schema: c.literal<string>(1, 'the Avro schema (JSON text)', 'string') } };
  },
  to_avro: (c) => {
    if (c.args.length < 1 || c.args.length > 2) c.fail(`to_avro() takes a column and an optional Avro schema, got ${c.args.length} argument(s)`);
    const options = c.args.length === 2 ? { schema: c.literal<string>(1, 'the Avro schema (JSON text)', 'string') } : {};
    return { kind: 'fn', name: 'to_avro', args: [c.args[0]!], options };
  },
};

/** Is `name` (a SQL function name, any case) an aggregate function? */
export function isAggregateName(name: string): boolean {
  const n = name.toLowerCase();
  return lookupAggregate(SYNONYMS[n] ?? n) !== undefined;
}

/**
 * Builds the node for the SQL call `call.name(call.args…)`, the same node its column function builds.
 * `distinct` is `count(DISTINCT x)`.
 */
export function sqlCall(call: SqlCall, distinct: boolean): Expr {
  let name = call.name.toLowerCase();
  name = SYNONYMS[name] ?? name;
  if (distinct) {
    if (name !== 'count') {
      call.fail(
        lookupAggregate(name)
          ? `DISTINCT inside ${name}() is not supported; only count(DISTINCT x) is. Deduplicate first (dropDuplicates), then aggregate`
          : `DISTINCT only goes inside an aggregate function such as count(DISTINCT x), not ${name}()`,
      );
    }
    if (call.args.length !== 1) call.fail(`count(DISTINCT …) takes one column in Sluice, got ${call.args.length}`);
    name = 'count_distinct';
  }
  const c: SqlCall = { ...call, name };
  const special = SQL_ONLY[name];
  if (special) return special(c);
  const def = lookupFunction(name) ?? lookupAggregate(name);
  if (def) return def.fromSql ? def.fromSql(c) : { kind: 'fn', name, args: [...c.args] };
  return call.fail(`no such function${suggestion(call.name)}`);
}

/** ` — did you mean from_json()?` for a camelCase name or a near miss, else ''. */
function suggestion(name: string): string {
  const all = [...functionNames(), ...aggregateNames(), ...Object.keys(SYNONYMS), ...Object.keys(SQL_ONLY)].filter((n) => n !== 'get_item');
  const snake = name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
  if (snake !== name.toLowerCase() && all.includes(snake)) return `; SQL names are snake_case: did you mean ${snake}()?`;
  const lower = name.toLowerCase();
  const near = all
    .map((n) => ({ n, d: editDistance(lower, n) }))
    .filter((x) => x.d <= Math.max(1, Math.floor(lower.length / 4)))
    .sort((a, b) => a.d - b.d || a.n.localeCompare(b.n));
  return near.length ? `; did you mean ${near[0]!.n}()?` : '';
}
