/**
 * Aggregate functions for `groupBy(...).agg(...)`. Each keeps a buffer that is JSON-serialisable (with
 * the state codec), so that streaming aggregation state can live in the state store between batches.
 */
import { ArrayType, DataType, DoubleType, LongType, NullType, Row, isDecimal, isIntegral, isNumeric } from '../types/index.js';
import { decimalAvg, decimalExtreme, decimalSum } from './decimalAggregates.js';
import { Column, ColumnLike, Expr, colExpr, exprName } from './column.js';
import { AnalysisError, Bound, EvalContext, Evaluator, SqlCall, compile } from './compile.js';
import { compareValues } from './values.js';
import { encodeState } from '../state/codec.js';
import { hllAdd, hllEmpty, hllEstimate, hllMerge, relativeSdToPrecision } from './hll.js';
import type { StructType } from '../types/index.js';

export interface AggregateImpl {
  readonly name: string;
  readonly type: DataType;
  /**
   * How it was written — function, options, and its argument's evaluator and type — so that a worker thread
   * can bind the same aggregate over pre-evaluated arguments (exec/parallel.ts).
   */
  readonly call: { fn: string; options: Record<string, unknown>; arg?: Evaluator; argType?: DataType };
  init(): unknown;
  update(buffer: unknown, row: Row): unknown;
  /**
   * Combines two buffers of the same group: `a` holds rows that came before `b`'s (session windows merge
   * two sessions into one when a new event bridges them). May reuse `a`.
   */
  merge(a: unknown, b: unknown): unknown;
  finish(buffer: unknown): unknown;
}

interface AggregateDef {
  /** Exact distinct aggregates need all values forever: the streaming analyzer refuses them. */
  distinct?: boolean;
  bind(arg: Bound | undefined, options: Record<string, unknown>): Omit<AggregateImpl, 'name' | 'call'>;
  /** How the SQL call becomes the node the column function builds, when not `{ kind: 'fn', name, args }` (see FunctionDef.fromSql). */
  fromSql?(call: SqlCall): Expr;
}

const AGGREGATES = new Map<string, AggregateDef>();

/** The aggregate function of that (SQL) name, if any: how SQL strings find every aggregate. */
export function lookupAggregate(name: string): Pick<AggregateDef, 'fromSql' | 'distinct'> | undefined {
  return AGGREGATES.get(name);
}

/** Names of all aggregate functions, for "did you mean" hints. */
export function aggregateNames(): string[] {
  return [...AGGREGATES.keys()];
}

const agg = (name: string, c: ColumnLike | undefined, options?: Record<string, unknown>): Column =>
  new Column({ kind: 'fn', name, args: c === undefined ? [] : [colExpr(c)], ...(options ? { options } : {}) });

/** Number of rows (`count('*')`) or of non-null values of a column. */
export function count(c: ColumnLike = '*'): Column {
  // Spark names count(*) "count(1)".
  return c === '*' ? new Column({ kind: 'fn', name: 'count', args: [{ kind: 'lit', value: 1 }] }) : agg('count', c);
}
export function sum(c: ColumnLike): Column {
  return agg('sum', c);
}
export function avg(c: ColumnLike): Column {
  return agg('avg', c);
}
export const mean = avg;
export function min(c: ColumnLike): Column {
  return agg('min', c);
}
export function max(c: ColumnLike): Column {
  return agg('max', c);
}
/** The first value seen (in arrival order; Spark's is non-deterministic across partitions). */
export function first(c: ColumnLike): Column {
  return agg('first', c);
}
export function last(c: ColumnLike): Column {
  return agg('last', c);
}
export function collect_list(c: ColumnLike): Column {
  return agg('collect_list', c);
}
export const collectList = collect_list;
export function collect_set(c: ColumnLike): Column {
  return agg('collect_set', c);
}
export const collectSet = collect_set;
/**
 * Approximate number of distinct values (HyperLogLog with HLL++'s linear counting for small counts).
 * `rsd` is the maximum relative standard deviation allowed (Spark's default 0.05); the sketch uses
 * 2^p registers with p chosen as Spark does, for a standard error of 1.04/√(2^p).
 */
export function approx_count_distinct(c: ColumnLike, rsd = 0.05): Column {
  return agg('approx_count_distinct', c, { rsd });
}
export const approxCountDistinct = approx_count_distinct;
/** Exact distinct count: batch only. On a stream it is refused (its state would grow without bound). */
export function count_distinct(c: ColumnLike): Column {
  return agg('count_distinct', c);
}
export const countDistinct = count_distinct;

