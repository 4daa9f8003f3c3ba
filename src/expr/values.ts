/** Conversions between run-time values, following Spark's (non-ANSI) cast rules. */
import {
  ArrayType,
  BinaryType,
  BooleanType,
  ByteType,
  DataType,
  DateType,
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

/** Spark's string form of a timestamp: `2025-08-22 17:23:54` (fraction only when non-zero), in UTC. */
export function formatTimestamp(d: Date): string {
  const base = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(
    d.getUTCMinutes(),
  )}:${pad(d.getUTCSeconds())}`;
  const ms = d.getUTCMilliseconds();
  return ms ? `${base}.${pad(ms, 3).replace(/0+$/, '')}` : base;
}

export function formatDate(d: Date): string {
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
}

/** Parses Spark's accepted timestamp strings (ISO 8601 or `yyyy-MM-dd[ HH:mm:ss[.SSS]]`); no zone means UTC. */
export function parseTimestamp(s: string): Date | null {
  const t = s.trim();
  const m = /^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$/.exec(t);
  if (!m) return null;
  const [, y, mo, d, h = '0', mi = '0', sec = '0', frac = '', zone] = m;
  const ms = frac ? Number(frac.slice(0, 3).padEnd(3, '0')) : 0;
  let time = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(sec), ms);
  if (zone && zone !== 'Z') {
    const sign = zone[0] === '-' ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    time -= sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2))) * 60_000;
  }
  return Number.isNaN(time) ? null : new Date(time);
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
  if (v instanceof Date) return v.getTime() / 1000;
  return null;
}

/** The string a value casts to (`CAST(x AS STRING)`). */
export function castToString(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string') return v;
  if (v instanceof Date) return formatTimestamp(v);
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
  if (to === BooleanType) {
    if (typeof v === 'boolean') return v;
    if (typeof v === 'number') return v !== 0;
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

/** Total order used by comparisons, sorting and equality; null handling is the caller's. */
export function compareValues(a: unknown, b: unknown): number {
  if (a instanceof Date && b instanceof Date) return a.getTime() - b.getTime();
  if (typeof a === 'number' && typeof b === 'number') return a < b ? -1 : a > b ? 1 : 0;
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
