/**
 * Turns a parsed SELECT into DataFrame calls — alias/join, filter, groupBy().agg(), select, distinct, union,
 * orderBy — so `session.sql()` and `selectExpr()` build the same logical plan a program writes with column
 * functions, and the analyzer, the streaming checks and the state schema see no difference.
 *
 * `FROM a x JOIN b y ON cond` is `a.alias('x').join(b.alias('y'), expr(cond), 'inner')` (a view without an
 * alias is aliased by its name), joins chain left to right, and WHERE / SELECT / GROUP BY / HAVING then read
 * the joined columns (`x.col`, or a bare name both sides do not share).
 *
 * A SELECT with aggregates becomes, as in Spark's analyzer: `groupBy(keys).agg(aggregates)`, then HAVING
 * as a filter, then a projection of the SELECT list over the aggregated columns (left out when the list
 * is just the keys and the aggregates, in that order — the plan a program would write).
 */
import type { DataFrame } from '../api/dataframe.js';
import { lookupAggregate } from '../expr/aggregates.js';
import { Column, Expr, exprName } from '../expr/column.js';
import { splitName } from '../expr/compile.js';
import { timeWindowKind } from '../expr/window.js';
import { DataType } from '../types/index.js';
import type { Query, TableRef } from './statement.js';

/**
 * Reports an error about expression `at` (or the clause as a whole when `at` is undefined); `unsupported`: the
 * SQL is valid, but Sluice does not run it (an UnsupportedSqlError).
 */
export type Fail = (at: Expr | undefined, reason: string, unsupported?: boolean) => never;

/** Where session.sql() finds its inputs. */
export interface SqlEnv {
  /** The temp view (or memory-sink table) `name`; throws, pointing at `pos`, when there is none. */
  table(name: string, pos: number): DataFrame;
  /** A batch DataFrame of one row without columns, for SELECT without FROM. */
  oneRow(): DataFrame;
}

/** Rebuilds `e` top-down: where `f` returns a node, that node replaces the subtree. Unchanged nodes are kept (same object). */
export function transformExpr(e: Expr, f: (e: Expr) => Expr | undefined): Expr {
  const r = f(e);
  if (r) return r;
  const t = (x: Expr): Expr => transformExpr(x, f);
  const all = (xs: Expr[]): Expr[] => {
    const ys = xs.map(t);
    return ys.every((y, i) => y === xs[i]) ? xs : ys;
  };
  switch (e.kind) {
    case 'alias':
    case 'cast':
    case 'not':
    case 'neg':
    case 'isNull':
    case 'field': {
      const child = t(e.child);
      return child === e.child ? e : { ...e, child };
    }
    case 'binary': {
      const left = t(e.left);
      const right = t(e.right);
      return left === e.left && right === e.right ? e : { ...e, left, right };
    }
    case 'in': {
      const child = t(e.child);
      const values = all(e.values);
      return child === e.child && values === e.values ? e : { ...e, child, values };
    }
    case 'case': {
      const branches = e.branches.map(([c, v]): [Expr, Expr] => [t(c), t(v)]);
      const otherwise = e.otherwise && t(e.otherwise);
      const same = branches.every(([c, v], i) => c === e.branches[i]![0] && v === e.branches[i]![1]) && otherwise === e.otherwise;
      return same ? e : { ...e, branches, ...(otherwise ? { otherwise } : {}) };
    }
    case 'fn': {
      const args = all(e.args);
      return args === e.args ? e : { ...e, args };
    }
    default:
      return e;
  }
}

function someExpr(e: Expr, test: (e: Expr) => boolean): boolean {
  let found = false;
  transformExpr(e, (x) => {
    if (!found && test(x)) found = true;
    return found ? x : undefined;
  });
  return found;
}

const isAggregateCall = (e: Expr): e is Extract<Expr, { kind: 'fn' }> => e.kind === 'fn' && lookupAggregate(e.name) !== undefined;
export const containsAggregate = (e: Expr): boolean => someExpr(e, isAggregateCall);

const unalias = (e: Expr): Expr => (e.kind === 'alias' ? e.child : e);

/** Structural equality, with column names compared case-insensitively (as Spark resolves them). */
function same(a: Expr, b: Expr): boolean {
  return keyOf(a) === keyOf(b);
}
function keyOf(e: Expr): string {
  return JSON.stringify(e, function (this: Record<string, unknown>, k, v: unknown) {
    if (v instanceof DataType) return v.simpleString();
    if (k === 'name' && this.kind === 'col' && typeof v === 'string') return v.toLowerCase();
    return v;
  });
}

