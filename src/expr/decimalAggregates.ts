/**
 * sum, avg, min and max over a `decimal(p,s)` column, exact and typed as Spark types them:
 * sum → decimal(p+10, s), avg → decimal(p+4, s+4) (both capped at 38; Spark's `Sum` and `Average`).
 *
 * Buffers hold digits as strings, never Decimal objects: a buffer goes into state files (JSON), LMDB
 * (msgpack) and worker threads (structured clone), and a string survives all three exactly, where a
 * class instance or a bigint would not. Arguments are read with `Decimal.from`, which also accepts a
 * Decimal that lost its class crossing a worker thread.
 */
import { Decimal, DecimalType, type Row } from '../types/index.js';
import { divHalfUp, pow10 } from '../types/decimal.js';
import type { AggregateImpl } from './aggregates.js';
import type { Bound } from './compile.js';

type Impl = Omit<AggregateImpl, 'name' | 'call'>;

/** The running sum's digits at the column's scale, or OVERFLOW once it has passed the sum type's precision. */
type SumBuffer = string | null;
const OVERFLOW = 'overflow';

/** Adds two running sums (digits at the same scale); OVERFLOW when the result passes `limit` (10^precision). */
function addDigits(a: SumBuffer, b: SumBuffer, limit: bigint): SumBuffer {
  if (a === null) return b;
  if (b === null) return a;
  if (a === OVERFLOW || b === OVERFLOW) return OVERFLOW;
  const s = BigInt(a) + BigInt(b);
  // Spark (non-ANSI) checks each partial sum against the sum type: once it overflows, the sum is null for good.
  return (s < 0n ? -s : s) >= limit ? OVERFLOW : s.toString();
}

/** The input's digits at scale `scale` (the column's; a value of another scale is rescaled HALF_UP, as Spark's cast). */
function digitsOf(v: unknown, scale: number): string | null {
  const d = Decimal.from(v);
  return d ? d.rescale(scale).unscaled.toString() : null;
}

/** sum(decimal(p,s)) → decimal(min(p+10,38), s); null if no value, or if the sum overflows that precision. */
export function decimalSum(arg: Bound, type: DecimalType): Impl {
  const resultType = DecimalType.bounded(type.precision + 10, type.scale);
  const limit = pow10(resultType.precision);
  const ev = arg.eval;
  return {
    type: resultType,
    init: () => null,
    update: (b, r: Row) => {
      const v = ev(r);
      return v == null ? b : addDigits(b as SumBuffer, digitsOf(v, type.scale), limit);
    },
    merge: (x, y) => addDigits(x as SumBuffer, y as SumBuffer, limit),
    finish: (b) => (b == null || b === OVERFLOW ? null : Decimal.of(BigInt(b as string), type.scale)),
  };
}

/** The value of a / b rounded HALF_UP to `digits` significant digits (Java's `divide(b, MathContext(digits, HALF_UP))`), as unscaled digits and scale. */
function divideSignificant(a: bigint, b: bigint, digits: number): { unscaled: bigint; scale: number } {
  if (a === 0n) return { unscaled: 0n, scale: 0 };
  const neg = a < 0n !== b < 0n;
  const num = a < 0n ? -a : a;
  const den = b < 0n ? -b : b;
  const at = (scale: number): bigint => (scale >= 0 ? (num * pow10(scale)) / den : num / (den * pow10(-scale)));
  // Find the scale at which the truncated quotient has exactly `digits` digits, then round there.
  let scale = digits - (num.toString().length - den.toString().length) - 1;
  for (;;) {
    const len = at(scale).toString().length;
    if (len > digits) scale--;
    else if (len < digits) scale++;
    else break;
  }
  const q = scale >= 0 ? divHalfUp(num * pow10(scale), den) : divHalfUp(num, den * pow10(-scale));
  return { unscaled: neg ? -q : q, scale };
}

/** Rounds HALF_UP to `scale` (never adds digits that were not there). */
function roundTo(x: { unscaled: bigint; scale: number }, scale: number): { unscaled: bigint; scale: number } {
  return x.scale <= scale ? x : { unscaled: divHalfUp(x.unscaled, pow10(x.scale - scale)), scale };
}

/**
 * avg(decimal(p,s)) → decimal(min(p+4,38), min(s+4,38)), computed as Spark's `Average` does, with the same
 * roundings: the sum (decimal(p+10,s), null on overflow) divided by the count as decimal(20,0), which
 * Spark evaluates to 38 significant digits and then to the scale of `Divide`'s result type (decimal
 * precision rules with precision loss allowed, the default), then cast to the result type — each step
 * HALF_UP. Rounding once to s+4 could differ in the last digit when an intermediate rounding lands on a 5.
 */
export function decimalAvg(arg: Bound, type: DecimalType): Impl {
  const sumType = DecimalType.bounded(type.precision + 10, type.scale);
  const resultType = DecimalType.bounded(type.precision + 4, type.scale + 4);
  const limit = pow10(sumType.precision);
  // Divide(decimal(p1,s1), decimal(20,0)): DecimalType.adjustPrecisionScale of (p1-s1+0 + scale, scale).
  const divScale = ((): number => {
    const scale = Math.max(6, sumType.scale + 20 + 1);
    const precision = sumType.precision - sumType.scale + scale;
    if (precision <= DecimalType.MAX_PRECISION) return scale;
    const intDigits = precision - scale;
    return Math.max(DecimalType.MAX_PRECISION - intDigits, Math.min(scale, 6));
  })();
  const ev = arg.eval;
  return {
    type: resultType,
    init: () => [null, 0],
    update: (b, r: Row) => {
      const v = ev(r);
      if (v == null) return b;
      const [s, n] = b as [SumBuffer, number];
      return [addDigits(s, digitsOf(v, type.scale), limit), n + 1];
    },
    merge: (x, y) => {
      const [s1, n1] = x as [SumBuffer, number];
      const [s2, n2] = y as [SumBuffer, number];
      return [addDigits(s1, s2, limit), n1 + n2];
    },
    finish: (b) => {
      const [s, n] = b as [SumBuffer, number];
      if (n === 0 || s == null || s === OVERFLOW) return null;
      // sum / count, where sum = digits / 10^scale.
      const q = divideSignificant(BigInt(s), BigInt(n) * pow10(type.scale), DecimalType.MAX_PRECISION);
      const atDivScale = roundTo(q, divScale);
      if (!Decimal.of(atDivScale.unscaled, atDivScale.scale).fits(DecimalType.MAX_PRECISION)) return null;
      return Decimal.of(atDivScale.unscaled, atDivScale.scale).toPrecision(resultType.precision, resultType.scale);
    },
  };
}

/** min/max of decimals: the buffer is the value's plain string (exact, with its scale). */
export function decimalExtreme(arg: Bound, keep: (c: number) => boolean): Impl {
  const ev = arg.eval;
  const better = (v: Decimal, b: string | null): boolean => b == null || keep(v.compareTo(Decimal.parse(b)!));
  return {
    type: arg.type,
    init: () => null,
    update: (b, r: Row) => {
      const v = Decimal.from(ev(r));
      return v == null || !better(v, b as string | null) ? b : v.toPlainString();
    },
    merge: (x, y) => (x == null ? y : y == null ? x : better(Decimal.parse(y as string)!, x as string) ? y : x),
    finish: (b) => (b == null ? null : Decimal.parse(b as string)),
  };
}
