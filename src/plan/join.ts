/**
 * Join analysis: the output columns of a join, its equi-join keys, the rest of its condition, and — for a
 * stream-stream join — how each side's buffered rows can be evicted (Spark's StreamingJoinHelper and
 * StreamingSymmetricHashJoinHelper). The operators that run it are in exec/ (operators/streamingJoin.ts for
 * stream-stream; planRunner.ts for stream-static and batch joins).
 *
 * Columns: a join's output is the left side's columns, then the right side's (Spark's order); with
 * `join(other, 'id')` (a USING join) the key columns come first, once. When both sides have a column of the
 * same name, both are kept, named `<qualifier>.<name>` (`o.id`, `p.id`; `left.id`/`right.id` without
 * `df.alias()`), so that no row ever holds two values under one name; a bare `col('id')` is then refused as
 * ambiguous, naming both. (Spark keeps two columns both named `id`; the reference is ambiguous there too.)
 */
import { Expr, exprName } from '../expr/column.js';
import { AnalysisError, Bound, EvalContext, compile } from '../expr/compile.js';
import { CalendarInterval } from '../expr/interval.js';
import { encodeState } from '../state/codec.js';
import { BooleanType, NullType, Row, StructField, StructType, TimestampType } from '../types/index.js';
import { isWindowStruct } from '../expr/window.js';
import { eventTimeMs } from '../types/timestamp.js';
import type { JoinOn, JoinType } from './logical.js';

export type JoinSideName = 'left' | 'right';

/** How a stream-stream join's buffered rows of one side are evicted. */
export type StateEviction =
  /** A watermarked join key (e.g. both sides grouped by a window): evict when the key's time <= the watermark. */
  | { kind: 'key'; time: (row: Row) => number | null }
  /** A time-range condition: evict when this side's event time <= `watermark(W)` (W: the join's input watermark). */
  | { kind: 'value'; time: (row: Row) => number | null; watermark: (W: number) => number };

export interface JoinStage {
  kind: 'join';
  /** Stateful operator id (stream-stream joins only; -1 for a stateless join). */
  id: number;
  how: JoinType;
  /** Which inputs are streams. */
  streaming: { left: boolean; right: boolean };
  /** The equi-join key of a row of each side (encoded), or null when a key value is null (it matches nothing). */
  leftKey?: (row: Row) => string | null;
  rightKey?: (row: Row) => string | null;
  /** The whole condition, on a pair (USING joins: none beyond the keys). */
  matches?: (left: Row, right: Row) => boolean;
  /** The output row of a pair; `null` stands for the missing side of an outer join. */
  combine(left: Row | null, right: Row | null): Row;
  /** Each side's columns as they arrive (the state schema of a stream-stream join). */
  leftSchema: StructType;
  rightSchema: StructType;
  /** Each side's event time (its first watermarked column), by which its late rows are dropped. */
  leftLateTime?: (row: Row) => number | null;
  rightLateTime?: (row: Row) => number | null;
  /** How each side's state is evicted; undefined: kept forever. */
  leftEviction?: StateEviction;
  rightEviction?: StateEviction;
  /** What the condition was, for messages and explain(). */
  description: string;
}

export interface ResolvedJoin {
  schema: StructType;
  stage: Omit<JoinStage, 'id'>;
}

const SEMI_OR_ANTI: JoinType[] = ['left_semi', 'left_anti'];

/** Whether a join keeps `side`'s rows that match nothing, padded with nulls (that side is an outer side). */
export function keepsUnmatched(how: JoinType, side: JoinSideName): boolean {
  return how === 'full_outer' || how === (side === 'left' ? 'left_outer' : 'right_outer');
}