export function isDistinctAggregate(e: Expr): boolean {
  const inner = e.kind === 'alias' ? e.child : e;
  return inner.kind === 'fn' && AGGREGATES.get(inner.name)?.distinct === true;
}

/** Resolves one `agg(...)` argument: an aggregate function, optionally aliased. */
export function bindAggregate(e: Expr, schema: StructType, ctx: EvalContext): AggregateImpl {
  const alias = e.kind === 'alias' ? e.name : undefined;
  const inner = e.kind === 'alias' ? e.child : e;
  const def = inner.kind === 'fn' ? AGGREGATES.get(inner.name) : undefined;
  if (!def || inner.kind !== 'fn') {
    throw new AnalysisError(
      `agg() takes aggregate functions (count, sum, avg, min, max, …), got ${exprName(e)}. ` +
        'To compute with aggregates (e.g. a ratio), aggregate first, then select() over the result.',
    );
  }
  const arg = inner.args[0] ? compile(inner.args[0], schema, ctx) : undefined;
  const impl = def.bind(arg, inner.options ?? {});
  return {
    ...impl,
    name: alias ?? exprName(inner),
    call: { fn: inner.name, options: inner.options ?? {}, ...(arg ? { arg: arg.eval, argType: arg.type } : {}) },
  };
}

function needArg(name: string, a: Bound | undefined): Bound {
  if (!a) throw new AnalysisError(`${name}() needs a column.`);
  return a;
}

AGGREGATES.set('count', {
  // count(*) is count(1), as the column function writes it (and Spark names it).
  fromSql: (c) => ({ kind: 'fn', name: 'count', args: c.args.length === 1 && c.args[0]!.kind === 'star' && !c.args[0]!.qualifier ? [{ kind: 'lit', value: 1 }] : [...c.args] }),
  bind: (a) => {
    const ev = needArg('count', a).eval;
    return { type: LongType, init: () => 0, update: (b, r) => (ev(r) == null ? b : (b as number) + 1), merge: (x, y) => (x as number) + (y as number), finish: (b) => b };
  },
});

AGGREGATES.set('sum', {
  bind: (a) => {
    const arg = needArg('sum', a);
    if (isDecimal(arg.type)) return decimalSum(arg, arg.type);
    if (!isNumeric(arg.type) && arg.type !== NullType) throw new AnalysisError(`sum() needs a number, but \`${arg.name}\` is ${arg.type.simpleString()}.`);
    const ev = arg.eval;
    return {
      type: isIntegral(arg.type) ? LongType : DoubleType,
      init: () => null,
      update: (b, r) => {
        const v = ev(r) as number | null;
        return v == null ? b : ((b as number | null) ?? 0) + v;
      },
      merge: (x, y) => (x == null ? y : y == null ? x : (x as number) + (y as number)),
      finish: (b) => b,
    };
  },
});

AGGREGATES.set('avg', {
  bind: (a) => {
    const arg = needArg('avg', a);
    if (isDecimal(arg.type)) return decimalAvg(arg, arg.type);
    if (!isNumeric(arg.type) && arg.type !== NullType) throw new AnalysisError(`avg() needs a number, but \`${arg.name}\` is ${arg.type.simpleString()}.`);
    const ev = arg.eval;
    return {
      type: DoubleType,
      init: () => [0, 0],
      update: (b, r) => {
        const v = ev(r) as number | null;
        const [s, n] = b as [number, number];
        return v == null ? b : [s + v, n + 1];
      },
      merge: (x, y) => {
        const [s1, n1] = x as [number, number];
        const [s2, n2] = y as [number, number];
        return [s1 + s2, n1 + n2];
      },
      finish: (b) => {
        const [s, n] = b as [number, number];
        return n === 0 ? null : s / n;
      },
    };
  },
});

function extreme(name: string, keep: (c: number) => boolean): void {
  AGGREGATES.set(name, {
    bind: (a) => {
      const arg = needArg(name, a);
      if (isDecimal(arg.type)) return decimalExtreme(arg, keep);
      const ev = arg.eval;
      return {
        type: arg.type,
        init: () => null,
        update: (b, r) => {
          const v = ev(r);
          return v == null ? b : b == null || keep(compareValues(v, b)) ? v : b;
        },
        merge: (x, y) => (x == null ? y : y == null ? x : keep(compareValues(y, x)) ? y : x),
        finish: (b) => b,
      };
    },
  });
}
extreme('min', (c) => c < 0);
extreme('max', (c) => c > 0);

