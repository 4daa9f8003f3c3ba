/** Conversions between run-time values, following Spark's (non-ANSI) cast rules. */
import {
  ArrayType,
  BinaryType,
  BooleanType,
  ByteType,
  DataType,
  DateType,
  Decimal,
  DecimalType,
  DoubleType,
  FloatType,
  IntegerType,
  LongType,
  MapType,
  NullType,
  ShortType,
  StringType,
  StructType,
  TimestampType,
  epochMicros,
  fromEpochMicros,
  microsOfMilli,
} from '../types/index.js';

/** Thrown while evaluating one record: the record goes to the dead-letter destination, the query goes on. */
export class RecordError extends Error {
  override name = 'RecordError';
  constructor(
    message: string,
    /** A short machine-readable reason, e.g. `avro.unknown-schema-id`. */
    readonly reason: string,
  ) {
    super(message);
  }
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/**
 * Spark's string form of a timestamp: `2025-08-22 17:23:54` in UTC, with the fraction only when non-zero
 * and without trailing zeros, down to microseconds (`…:54.12`, `…:54.000123`).
 */
export function formatTimestamp(d: Date): string {
  const base = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(
    d.getUTCMinutes(),
  )}:${pad(d.getUTCSeconds())}`;
  const ms = d.getUTCMilliseconds();
  const us = microsOfMilli(d);
  return ms || us ? `${base}.${(pad(ms, 3) + pad(us, 3)).replace(/0+$/, '')}` : base;
}

export function formatDate(d: Date): string {
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
}

/**
 * Parses Spark's accepted timestamp strings (ISO 8601 or `yyyy-MM-dd[ HH:mm:ss[.SSSSSS]]`); no zone means UTC.
 * Fraction digits beyond microseconds are dropped, as Spark does.
 */
export function parseTimestamp(s: string): Date | null {
  const t = s.trim();
  const m = /^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$/.exec(t);
  if (!m) return null;
  const [, y, mo, d, h = '0', mi = '0', sec = '0', frac = '', zone] = m;
  const ms = frac ? Number(frac.slice(0, 3).padEnd(3, '0')) : 0;
  const us = frac.length > 3 ? Number(frac.slice(3, 6).padEnd(3, '0')) : 0;
  let time = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(sec), ms);
  if (zone && zone !== 'Z') {
    const sign = zone[0] === '-' ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    time -= sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2))) * 60_000;
  }
  if (Number.isNaN(time)) return null;
  return us ? fromEpochMicros(time * 1000 + us) : new Date(time);
}

function toInteger(v: unknown, bits: number): number | null {
  let n: number;
  if (typeof v === 'number') n = v;
  else if (typeof v === 'string') {
    const t = v.trim();
    if (!/^[+-]?\d+(\.\d*)?$/.test(t)) return null;
    n = Number(t);
  } else if (typeof v === 'boolean') n = v ? 1 : 0;
  else if (v instanceof Date) n = Math.floor(v.getTime() / 1000);
  // Spark truncates a decimal toward zero when it casts it to an integral type.
  else if (v instanceof Decimal) n = Number(v.unscaled / 10n ** BigInt(v.scale));
  else return null;
  if (!Number.isFinite(n)) return null;
  n = Math.trunc(n);
  if (bits < 64) {
    // Spark wraps integral overflow in non-ANSI casts; JS numbers cannot wrap 64-bit exactly.
    const range = 2 ** bits;
    n = ((((n + range / 2) % range) + range) % range) - range / 2;
  }
  return n;
}

function toDouble(v: unknown): number | null {
  if (typeof v === 'number') return v;
  if (typeof v === 'string') {
    const t = v.trim();
    if (t === '') return null;
    const n = Number(t);
    return Number.isNaN(n) && t.toLowerCase() !== 'nan' ? null : n;
  }
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (v instanceof Date) return epochMicros(v) / 1e6;
  if (v instanceof Decimal) return v.toNumber();
  return null;
}

/**
 * The `decimal(p,s)` value of `v` (Spark's non-ANSI cast): rounded HALF_UP to the scale, null when it does
 * not fit the precision or is not a number. A timestamp becomes its seconds since the epoch.
 */
function toDecimal(v: unknown, to: DecimalType): Decimal | null {
  const d = v instanceof Date ? Decimal.of(epochMicros(v), 6) : Decimal.from(v);
  return d ? d.toPrecision(to.precision, to.scale) : null;
}

/** The string a value casts to (`CAST(x AS STRING)`). */
export function castToString(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string') return v;
  if (v instanceof Date) return formatTimestamp(v);
  // Java's BigDecimal.toString, as Spark's non-ANSI cast (show() prints the plain form: sinks/show.ts).
  if (v instanceof Decimal) return v.toString();
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (v instanceof Uint8Array) return Buffer.from(v).toString('utf8');
  if (Array.isArray(v)) return `[${v.map((x) => castToString(x) ?? 'null').join(', ')}]`;
  if (typeof v === 'object') {
    return `{${Object.values(v as object)
      .map((x) => castToString(x) ?? 'null')
      .join(', ')}}`;
  }
  return String(v);
}

/** Converts a value to `to`; values that do not convert become null (Spark's non-ANSI behaviour). */
export function castValue(v: unknown, to: DataType): unknown {
  if (v === null || v === undefined) return null;
  if (to === StringType) return castToString(v);
  if (to === IntegerType) return toInteger(v, 32);
  if (to === LongType) return toInteger(v, 64);
  if (to === ShortType) return toInteger(v, 16);
  if (to === ByteType) return toInteger(v, 8);
  if (to === DoubleType || to === FloatType) return toDouble(v);
  if (to instanceof DecimalType) return toDecimal(v, to);
  if (to === BooleanType) {
    if (typeof v === 'boolean') return v;
    if (typeof v === 'number') return v !== 0;
    if (v instanceof Decimal) return v.unscaled !== 0n;
    if (typeof v === 'string') {
      const t = v.trim().toLowerCase();
      if (['true', 't', 'yes', 'y', '1'].includes(t)) return true;
      if (['false', 'f', 'no', 'n', '0'].includes(t)) return false;
    }
    return null;
  }
  if (to === TimestampType) {
    if (v instanceof Date) return v;
    if (typeof v === 'number') return new Date(Math.round(v * 1000));
    // Seconds since the epoch; Spark keeps microseconds and truncates the rest.
    if (v instanceof Decimal) return fromEpochMicros(Number((v.unscaled * 1_000_000n) / 10n ** BigInt(v.scale)));
    if (typeof v === 'string') {
      if (/^\d{4}-\d{2}-\d{2}$/.test(v.trim())) return parseTimestamp(v);
      return parseTimestamp(v);
    }
    return null;
  }
  if (to === DateType) {
    if (v instanceof Date) return formatDate(v);
    if (typeof v === 'string') {
      const d = parseTimestamp(v.trim().slice(0, 10));
      return d ? formatDate(d) : null;
    }
    return null;
  }
  if (to === BinaryType) {
    if (Buffer.isBuffer(v)) return v;
    if (v instanceof Uint8Array) return Buffer.from(v);
    if (typeof v === 'string') return Buffer.from(v, 'utf8');
    return null;
  }
  if (to === NullType) return null;
  if (to instanceof ArrayType) return Array.isArray(v) ? v.map((x) => castValue(x, to.elementType)) : null;
  if (to instanceof MapType) return typeof v === 'object' ? v : null;
  if (to instanceof StructType) {
    if (typeof v !== 'object') return null;
    const src = v as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    const values = Object.values(src);
    to.fields.forEach((f, i) => {
      // Spark casts structs by position, not by name.
      out[f.name] = castValue(values[i], f.dataType);
    });
    return out;
  }
  return v;
}

/** Spark's `DecimalType.forType`: the decimal that holds every value of an integral type. */
const INTEGRAL_AS_DECIMAL = new Map<DataType, DecimalType>([
  [ByteType, new DecimalType(3, 0)],
  [ShortType, new DecimalType(5, 0)],
  [IntegerType, new DecimalType(10, 0)],
  [LongType, new DecimalType(20, 0)],
]);

/**
 * The type a decimal and another operand are compared in (Spark's DecimalPrecision / TypeCoercion):
 * two decimals → the wider decimal (max integer digits + max scale, capped at 38); decimal and an
 * integral type → the integral type as a decimal, widened likewise; decimal and float/double/string →
 * double. Undefined when neither side is a decimal.
 */
export function decimalCommonType(a: DataType, b: DataType): DataType | undefined {
  if (!(a instanceof DecimalType) && !(b instanceof DecimalType)) return undefined;
  const x = a instanceof DecimalType ? a : INTEGRAL_AS_DECIMAL.get(a);
  const y = b instanceof DecimalType ? b : INTEGRAL_AS_DECIMAL.get(b);
  if (x && y) {
    const scale = Math.max(x.scale, y.scale);
    return DecimalType.bounded(Math.max(x.precision - x.scale, y.precision - y.scale) + scale, scale);
  }
  const other = a instanceof DecimalType ? b : a;
  return other === DoubleType || other === FloatType || other === StringType ? DoubleType : undefined;
}

/** Total order used by comparisons, sorting and equality; null handling is the caller's. */
export function compareValues(a: unknown, b: unknown): number {
  if (a instanceof Date && b instanceof Date) return a.getTime() - b.getTime() || microsOfMilli(a) - microsOfMilli(b);
  if (a instanceof Decimal && b instanceof Decimal) return a.compareTo(b);
  if (typeof a === 'number' && typeof b === 'number') {
    // Spark's NaN semantics: NaN equals NaN and is greater than any other number (so max() of a group with
    // a NaN is NaN, whatever order the rows come in).
    if (Number.isNaN(a)) return Number.isNaN(b) ? 0 : 1;
    if (Number.isNaN(b)) return -1;
    return a < b ? -1 : a > b ? 1 : 0;
  }
  if (typeof a === 'string' && typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === 'boolean' && typeof b === 'boolean') return Number(a) - Number(b);
  if (a instanceof Uint8Array && b instanceof Uint8Array) return Buffer.compare(a, b);
  const sa = JSON.stringify(a);
  const sb = JSON.stringify(b);
  return sa < sb ? -1 : sa > sb ? 1 : 0;
}

/** Infers the Spark type of a JS literal, as `lit()` does. */
export function literalType(v: unknown): DataType {
  if (v === null || v === undefined) return NullType;
  if (typeof v === 'string') return StringType;
  if (typeof v === 'boolean') return BooleanType;
  if (typeof v === 'number') {
    if (Number.isInteger(v)) return Math.abs(v) <= 2_147_483_647 ? IntegerType : LongType;
    return DoubleType;
  }
  if (typeof v === 'bigint') return LongType;
  if (v instanceof Date) return TimestampType;
  // Spark's lit(BigDecimal): DecimalType(max(precision, scale), scale).
  if (v instanceof Decimal) return new DecimalType(Math.max(v.precision, v.scale, 1), v.scale);
  if (v instanceof Uint8Array) return BinaryType;
  if (Array.isArray(v)) return new ArrayType(v.length ? literalType(v[0]) : NullType);
  throw new TypeError(`lit(): cannot make a literal of ${typeof v}; use struct() or a typed column instead.`);
}

/**
 * Thrown by an evaluator that needs I/O first (a schema id not yet fetched from the registry, a schema
 * not yet registered). The batch loop awaits `promise` and evaluates the same row again, so evaluation
 * stays synchronous and fast on the common path, and I/O happens once per new schema, not per row.
 */
export class NeedsIO extends Error {
  override name = 'NeedsIO';
  constructor(readonly promise: Promise<unknown>) {
    super('needs I/O before this row can be evaluated');
  }
}

/**
 * JSON text of a JSON-shaped value (plain objects, arrays, strings, numbers, booleans, null) in which a
 * {@link Decimal} is written as a JSON number with all its digits (`{"price":12.30}`), as Spark's to_json
 * writes decimals (Jackson's `writeNumber(BigDecimal)`). `JSON.stringify` cannot: it would write a string
 * (Decimal.toJSON) or, through a double, lose digits and the scale.
 */
/**
 * A double or float as Spark's JSON writer (Jackson's writeNumber → Java's Double/Float.toString) writes it:
 * `31.0`, `0.001`, `1.0E7`, `1.5E-5`; NaN and ±Infinity as the strings "NaN", "Infinity", "-Infinity"
 * (QUOTE_NON_NUMERIC_NUMBERS). JS writes `31`, `10000000`, `0.000015` and `null`: the same values, other text.
 */
export class JsonNumberText {
  constructor(readonly text: string) {}

  static of(x: number, float: boolean): JsonNumberText {
    if (Number.isNaN(x)) return new JsonNumberText('"NaN"');
    if (!Number.isFinite(x)) return new JsonNumberText(x > 0 ? '"Infinity"' : '"-Infinity"');
    if (x === 0) return new JsonNumberText(Object.is(x, -0) ? '-0.0' : '0.0');
    // The shortest decimal that reads back as the same value (as a float32 for a float column).
    let digits = String(x);
    if (float) {
      for (let p = 1; p <= 9; p++) {
        const t = x.toPrecision(p);
        if (Math.fround(Number(t)) === x) {
          digits = String(Number(t));
          break;
        }
      }
    }
    const n = Number(digits);
    const abs = Math.abs(n);
    if (abs >= 1e-3 && abs < 1e7) return new JsonNumberText(digits.includes('.') ? digits : `${digits}.0`);
    const [mantissa, exp] = n.toExponential().split('e') as [string, string];
    return new JsonNumberText(`${mantissa.includes('.') ? mantissa : `${mantissa}.0`}E${exp.replace('+', '')}`);
  }
}

export function toJsonText(v: unknown): string {
  if (v instanceof Decimal) return v.toString();
  if (v instanceof JsonNumberText) return v.text;
  if (Array.isArray(v)) return `[${v.map((x) => (x === undefined ? 'null' : toJsonText(x))).join(',')}]`;
  if (v !== null && typeof v === 'object' && (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null)) {
    const parts: string[] = [];
    for (const [k, x] of Object.entries(v)) if (x !== undefined) parts.push(`${JSON.stringify(k)}:${toJsonText(x)}`);
    return `{${parts.join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}