/** A reference to an output column by its name (back-quoted when the name holds a dot). */
const ref = (name: string): Expr => ({ kind: 'col', name: name.includes('.') ? '`' + name + '`' : name });

/** The name a groupBy key's column gets: its alias, `window` / `session_window`, or Spark's name for the expression. */
function keyName(e: Expr): string {
  return e.kind === 'alias' ? e.name : (timeWindowKind(e) ?? exprName(e));
}

/** The name Spark gives a SELECT item's column. */
function outputName(e: Expr): string {
  return e.kind === 'alias' ? e.name : exprName(e);
}

/**
 * A SELECT list over `df`: a plain projection, or — when it holds aggregates, or `groupBy`/`having` are
 * given — an aggregation. This is selectExpr() and the SELECT part of session.sql().
 */
export function planSelect(df: DataFrame, items: Expr[], groupBy: Expr[], having: Expr | undefined, fail: Fail): DataFrame {
  if (!groupBy.length && !having && !items.some(containsAggregate)) {
    if (items.length === 1 && items[0]!.kind === 'star' && !items[0]!.qualifier) return df; // SELECT *: the input as it is
    return df.select(...items.map((e) => new Column(e)));
  }
  return planAggregate(df, items, groupBy, having, fail);
}

function planAggregate(df: DataFrame, items: Expr[], groupBy: Expr[], having: Expr | undefined, fail: Fail): DataFrame {
  // GROUP BY 2 means the second SELECT item (Spark's groupByOrdinal).
  const keys = groupBy.map((k) => {
    const n = k.kind === 'lit' && typeof k.value === 'number' && Number.isInteger(k.value) ? k.value : undefined;
    if (n === undefined) {
      if (containsAggregate(k)) fail(k, `GROUP BY ${exprName(k)}: an aggregate function cannot be a grouping key`);
      return k;
    }
    const item = items[n - 1];
    if (!item) fail(k, `GROUP BY ${n}: the SELECT list has ${items.length} item(s); positions count from 1`);
    const inner = unalias(item!);
    if (inner.kind === 'star' || containsAggregate(inner)) fail(k, `GROUP BY ${n} refers to ${outputName(item!)}, which cannot be a grouping key`);
    return inner;
  });
  // A key the SELECT list aliases is grouped under that alias (as groupBy(window(…).alias('w')) would).
  const keyExprs = keys.map((k) => items.find((i) => i.kind === 'alias' && same(i.child, k)) ?? k);
  const keyNames = keyExprs.map(keyName);
  const isKeyName = (name: string): boolean => keyNames.some((n) => n.toLowerCase() === name.toLowerCase());

  const aggs: Expr[] = [];
  const aggCalls: Expr[] = [];
  const aggNames: string[] = [];
  const addAggregate = (call: Extract<Expr, { kind: 'fn' }>, alias?: string): string => {
    if (call.args.some(containsAggregate)) fail(call, `${exprName(call)}: an aggregate function cannot contain another one`);
    if (alias === undefined) {
      const i = aggCalls.findIndex((c) => same(c, call));
      if (i >= 0) return aggNames[i]!;
    }
    let name = alias ?? exprName(call);
    // A helper aggregate (inside an expression, or only in HAVING) must not take a name the output uses.
    if (alias === undefined) while (aggNames.includes(name) || isKeyName(name)) name += '_';
    aggs.push(alias === undefined ? call : { kind: 'alias', child: call, name: alias });
    aggCalls.push(call);
    aggNames.push(name);
    return name;
  };
  // Aggregates that are whole SELECT items come first, named by their alias or Spark's name.
  const itemAggregate = items.map((item) => {
    const inner = unalias(item);
    return isAggregateCall(inner) ? addAggregate(inner, item.kind === 'alias' ? item.name : undefined) : undefined;
  });
  /** An expression over the aggregated columns: keys and aggregates become references to their columns. */
  const rewrite = (e: Expr): Expr =>
    transformExpr(e, (x) => {
      const k = keys.findIndex((key) => same(key, x));
      if (k >= 0) return ref(keyNames[k]!);
      if (isAggregateCall(x)) return ref(addAggregate(x));
      if (x.kind === 'star') fail(x, `${outputName(x)} cannot be selected with GROUP BY: list the grouping columns and the aggregates`);
      if (x.kind === 'col') {
        // A grouping key's column, or a field of it (window.start).
        if (isKeyName(splitName(x.name)[0]!)) return x;
        fail(
          x,
          `\`${x.name}\` is neither in GROUP BY nor inside an aggregate function: add it to GROUP BY, or aggregate it (e.g. first(${x.name}))`,
        );
      }
      return undefined;
    });

  const projected = items.map((item, i) => {
    const inner = unalias(item);
    const aggName = itemAggregate[i];
    if (aggName !== undefined) return ref(aggName);
    const k = keys.findIndex((key) => same(key, inner));
    if (k >= 0) return item.kind === 'alias' && item.name !== keyNames[k] ? { kind: 'alias', child: ref(keyNames[k]!), name: item.name } as Expr : ref(keyNames[k]!);
    if (item.kind === 'alias') return { kind: 'alias', child: rewrite(item.child), name: item.name } as Expr;
    const r = rewrite(item);
    // Keep the column's name as written: (sum(x) / count(1)), not the name of the rewritten references.
    return r.kind === 'col' || exprName(r) === exprName(item) ? r : ({ kind: 'alias', child: r, name: exprName(item) } as Expr);
  });

  // HAVING may name a SELECT alias (HAVING n > 1): it stands for that item's expression.
  let havingExpr: Expr | undefined;
  if (having) {
    const withAliases = transformExpr(having, (x) => {
      if (x.kind !== 'col' || isKeyName(splitName(x.name)[0]!)) return undefined;
      const item = items.find((i) => i.kind === 'alias' && i.name.toLowerCase() === x.name.toLowerCase());
      return item ? unalias(item) : undefined;
    });
    havingExpr = rewrite(withAliases);
  }
  // GROUP BY without aggregates still groups (one row per key): count rows, and drop the count.
  if (!aggs.length) addAggregate({ kind: 'fn', name: 'count', args: [{ kind: 'lit', value: 1 }] });

  let out = df.groupBy(...keyExprs.map((k) => new Column(k))).agg(...aggs.map((a) => new Column(a)));
  if (havingExpr) out = out.filter(new Column(havingExpr));
  const asAggregated = [...keyNames, ...aggNames].map((n) => (ref(n) as { name: string }).name);
  const plain = projected.length === asAggregated.length && projected.every((p, i) => p.kind === 'col' && p.name === asAggregated[i]);
  return plain ? out : out.select(...projected.map((p) => new Column(p)));
}