AGGREGATES.set('first', {
  bind: (a) => {
    const arg = needArg('first', a);
    const ev = arg.eval;
    return { type: arg.type, init: () => ({ set: false, v: null }), update: (b, r) => ((b as { set: boolean }).set ? b : { set: true, v: ev(r) }), merge: (x, y) => ((x as { set: boolean }).set ? x : y), finish: (b) => (b as { v: unknown }).v };
  },
});
AGGREGATES.set('last', {
  bind: (a) => {
    const arg = needArg('last', a);
    const ev = arg.eval;
    // A merged session always has rows on both sides, so the later side's value is the last one.
    return { type: arg.type, init: () => null, update: (_b, r) => ev(r), merge: (_x, y) => y, finish: (b) => b };
  },
});

AGGREGATES.set('collect_list', {
  bind: (a) => {
    const arg = needArg('collect_list', a);
    const ev = arg.eval;
    return {
      type: new ArrayType(arg.type, false),
      init: () => [],
      update: (b, r) => {
        const v = ev(r);
        if (v != null) (b as unknown[]).push(v); // Spark's collect_list skips nulls
        return b;
      },
      merge: (x, y) => [...(x as unknown[]), ...(y as unknown[])],
      // A copy: the state keeps growing this array in later batches, and a row already emitted (to a memory
      // sink, to foreachBatch) must not change with it.
      finish: (b) => (b as unknown[]).slice(),
    };
  },
});

/** The encoded members of each distinct-values buffer, so membership is O(1); rebuilt after a state reload. */
const SEEN = new WeakMap<unknown[], Set<string>>();

function distinctValues(name: string, distinct: boolean, finish: (values: unknown[]) => unknown, type: (t: DataType) => DataType): void {
  AGGREGATES.set(name, {
    distinct,
    bind: (a) => {
      const arg = needArg(name, a);
      const ev = arg.eval;
      return {
        type: type(arg.type),
        init: () => [],
        update: (b, r) => {
          const v = ev(r);
          if (v == null) return b;
          const values = b as unknown[];
          let seen = SEEN.get(values);
          if (!seen) SEEN.set(values, (seen = new Set(values.map((x) => encodeState(x)))));
          const k = encodeState(v);
          if (!seen.has(k)) {
            seen.add(k);
            values.push(v);
          }
          return values;
        },
        merge: (x, y) => {
          const seen = new Set((x as unknown[]).map((v) => encodeState(v)));
          const out = [...(x as unknown[])];
          for (const v of y as unknown[]) {
            const k = encodeState(v);
            if (!seen.has(k)) (seen.add(k), out.push(v));
          }
          return out;
        },
        finish: (b) => finish(b as unknown[]),
      };
    },
  });
}
distinctValues('collect_set', false, (s) => s.slice(), (t) => new ArrayType(t, false));
distinctValues('count_distinct', true, (s) => s.length, () => LongType);

AGGREGATES.set('approx_count_distinct', {
  // approx_count_distinct(col[, relativeSD]): the column function keeps rsd in options.
  fromSql: (c) => {
    if (c.args.length < 1 || c.args.length > 2) c.fail(`approx_count_distinct takes a column and an optional relative standard deviation, got ${c.args.length} argument(s)`);
    const rsd = c.args.length === 2 ? c.literal<number>(1, 'the relative standard deviation', 'number') : 0.05;
    return { kind: 'fn', name: 'approx_count_distinct', args: [c.args[0]!], options: { rsd } };
  },
  bind: (a, options) => {
    const arg = needArg('approx_count_distinct', a);
    const ev = arg.eval;
    const p = relativeSdToPrecision(Number(options.rsd ?? 0.05));
    return {
      type: LongType,
      init: () => hllEmpty(p),
      update: (b, r) => {
        const v = ev(r);
        if (v != null) hllAdd(b as Buffer, v);
        return b;
      },
      merge: (x, y) => hllMerge(x as Buffer, y as Buffer),
      finish: (b) => hllEstimate(b as Buffer),
    };
  },
});