/** Spark's join type names and their aliases, as `join(other, on, how)` takes them. */
export function parseJoinType(how: string): JoinType {
  const h = how.toLowerCase().replace(/[\s_]/g, '');
  const map: Record<string, JoinType> = {
    inner: 'inner', cross: 'inner',
    left: 'left_outer', leftouter: 'left_outer',
    right: 'right_outer', rightouter: 'right_outer',
    outer: 'full_outer', full: 'full_outer', fullouter: 'full_outer',
    semi: 'left_semi', leftsemi: 'left_semi',
    anti: 'left_anti', leftanti: 'left_anti',
  };
  const t = map[h];
  if (!t) {
    throw new AnalysisError(
      `Unsupported join type '${how}'. Supported join types include: 'inner', 'outer', 'full', 'fullouter', 'full_outer', ` +
        "'leftouter', 'left', 'left_outer', 'rightouter', 'right', 'right_outer', 'leftsemi', 'left_semi', 'semi', 'leftanti', 'left_anti', 'anti', 'cross'.",
    );
  }
  return t;
}

/** Resolves a join of two sides whose columns are `left` and `right` (already qualified by df.alias()). */
export function resolveJoin(
  how: JoinType,
  on: JoinOn,
  left: StructType,
  right: StructType,
  streaming: { left: boolean; right: boolean },
  ctx: EvalContext,
): ResolvedJoin {
  const using = 'using' in on ? on.using : undefined;
  if (using) {
    for (const k of using) {
      const missing = [left.field(k) ? '' : 'left', right.field(k) ? '' : 'right'].filter(Boolean);
      if (missing.length) {
        throw new AnalysisError(
          `join(…, '${k}'): USING column \`${k}\` cannot be resolved on the ${missing.join(' and ')} side. ` +
            `Left columns: ${left.fieldNames.join(', ')}; right columns: ${right.fieldNames.join(', ')}.`,
        );
      }
    }
  }
  const leftNullable = how === 'right_outer' || how === 'full_outer';
  const rightNullable = how === 'left_outer' || how === 'full_outer';
  // The columns of a pair, as the condition sees them: every column of both sides, collisions renamed.
  const pairFields = namePairFields(left, right, using ?? []);
  const pairSchema = new StructType(pairFields.map((p) => p.field));
  const toPair = pairMaker(pairFields);

  // Output columns.
  const outFields: StructField[] = [];
  const outMakers: Array<(l: Row | null, r: Row | null) => unknown> = [];
  if (using) {
    for (const k of using) {
      const lf = left.field(k)!;
      outFields.push({ ...lf, nullable: lf.nullable || leftNullable });
      // The key of an outer join's null-padded row comes from the side that has one (Spark coalesces).
      outMakers.push(
        how === 'right_outer' ? (_l, r) => r?.[k] ?? null : how === 'full_outer' ? (l, r) => l?.[k] ?? r?.[k] ?? null : (l) => l?.[k] ?? null,
      );
    }
  }
  for (const p of pairFields) {
    if (p.usingKey) continue;
    if (p.side === 'right' && SEMI_OR_ANTI.includes(how)) continue;
    const nullable = p.side === 'left' ? leftNullable : rightNullable;
    outFields.push(nullable ? { ...p.field, nullable: true } : p.field);
    const src = p.sourceName;
    outMakers.push(p.side === 'left' ? (l) => l?.[src] ?? null : (_l, r) => r?.[src] ?? null);
  }
  const outNames = outFields.map((f) => f.name);
  const combine = (l: Row | null, r: Row | null): Row => {
    const o: Row = {};
    for (let i = 0; i < outNames.length; i++) o[outNames[i]!] = outMakers[i]!(l, r);
    return o;
  };

  // Keys and condition.
  let leftKeys: Bound[] = [];
  let rightKeys: Bound[] = [];
  /** Per key pair: a null-safe equality (`<=>`), where null matches null (Spark's EqualNullSafe keys). */
  const nullSafe: boolean[] = [];
  let matches: ((l: Row, r: Row) => boolean) | undefined;
  let description: string;
  const conjuncts: Expr[] = [];
  if (using) {
    leftKeys = using.map((k) => compile({ kind: 'col', name: '`' + k + '`' }, left, ctx));
    rightKeys = using.map((k) => compile({ kind: 'col', name: '`' + k + '`' }, right, ctx));
    description = `USING (${using.join(', ')})`;
  } else {
    const condition = (on as { condition: Expr }).condition;
    description = exprName(condition);
    let bound: Bound;
    try {
      bound = compile(condition, pairSchema, ctx);
    } catch (e) {
      throw joinConditionError(e, left, right);
    }
    if (bound.type !== BooleanType && bound.type !== NullType) {
      throw new AnalysisError(`join condition ${description} is ${bound.type.simpleString()}, not boolean. Compare columns, e.g. col('o.id').eq(col('p.id')).`);
    }
    const test = bound.eval;
    matches = (l, r) => test(toPair(l, r)) === true;
    flattenAnd(condition, conjuncts);
    for (const c of conjuncts) {
      if (c.kind !== 'binary' || (c.op !== '=' && c.op !== '<=>')) continue;
      const a = sideOf(c.left, left, right, ctx);
      const b = sideOf(c.right, left, right, ctx);
      if (a?.side === 'left' && b?.side === 'right') (leftKeys.push(a.bound), rightKeys.push(b.bound), nullSafe.push(c.op === '<=>'));
      else if (a?.side === 'right' && b?.side === 'left') (leftKeys.push(b.bound), rightKeys.push(a.bound), nullSafe.push(c.op === '<=>'));
    }
  }
  // Keys of different types would encode differently (1 vs '1'); such a pair is left to the condition.
  const keyPairs = leftKeys.map((l, i) => [l, rightKeys[i]!, nullSafe[i] ?? false] as const).filter(([l, r]) => sameKeyType(l, r));
  // A null in an `=` key matches nothing; in a `<=>` key it is a value like any other.
  const keyOf = (bounds: Bound[]): ((row: Row) => string | null) | undefined => {
    if (!bounds.length) return undefined;
    const evs = bounds.map((b) => b.eval);
    const safe = keyPairs.map(([, , ns]) => ns);
    return (row) => {
      const vs = evs.map((ev) => ev(row) ?? null);
      return vs.some((v, i) => v === null && !safe[i]) ? null : encodeState(vs);
    };
  };
  const leftKey = keyOf(keyPairs.map(([l]) => l));
  const rightKey = keyOf(keyPairs.map(([, r]) => r));

  const stage: Omit<JoinStage, 'id'> = {
    kind: 'join',
    how,
    streaming,
    ...(leftKey ? { leftKey, rightKey: rightKey! } : {}),
    ...(matches ? { matches } : {}),
    combine,
    leftSchema: left,
    rightSchema: right,
    description,
  };
  const lateTime = (schema: StructType): ((row: Row) => number | null) | undefined => {
    const f = schema.fields.find((x) => x.watermarkDelayMs !== undefined);
    return f ? timeOf(compile({ kind: 'col', name: '`' + f.name + '`' }, schema, ctx)) : undefined;
  };
  if (streaming.left && streaming.right) {
    const lt = lateTime(left);
    const rt = lateTime(right);
    if (lt) stage.leftLateTime = lt;
    if (rt) stage.rightLateTime = rt;
    // Eviction by a watermarked key (both sides), else by a time range on each side (Spark's rules).
    const keyIndex = keyPairs.findIndex(([l, r]) => l.watermarkDelayMs !== undefined || r.watermarkDelayMs !== undefined);
    if (keyIndex >= 0) {
      stage.leftEviction = { kind: 'key', time: timeOf(keyPairs[keyIndex]![0]) };
      stage.rightEviction = { kind: 'key', time: timeOf(keyPairs[keyIndex]![1]) };
    } else if (!using) {
      const l = rangeEviction('left', conjuncts, left, right, ctx);
      const r = rangeEviction('right', conjuncts, left, right, ctx);
      if (l) stage.leftEviction = l;
      if (r) stage.rightEviction = r;
    }
  }
  return { schema: new StructType(outFields), stage };
}