/** Drops a view qualifier (`e.user_id` in `FROM events e` is `user_id`). */
function stripQualifier(e: Expr, qualifier: string | undefined, positions: WeakMap<object, number>): Expr {
  if (!qualifier) return e;
  const q = qualifier.toLowerCase();
  return transformExpr(e, (x) => {
    let out: Expr | undefined;
    if (x.kind === 'col') {
      const parts = splitName(x.name);
      if (parts.length > 1 && parts[0]!.toLowerCase() === q) {
        out = { kind: 'col', name: parts.slice(1).map((p) => (p.includes('.') ? '`' + p + '`' : p)).join('.') };
      }
    } else if (x.kind === 'star' && x.qualifier !== undefined) {
      const parts = splitName(x.qualifier);
      if (parts[0]!.toLowerCase() === q) {
        out = parts.length === 1 ? { kind: 'star' } : { kind: 'star', qualifier: parts.slice(1).join('.') };
      }
    }
    if (out && positions.has(x)) positions.set(out, positions.get(x)!);
    return out;
  });
}

/**
 * In a join, `x.col` where `x` names one of the views (case-insensitively, as Spark) is spelt as that view's
 * qualifier, so that it resolves through df.alias(); `x.*` is that side's columns.
 */
function qualify(e: Expr, qualifiers: string[], positions: WeakMap<object, number>, fail: Fail): Expr {
  const spelling = new Map(qualifiers.map((q) => [q.toLowerCase(), q]));
  return transformExpr(e, (x) => {
    let out: Expr | undefined;
    if (x.kind === 'col') {
      const parts = splitName(x.name);
      const q = parts.length > 1 ? spelling.get(parts[0]!.toLowerCase()) : undefined;
      if (q !== undefined && q !== parts[0]) {
        out = { kind: 'col', name: [q, ...parts.slice(1)].map((p) => (p.includes('.') ? '`' + p + '`' : p)).join('.') };
      }
    } else if (x.kind === 'star' && x.qualifier !== undefined && spelling.has(splitName(x.qualifier)[0]!.toLowerCase())) {
      // `o.*`: the analyzer expands it to the columns of the side aliased `o` (expandProjection).
      const q = spelling.get(splitName(x.qualifier)[0]!.toLowerCase())!;
      if (q !== x.qualifier) out = { kind: 'star', qualifier: q };
    }
    if (out && positions.has(x)) positions.set(out, positions.get(x)!);
    return out;
  });
}

/**
 * The DataFrame of a parsed query: each SELECT over its view (WHERE, then the SELECT list with GROUP BY and
 * HAVING), UNIONs, then ORDER BY. `fail` points at a position in the SQL string.
 */
export function planQuery(query: Query, env: SqlEnv, positions: WeakMap<object, number>, failAt: (pos: number, reason: string, unsupported?: boolean) => never): DataFrame {
  const dfs = query.terms.map((term) => {
    const fail: Fail = (at, reason, unsupported) => failAt((at && positions.get(at)) ?? term.pos, reason, unsupported);
    let df: DataFrame;
    let strip: (e: Expr) => Expr;
    if (term.from && term.joins.length) {
      // Each view is df.alias(alias, or the view's name), as Spark qualifies a view's columns by its name; the
      // joined columns keep their qualifiers, so x.col and bare names resolve as in the DataFrame twin.
      const qualifiers = [term.from, ...term.joins.map((j) => j.table)].map((t) => t.alias ?? t.name);
      strip = (e) => qualify(e, qualifiers, positions, fail);
      const side = (t: TableRef): DataFrame => env.table(t.name, t.pos).alias(t.alias ?? t.name);
      df = side(term.from);
      for (const j of term.joins) {
        const other = side(j.table);
        if (j.on) {
          const on = strip(j.on.value);
          if (containsAggregate(on)) failAt(j.on.pos, 'Aggregate functions are not allowed in a join condition (it compares rows before they are grouped)');
          df = df.join(other, new Column(on), j.how);
        } else if (j.using) {
          df = df.join(other, j.using.map((u) => u.value), j.how);
        } else {
          df = df.join(other, undefined, j.how);
        }
      }
    } else {
      df = term.from ? env.table(term.from.name, term.from.pos) : env.oneRow();
      const q = term.from && (term.from.alias ?? term.from.name);
      strip = (e) => stripQualifier(e, q, positions);
    }
    if (term.where) {
      const where = strip(term.where.value);
      if (containsAggregate(where)) {
        failAt(term.where.pos, 'Aggregate functions are not allowed in WHERE (it filters rows before they are grouped): use HAVING');
      }
      df = df.filter(new Column(where));
    }
    df = planSelect(df, term.items.map((i) => strip(i.value)), term.groupBy.map((g) => strip(g.value)), term.having && strip(term.having.value), fail);
    return term.distinct ? df.distinct() : df;
  });
  let out = dfs[0]!;
  query.unions.forEach((kind, i) => {
    out = out.union(dfs[i + 1]!);
    if (kind === 'distinct') out = out.distinct();
  });
  if (query.orderBy.length) {
    // ORDER BY 1, or an expression the SELECT list computes, sorts by that output column.
    const first = query.terms[0]!;
    const items = first.items.map((i) => i.value);
    // Over a single SELECT with joins, ORDER BY x.col may name a joined column SELECT * kept.
    const qualifiers = query.terms.length === 1 && first.from && first.joins.length ? [first.from, ...first.joins.map((j) => j.table)].map((t) => t.alias ?? t.name) : [];
    const keys = query.orderBy.map(({ value, pos }) => {
      const e = qualifiers.length ? qualify(value.expr, qualifiers, positions, (at, reason, unsupported) => failAt((at && positions.get(at)) ?? pos, reason, unsupported)) : value.expr;
      let key = e;
      if (e.kind === 'lit' && typeof e.value === 'number' && Number.isInteger(e.value)) {
        const item = items[e.value - 1];
        if (!item || item.kind === 'star') failAt(pos, `ORDER BY ${e.value}: there is no SELECT item ${e.value} to sort by`);
        key = ref(outputName(item!));
      } else {
        const item = items.find((i) => same(unalias(i), e));
        if (item) key = ref(outputName(item));
      }
      return { col: new Column(key), ascending: value.ascending };
    });
    out = out.orderBy(...keys);
  }
  return out;
}