interface PairField {
  side: JoinSideName;
  /** The column's name on its own side (the key of its value in that side's rows). */
  sourceName: string;
  field: StructField;
  /** A USING key (either side's): output once, first, from the side that has it (coalesced in a full outer join). */
  usingKey: boolean;
}

/** Both sides' columns in one list; names both sides have are renamed `<qualifier>.<name>`. */
function namePairFields(left: StructType, right: StructType, using: string[]): PairField[] {
  // A column renamed by an earlier join (`a.id`) still clashes by its own name: a third side's `id` is renamed too.
  const leftNames = new Set([...left.fieldNames, ...left.fields.flatMap((f) => (f.sideName ? [f.sideName] : []))]);
  const rightNames = new Set([...right.fieldNames, ...right.fields.flatMap((f) => (f.sideName ? [f.sideName] : []))]);
  const out: PairField[] = [];
  const add = (side: JoinSideName, f: StructField, clash: boolean, usingKey: boolean): void => {
    if (!clash) {
      out.push({ side, sourceName: f.name, field: f, usingKey });
      return;
    }
    const q = f.qualifier ?? side;
    out.push({ side, sourceName: f.name, field: { ...f, name: `${q}.${f.name}`, qualifier: q, sideName: f.name }, usingKey });
  };
  for (const f of left.fields) add('left', f, rightNames.has(f.name) && !using.includes(f.name), using.includes(f.name));
  for (const f of right.fields) add('right', f, leftNames.has(f.name) && !using.includes(f.name), using.includes(f.name));
  // Two sides with the same qualifier (a self-join without aliases) would clash again.
  const seen = new Set<string>();
  for (const p of out) {
    if (p.usingKey) continue;
    if (seen.has(p.field.name)) {
      throw new AnalysisError(
        `Both sides of the join have a column \`${p.sourceName}\` under the same name \`${p.field.name}\`. Give the sides different names ` +
          "with df.alias('o') and other.alias('p'), then refer to col('o." + p.sourceName + "') and col('p." + p.sourceName + "').",
      );
    }
    seen.add(p.field.name);
  }
  return out;
}

/** Builds the row the condition is evaluated on: both sides' values under the pair names. */
function pairMaker(fields: PairField[]): (l: Row, r: Row) => Row {
  const names = fields.map((p) => p.field.name);
  return (l, r) => {
    const o: Row = {};
    for (let i = 0; i < fields.length; i++) {
      const p = fields[i]!;
      if (p.usingKey) continue;
      o[names[i]!] = (p.side === 'left' ? l : r)[p.sourceName] ?? null;
    }
    return o;
  };
}

function joinConditionError(e: unknown, left: StructType, right: StructType): Error {
  if (!(e instanceof AnalysisError)) return e as Error;
  const m = /Column `([^`]+)` is ambiguous/.exec(e.message);
  if (!m) return e;
  const name = m[1]!;
  return new AnalysisError(
    `${e.message} In a join condition, col('${name}').eq(col('${name}')) compares a column with itself: both sides have \`${name}\`. ` +
      `Join on the shared column with join(other, '${name}') (it appears once in the output), or name the sides: ` +
      `orders.alias('o').join(payments.alias('p'), col('o.${name}').eq(col('p.${name}'))). ` +
      `(Left columns: ${left.fieldNames.join(', ')}; right columns: ${right.fieldNames.join(', ')}.)`,
  );
}

function flattenAnd(e: Expr, out: Expr[]): void {
  if (e.kind === 'binary' && e.op === 'and') {
    flattenAnd(e.left, out);
    flattenAnd(e.right, out);
  } else out.push(e);
}

/** Which side an expression reads: it compiles against that side's columns only. */
function sideOf(e: Expr, left: StructType, right: StructType, ctx: EvalContext): { side: JoinSideName; bound: Bound } | undefined {
  const l = tryBound(e, left, ctx);
  const r = tryBound(e, right, ctx);
  if (l && !r) return { side: 'left', bound: l };
  if (r && !l) return { side: 'right', bound: r };
  return undefined;
}

function sameKeyType(a: Bound, b: Bound): boolean {
  if (a.type.equals(b.type)) return true;
  const num = /^(tinyint|smallint|int|bigint|float|double)$/;
  return num.test(a.type.simpleString()) && num.test(b.type.simpleString());
}

/** A watermarked column's time in ms (µs as the fraction): a timestamp, or a window's end. */
function timeOf(b: Bound): (row: Row) => number | null {
  const ev = b.eval;
  if (isWindowStruct(b.type)) {
    return (row) => {
      const w = ev(row) as { end: Date } | null;
      return w == null ? null : eventTimeMs(w.end);
    };
  }
  return (row) => {
    const d = ev(row) as Date | null;
    return d == null ? null : eventTimeMs(d);
  };
}

/**
 * A linear form of a time expression: `coef` of this side's and the other side's watermarked time
 * columns, plus a constant in ms. Spark's StreamingJoinHelper collects the same terms.
 */
interface Linear {
  self: number;
  other: number;
  c: number;
  /** The watermarked column of this side the form reads, if any. */
  selfColumn?: Bound;
}

function linear(e: Expr, self: StructType, other: StructType, ctx: EvalContext): Linear | undefined {
  switch (e.kind) {
    case 'lit':
      if (e.value instanceof CalendarInterval) return e.value.months ? undefined : { self: 0, other: 0, c: e.value.days * 86_400_000 + e.value.ms };
      return undefined;
    case 'neg': {
      const x = linear(e.child, self, other, ctx);
      return x && { ...x, self: -x.self, other: -x.other, c: -x.c };
    }
    case 'binary': {
      if (e.op !== '+' && e.op !== '-') return undefined;
      const a = linear(e.left, self, other, ctx);
      const b = linear(e.right, self, other, ctx);
      if (!a || !b) return undefined;
      const s = e.op === '+' ? 1 : -1;
      const selfColumn = a.selfColumn ?? b.selfColumn;
      return { self: a.self + s * b.self, other: a.other + s * b.other, c: a.c + s * b.c, ...(selfColumn ? { selfColumn } : {}) };
    }
    case 'col':
    case 'cast': {
      const inSelf = tryBound(e, self, ctx);
      const inOther = tryBound(e, other, ctx);
      if (inSelf && !inOther && isEventTime(inSelf)) return { self: 1, other: 0, c: 0, selfColumn: inSelf };
      if (inOther && !inSelf && isEventTime(inOther)) return { self: 0, other: 1, c: 0 };
      return undefined;
    }
    default:
      return undefined;
  }
}

function tryBound(e: Expr, s: StructType, ctx: EvalContext): Bound | undefined {
  try {
    return compile(e, s, ctx);
  } catch {
    return undefined;
  }
}

const isEventTime = (b: Bound): boolean => b.watermarkDelayMs !== undefined && b.type === TimestampType;

/**
 * Spark's getStateValueWatermark for one side: from each conjunct `a < b`, `a <= b`, `a > b`, `a >= b` that
 * bounds this side's event time from below by the other side's (`this > other + c`), this side's rows with
 * event time <= W + c can never match a future row of the other side (whose event time is > W), and are
 * evicted. A non-strict bound evicts 1 ms less (eviction is inclusive, the bound is not). The lowest bound
 * over the conjuncts wins.
 */
function rangeEviction(side: JoinSideName, conjuncts: Expr[], left: StructType, right: StructType, ctx: EvalContext): StateEviction | undefined {
  const self = side === 'left' ? left : right;
  const other = side === 'left' ? right : left;
  let best: { c: number; column: Bound } | undefined;
  for (const e of conjuncts) {
    if (e.kind !== 'binary' || !['<', '<=', '>', '>='].includes(e.op)) continue;
    // `lo < hi` (strict) or `lo <= hi`, written as lo − hi < 0.
    const [lo, hi] = e.op === '<' || e.op === '<=' ? [e.left, e.right] : [e.right, e.left];
    const a = linear(lo, self, other, ctx);
    const b = linear(hi, self, other, ctx);
    if (!a || !b) continue;
    const diff = { self: a.self - b.self, other: a.other - b.other, c: a.c - b.c };
    // −self + other + c < 0, i.e. self > other + c: a lower bound of this side by the other side.
    if (diff.self !== -1 || diff.other !== 1) continue;
    const column = a.selfColumn ?? b.selfColumn!;
    const c = diff.c - (e.op === '<=' || e.op === '>=' ? 1 : 0);
    if (!best || c < best.c) best = { c, column };
  }
  if (!best) return undefined;
  const c = best.c;
  return { kind: 'value', time: timeOf(best.column), watermark: (W) => W + c };
}
