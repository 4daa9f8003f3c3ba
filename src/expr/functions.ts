/**
 * Built-in column functions, named as in `pyspark.sql.functions` (camelCase aliases where PySpark has
 * snake_case). Each public function builds an expression node; its definition below resolves types
 * and produces the evaluator.
 */
import {
  ArrayType,
  BinaryType,
  BooleanType,
  DataType,
  DateType,
  DoubleType,
  FloatType,
  IntegerType,
  LongType,
  MapType,
  NullType,
  Row,
  StringType,
  StructType,
  TimestampType,
  isNumeric,
  parseDataType,
  fromEpochMicros,
} from '../types/index.js';
import { Column, ColumnLike, colExpr, toExpr } from './column.js';
import { AnalysisError, Bound, Evaluator, FunctionCall, SqlCall, registerFunction } from './compile.js';
import type { Expr } from './column.js';
import { formatWithPattern, parseWithPattern } from './datetime.js';
import { JsonNumberText, RecordError, castToString, castValue, formatDate, parseTimestamp, toJsonText } from './values.js';

const call = (name: string, args: unknown[], options?: Record<string, unknown>): Column =>
  new Column({ kind: 'fn', name, args: args.map((a) => toExpr(a)), ...(options ? { options } : {}) });
const colArg = (c: ColumnLike): Column => new Column(colExpr(c));

// ---------------------------------------------------------------- public API

/** A column by name; `a.b` reads field b of struct a; `*` and `a.*` expand in select(). */
export function col(name: string): Column {
  return new Column(colExpr(name));
}
/** Same as {@link col}. */
export const column = col;
/** A literal value. */
export function lit(value: unknown): Column {
  return value instanceof Column ? value : new Column({ kind: 'lit', value });
}
/** Starts a CASE WHEN chain: `when(cond, v).when(cond2, v2).otherwise(v3)`. */
export function when(condition: Column, value: unknown): Column {
  return new Column({ kind: 'case', branches: [[condition.expr, toExpr(value)]] });
}
export function not(c: Column): Column {
  return c.not();
}
export function coalesce(...cols: ColumnLike[]): Column {
  return call('coalesce', cols.map(colArg));
}
export function isnull(c: ColumnLike): Column {
  return colArg(c).isNull();
}
export function upper(c: ColumnLike): Column {
  return call('upper', [colArg(c)]);
}
export function lower(c: ColumnLike): Column {
  return call('lower', [colArg(c)]);
}
export function trim(c: ColumnLike): Column {
  return call('trim', [colArg(c)]);
}
export function ltrim(c: ColumnLike): Column {
  return call('ltrim', [colArg(c)]);
}
export function rtrim(c: ColumnLike): Column {
  return call('rtrim', [colArg(c)]);
}
export function initcap(c: ColumnLike): Column {
  return call('initcap', [colArg(c)]);
}
export function length(c: ColumnLike): Column {
  return call('length', [colArg(c)]);
}
/** 1-based substring, as in SQL. */
export function substring(c: ColumnLike, pos: number, len: number): Column {
  return call('substring', [colArg(c), pos, len]);
}
export function concat(...cols: ColumnLike[]): Column {
  return call('concat', cols.map(colArg));
}
export function concat_ws(sep: string, ...cols: ColumnLike[]): Column {
  return call('concat_ws', [sep, ...cols.map(colArg)]);
}
export const concatWs = concat_ws;
export function regexp_replace(c: ColumnLike, pattern: string, replacement: string): Column {
  return call('regexp_replace', [colArg(c), pattern, replacement]);
}
export const regexpReplace = regexp_replace;
export function regexp_extract(c: ColumnLike, pattern: string, idx: number): Column {
  return call('regexp_extract', [colArg(c), pattern, idx]);
}
export const regexpExtract = regexp_extract;
export function split(c: ColumnLike, pattern: string, limit = -1): Column {
  return call('split', [colArg(c), pattern, limit]);
}
export function lpad(c: ColumnLike, len: number, padStr: string): Column {
  return call('lpad', [colArg(c), len, padStr]);
}
export function rpad(c: ColumnLike, len: number, padStr: string): Column {
  return call('rpad', [colArg(c), len, padStr]);
}
export function abs(c: ColumnLike): Column {
  return call('abs', [colArg(c)]);
}
export function round(c: ColumnLike, scale = 0): Column {
  return call('round', [colArg(c), scale]);
}
export function floor(c: ColumnLike): Column {
  return call('floor', [colArg(c)]);
}
export function ceil(c: ColumnLike): Column {
  return call('ceil', [colArg(c)]);
}
/** The batch's timestamp: fixed for a micro-batch, and the same when the batch is re-run after a failure. */
export function current_timestamp(): Column {
  return call('current_timestamp', []);
}
export const currentTimestamp = current_timestamp;
export function current_date(): Column {
  return call('current_date', []);
}
export const currentDate = current_date;
/** Converts a string (optionally with a Spark datetime pattern) or a timestamp to a date. */
export function to_date(c: ColumnLike, format?: string): Column {
  return call('to_date', format === undefined ? [colArg(c)] : [colArg(c), format]);
}
export const toDate = to_date;
/** Parses a string to a timestamp (ISO 8601 by default, or a Spark datetime pattern); null when it does not parse. */
export function to_timestamp(c: ColumnLike, format?: string): Column {
  return call('to_timestamp', format === undefined ? [colArg(c)] : [colArg(c), format]);
}
export const toTimestamp = to_timestamp;
/** Seconds since the epoch: of the batch time (no argument), of a timestamp, or of a string parsed with `format`. */
export function unix_timestamp(c?: ColumnLike, format = 'yyyy-MM-dd HH:mm:ss'): Column {
  return call('unix_timestamp', c === undefined ? [] : [colArg(c), format]);
}
export const unixTimestamp = unix_timestamp;
export function from_unixtime(c: ColumnLike, format = 'yyyy-MM-dd HH:mm:ss'): Column {
  return call('from_unixtime', [colArg(c), format]);
}
export const fromUnixtime = from_unixtime;
export function date_format(c: ColumnLike, format: string): Column {
  return call('date_format', [colArg(c), format]);
}
export const dateFormat = date_format;
export function year(c: ColumnLike): Column {
  return call('year', [colArg(c)]);
}
export function month(c: ColumnLike): Column {
  return call('month', [colArg(c)]);
}
export function dayofmonth(c: ColumnLike): Column {
  return call('dayofmonth', [colArg(c)]);
}
/** 1 = Sunday … 7 = Saturday, as in Spark. */
export function dayofweek(c: ColumnLike): Column {
  return call('dayofweek', [colArg(c)]);
}
export function hour(c: ColumnLike): Column {
  return call('hour', [colArg(c)]);
}
export function minute(c: ColumnLike): Column {
  return call('minute', [colArg(c)]);
}
export function second(c: ColumnLike): Column {
  return call('second', [colArg(c)]);
}
/** A struct of the given columns; `struct('*')` packs every column. */
export function struct(...cols: ColumnLike[]): Column {
  return call('struct', cols.map(colArg));
}
/** Parses a JSON string column with a declared schema (DDL string or StructType); unparseable input gives null. */
export function from_json(c: ColumnLike, schema: StructType | DataType | string, options: Record<string, string> = {}): Column {
  const type = typeof schema === 'string' ? parseDataType(schema) : schema;
  return call('from_json', [colArg(c)], { schema: type, ...options });
}
export const fromJson = from_json;
/** Serialises a struct, array or map column to a JSON string. */
export function to_json(c: ColumnLike): Column {
  return call('to_json', [colArg(c)]);
}
export const toJson = to_json;
// ---------------------------------------------------------------- definitions

type Fn1 = (v: unknown) => unknown;

/** A function of one argument that returns null for null input. */
function unary(name: string, type: DataType | ((arg: Bound) => DataType), f: Fn1, accepts?: (t: DataType) => boolean): void {
  registerFunction(name, {
    bind({ args }) {
      expectArity(name, args, 1);
      const a = args[0]!;
      if (accepts && !accepts(a.type) && a.type !== NullType) {
        throw new AnalysisError(`${name}() does not accept \`${a.name}\` of type ${a.type.simpleString()}.`);
      }
      const ev = a.eval;
      return {
        type: typeof type === 'function' ? type(a) : type,
        eval: (row) => {
          const v = ev(row);
          return v == null ? null : f(v);
        },
      };
    },
  });
}

/**
 * The SQL form of a function whose column function fills in trailing arguments (`split(s, ',')` is
 * `split(s, ',', -1)`): `required` arguments, then `optional` defaults for the ones left out.
 */
function sqlDefaults(required: number, ...optional: unknown[]): (c: SqlCall) => Expr {
  return (c) => {
    const n = c.args.length;
    if (n < required || n > required + optional.length) {
      const range = optional.length ? `${required} to ${required + optional.length}` : `${required}`;
      c.fail(`${c.name}() takes ${range} argument(s), got ${n}`);
    }
    return { kind: 'fn', name: c.name, args: [...c.args, ...optional.slice(n - required).map((value): Expr => ({ kind: 'lit', value }))] };
  };
}

function expectArity(name: string, args: Bound[], n: number): void {
  if (args.length !== n) throw new AnalysisError(`${name}() takes ${n} argument(s), got ${args.length}.`);
}

/** Reads a literal argument (a format, a pattern) at analysis time. */
function literalArg<T>(call: FunctionCall, i: number, what: string): T {
  const e = call.argExprs[i];
  if (!e || e.kind !== 'lit') throw new AnalysisError(`${call.name}(): the ${what} must be a literal value.`);
  return e.value as T;
}

const str = (v: unknown): string => castToString(v)!;
const asDate = (v: unknown): Date | null => (v instanceof Date ? v : (castValue(v, TimestampType) as Date | null));

unary('upper', StringType, (v) => str(v).toUpperCase());
unary('lower', StringType, (v) => str(v).toLowerCase());
unary('trim', StringType, (v) => str(v).trim());
unary('ltrim', StringType, (v) => str(v).trimStart());
unary('rtrim', StringType, (v) => str(v).trimEnd());
unary('initcap', StringType, (v) => str(v).toLowerCase().replace(/(^|\s)(\S)/g, (_, s: string, c: string) => s + c.toUpperCase()));
unary('length', IntegerType, (v) => (Buffer.isBuffer(v) ? v.length : [...str(v)].length));
unary('abs', (a) => a.type, (v) => Math.abs(v as number), isNumeric);
unary('floor', LongType, (v) => Math.floor(v as number), isNumeric);
unary('ceil', LongType, (v) => Math.ceil(v as number), isNumeric);

function datePart(name: string, f: (d: Date) => number): void {
  unary(name, IntegerType, (v) => {
    const d = asDate(v);
    return d ? f(d) : null;
  });
}
datePart('year', (d) => d.getUTCFullYear());
datePart('month', (d) => d.getUTCMonth() + 1);
datePart('dayofmonth', (d) => d.getUTCDate());
datePart('dayofweek', (d) => d.getUTCDay() + 1);
datePart('hour', (d) => d.getUTCHours());
datePart('minute', (d) => d.getUTCMinutes());
datePart('second', (d) => d.getUTCSeconds());

registerFunction('round', {
  fromSql: sqlDefaults(1, 0),
  bind(c) {
    const scale = literalArg<number>(c, 1, 'scale');
    const ev = c.args[0]!.eval;
    const m = 10 ** scale;
    // Spark rounds HALF_UP (away from zero), unlike Math.round which rounds .5 towards +infinity.
    return {
      type: c.args[0]!.type,
      eval: (row) => {
        const v = ev(row) as number | null;
        return v == null ? null : (Math.sign(v) * Math.round(Math.abs(v) * m)) / m;
      },
    };
  },
});

registerFunction('coalesce', {
  bind({ args }) {
    if (args.length === 0) throw new AnalysisError('coalesce() needs at least one column.');
    const type = args.reduce<DataType>((t, a) => (t === NullType ? a.type : t), NullType);
    const evs = args.map((a) => (a.type.equals(type) || a.type === NullType ? a.eval : (row: Row) => castValue(a.eval(row), type)));
    return {
      type,
      nullable: args.every((a) => a.nullable),
      eval: (row) => {
        for (const ev of evs) {
          const v = ev(row);
          if (v != null) return v;
        }
        return null;
      },
    };
  },
});

registerFunction('concat', {
  bind({ args }) {
    const evs = args.map((a) => a.eval);
    return {
      type: StringType,
      eval: (row) => {
        let out = '';
        for (const ev of evs) {
          const v = ev(row);
          if (v == null) return null; // SQL concat: any null makes the result null
          out += str(v);
        }
        return out;
      },
    };
  },
});

registerFunction('concat_ws', {
  bind(c) {
    const sep = literalArg<string>(c, 0, 'separator');
    const evs = c.args.slice(1).map((a) => a.eval);
    return {
      type: StringType,
      nullable: false,
      eval: (row) => {
        const parts: string[] = [];
        for (const ev of evs) {
          const v = ev(row);
          if (v == null) continue; // concat_ws skips nulls
          if (Array.isArray(v)) parts.push(...v.filter((x) => x != null).map(str));
          else parts.push(str(v));
        }
        return parts.join(sep);
      },
    };
  },
});

registerFunction('substring', {
  fromSql: sqlDefaults(2, 2_147_483_647), // without a length: to the end, as Spark
  bind(c) {
    const pos = literalArg<number>(c, 1, 'position');
    const len = literalArg<number>(c, 2, 'length');
    const ev = c.args[0]!.eval;
    return {
      type: StringType,
      eval: (row) => {
        const v = ev(row);
        if (v == null) return null;
        const chars = [...str(v)];
        // SQL positions are 1-based; 0 behaves as 1 and negative counts from the end.
        const start = pos > 0 ? pos - 1 : pos < 0 ? Math.max(chars.length + pos, 0) : 0;
        return chars.slice(start, start + Math.max(len, 0)).join('');
      },
    };
  },
});

function regexArg(c: FunctionCall, i: number, flags = ''): RegExp {
  const p = literalArg<string>(c, i, 'pattern');
  try {
    return new RegExp(p, flags);
  } catch (e) {
    throw new AnalysisError(`${c.name}(): invalid regular expression "${p}": ${(e as Error).message}`);
  }
}

registerFunction('regexp_replace', {
  bind(c) {
    const re = regexArg(c, 1, 'g');
    // Java's replacement syntax `$1` matches JavaScript's.
    const rep = literalArg<string>(c, 2, 'replacement');
    const ev = c.args[0]!.eval;
    return { type: StringType, eval: (row) => { const v = ev(row); return v == null ? null : str(v).replace(re, rep); } };
  },
});

registerFunction('regexp_extract', {
  fromSql: sqlDefaults(2, 1), // Spark's SQL default: group 1
  bind(c) {
    const re = regexArg(c, 1);
    const idx = literalArg<number>(c, 2, 'group index');
    const ev = c.args[0]!.eval;
    return {
      type: StringType,
      eval: (row) => {
        const v = ev(row);
        if (v == null) return null;
        const m = re.exec(str(v));
        return m ? (m[idx] ?? '') : '';
      },
    };
  },
});

registerFunction('split', {
  fromSql: sqlDefaults(2, -1),
  bind(c) {
    const re = regexArg(c, 1);
    const limit = literalArg<number>(c, 2, 'limit');
    const ev = c.args[0]!.eval;
    return {
      type: new ArrayType(StringType),
      eval: (row) => {
        const v = ev(row);
        if (v == null) return null;
        const parts = str(v).split(re);
        if (limit > 0 && parts.length > limit) {
          // Spark keeps the remainder in the last element.
          const s = str(v);
          const out: string[] = [];
          let rest = s;
          for (let i = 0; i < limit - 1; i++) {
            const m = re.exec(rest);
            if (!m) break;
            out.push(rest.slice(0, m.index));
            rest = rest.slice(m.index + m[0].length);
          }
          out.push(rest);
          return out;
        }
        return parts;
      },
    };
  },
});

function padFn(name: string, left: boolean): void {
  registerFunction(name, {
    fromSql: sqlDefaults(2, ' '),
    bind(c) {
      const len = literalArg<number>(c, 1, 'length');
      const p = literalArg<string>(c, 2, 'pad string');
      const ev = c.args[0]!.eval;
      return {
        type: StringType,
        eval: (row) => {
          const v = ev(row);
          if (v == null) return null;
          const s = str(v);
          if (s.length >= len) return s.slice(0, len);
          return left ? s.padStart(len, p) : s.padEnd(len, p);
        },
      };
    },
  });
}
padFn('lpad', true);
padFn('rpad', false);

function stringTest(name: string, f: (s: string, t: string) => boolean): void {
  registerFunction(name, {
    bind({ args }) {
      expectArity(name, args, 2);
      const [a, b] = args.map((x) => x.eval) as [Evaluator, Evaluator];
      return {
        type: BooleanType,
        eval: (row) => {
          const x = a(row);
          const y = b(row);
          return x == null || y == null ? null : f(str(x), str(y));
        },
      };
    },
  });
}
stringTest('contains', (s, t) => s.includes(t));
stringTest('startswith', (s, t) => s.startsWith(t));
stringTest('endswith', (s, t) => s.endsWith(t));

registerFunction('like', {
  bind(c) {
    const p = literalArg<string>(c, 1, 'pattern');
    const re = new RegExp(
      '^' +
        p
          .split('')
          .map((ch) => (ch === '%' ? '.*' : ch === '_' ? '.' : ch.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
          .join('') +
        '$',
      's',
    );
    const ev = c.args[0]!.eval;
    return { type: BooleanType, eval: (row) => { const v = ev(row); return v == null ? null : re.test(str(v)); } };
  },
});
registerFunction('rlike', {
  bind(c) {
    const re = regexArg(c, 1);
    const ev = c.args[0]!.eval;
    return { type: BooleanType, eval: (row) => { const v = ev(row); return v == null ? null : re.test(str(v)); } };
  },
});

registerFunction('current_timestamp', {
  bind({ ctx }) {
    return { type: TimestampType, nullable: false, eval: () => new Date(ctx.batchTimestampMs) };
  },
});
registerFunction('current_date', {
  bind({ ctx }) {
    return { type: DateType, nullable: false, eval: () => formatDate(new Date(ctx.batchTimestampMs)) };
  },
});

/** Evaluator that turns its argument into a Date: timestamps pass, strings parse (with a pattern if given). */
function timestampOf(c: FunctionCall, formatIndex: number): Evaluator {
  const a = c.args[0]!;
  const ev = a.eval;
  const format = c.args.length > formatIndex ? literalArg<string>(c, formatIndex, 'format') : undefined;
  if (a.type === TimestampType) return ev;
  if (a.type === DateType) return (row) => { const v = ev(row); return v == null ? null : parseTimestamp(String(v)); };
  if (a.type === StringType) {
    return format
      ? (row) => { const v = ev(row); return v == null ? null : parseWithPattern(String(v), format); }
      : (row) => { const v = ev(row); return v == null ? null : parseTimestamp(String(v)); };
  }
  if (isNumeric(a.type)) return (row) => { const v = ev(row) as number | null; return v == null ? null : new Date(v * 1000); };
  throw new AnalysisError(`${c.name}() cannot read \`${a.name}\` of type ${a.type.simpleString()} as a timestamp.`);
}

registerFunction('to_timestamp', { bind: (c) => ({ type: TimestampType, eval: timestampOf(c, 1) }) });
registerFunction('to_date', {
  bind(c) {
    const ts = timestampOf(c, 1);
    return { type: DateType, eval: (row) => { const d = ts(row) as Date | null; return d ? formatDate(d) : null; } };
  },
});
registerFunction('unix_timestamp', {
  fromSql: (c) => (c.args.length === 0 ? { kind: 'fn', name: c.name, args: [] } : sqlDefaults(1, 'yyyy-MM-dd HH:mm:ss')(c)),
  bind(c) {
    if (c.args.length === 0) return { type: LongType, eval: () => Math.floor(c.ctx.batchTimestampMs / 1000) };
    const ts = timestampOf(c, 1);
    return { type: LongType, eval: (row) => { const d = ts(row) as Date | null; return d ? Math.floor(d.getTime() / 1000) : null; } };
  },
});
registerFunction('from_unixtime', {
  fromSql: sqlDefaults(1, 'yyyy-MM-dd HH:mm:ss'),
  bind(c) {
    const format = literalArg<string>(c, 1, 'format');
    const ev = c.args[0]!.eval;
    return {
      type: StringType,
      eval: (row) => { const v = ev(row) as number | null; return v == null ? null : formatWithPattern(new Date(v * 1000), format); },
    };
  },
});
registerFunction('date_format', {
  bind(c) {
    const format = literalArg<string>(c, 1, 'format');
    const ts = timestampOf({ ...c, args: c.args.slice(0, 1) }, 99);
    return { type: StringType, eval: (row) => { const d = ts(row) as Date | null; return d ? formatWithPattern(d, format) : null; } };
  },
});

registerFunction('struct', {
  bind({ args }) {
    const names = args.map((a) => a.name);
    const evs = args.map((a) => a.eval);
    return {
      type: new StructType(args.map((a) => ({ name: a.name, dataType: a.type, nullable: a.nullable }))),
      nullable: false,
      eval: (row) => {
        const o: Row = {};
        for (let i = 0; i < names.length; i++) o[names[i]!] = evs[i]!(row);
        return o;
      },
    };
  },
});

registerFunction('get_item', {
  bind(c) {
    const a = c.args[0]!;
    const key = literalArg<string | number>(c, 1, 'key');
    const type =
      a.type instanceof ArrayType ? a.type.elementType : a.type instanceof MapType ? a.type.valueType : undefined;
    if (!type) throw new AnalysisError(`getItem(): \`${a.name}\` is ${a.type.simpleString()}, not an array or map.`);
    const ev = a.eval;
    return {
      type,
      eval: (row) => {
        const v = ev(row) as Record<string | number, unknown> | null;
        return v == null ? null : (v[key] ?? null);
      },
    };
  },
});

/** JSON-compatible form of a value of type `t` (timestamps as ISO strings, binary as base64). */
export function toJsonValue(v: unknown, t: DataType): unknown {
  if (v == null) return null;
  if (t === TimestampType && v instanceof Date) return v.toISOString();
  if (t === BinaryType && Buffer.isBuffer(v)) return v.toString('base64');
  if ((t === DoubleType || t === FloatType) && typeof v === 'number') return JsonNumberText.of(v, t === FloatType);
  if (t instanceof StructType) {
    const o: Row = {};
    for (const f of t.fields) {
      const x = (v as Row)[f.name];
      // to_json omits null fields, as Spark does by default.
      if (x != null) o[f.name] = toJsonValue(x, f.dataType);
    }
    return o;
  }
  if (t instanceof ArrayType) return (v as unknown[]).map((x) => toJsonValue(x, t.elementType));
  if (t instanceof MapType) {
    const o: Row = {};
    for (const [k, x] of Object.entries(v as Row)) o[k] = toJsonValue(x, t.valueType);
    return o;
  }
  return v;
}

/** Converts parsed JSON to a value of type `t`; a value of the wrong shape becomes null (PERMISSIVE). */
export function fromJsonValue(v: unknown, t: DataType): unknown {
  if (v == null) return null;
  if (t instanceof StructType) {
    if (typeof v !== 'object' || Array.isArray(v)) return null;
    const o: Row = {};
    for (const f of t.fields) o[f.name] = fromJsonValue((v as Row)[f.name], f.dataType);
    return o;
  }
  if (t instanceof ArrayType) return Array.isArray(v) ? v.map((x) => fromJsonValue(x, t.elementType)) : null;
  if (t instanceof MapType) {
    if (typeof v !== 'object' || Array.isArray(v)) return null;
    const o: Row = {};
    for (const [k, x] of Object.entries(v as Row)) o[k] = fromJsonValue(x, t.valueType);
    return o;
  }
  if (t === StringType) return typeof v === 'object' ? JSON.stringify(v) : String(v);
  // A JSON number as a timestamp is whole seconds since the epoch, as Spark's JSON parser reads it
  // (VALUE_NUMBER_INT × 10^6 µs); a fraction does not convert (null). Found by the Spark Connect conformance run.
  if (t === TimestampType && typeof v === 'number') return Number.isInteger(v) ? fromEpochMicros(v * 1_000_000) : null;
  if (typeof v === 'object') return null;
  if (isNumeric(t) && typeof v !== 'number') return null;
  return castValue(v, t);
}

registerFunction('from_json', {
  // from_json(col, 'a INT, b STRING'): the column function keeps the parsed schema in options.
  fromSql(c) {
    if (c.args.length !== 2) {
      c.fail(
        c.args.length > 2
          ? 'from_json options are not read from SQL strings yet; pass them to the column function from_json(col, schema, options)'
          : `from_json() takes a column and a schema string, got ${c.args.length} argument(s)`,
        c.args.length > 2 ? 2 : undefined,
      );
    }
    const ddl = c.literal<string>(1, 'the schema (a DDL string such as \'a INT, b STRING\')', 'string');
    let schema: DataType | undefined;
    try {
      schema = parseDataType(ddl);
    } catch (e) {
      c.fail((e as Error).message, 1);
    }
    return { kind: 'fn', name: 'from_json', args: [c.args[0]!], options: { schema } };
  },
  bind(c) {
    const type = c.options.schema as DataType;
    const failFast = String(c.options.mode ?? '').toUpperCase() === 'FAILFAST';
    const ev = c.args[0]!.eval;
    // Spark's PERMISSIVE mode (the default): a malformed record gives a struct whose fields are all null —
    // not a null struct, so `isNull()` on it is false — with the text in `columnNameOfCorruptRecord`
    // (default `_corrupt_record`) when the schema has that string column. Other types give null.
    const corruptName = String(c.options.columnNameOfCorruptRecord ?? '_corrupt_record');
    const struct = type instanceof StructType ? type : undefined;
    const keepsText = struct?.field(corruptName)?.dataType === StringType;
    const malformed = (text: string, why: string): unknown => {
      if (failFast) throw new RecordError(`from_json: malformed JSON (mode FAILFAST): ${why}`, 'json.malformed');
      if (!struct) return null;
      const o: Row = {};
      for (const f of struct.fields) o[f.name] = keepsText && f.name === corruptName ? text : null;
      return o;
    };
    return {
      type,
      eval: (row) => {
        const v = ev(row);
        if (v == null) return null;
        const text = str(v);
        let parsed: unknown;
        try {
          parsed = JSON.parse(text);
        } catch (e) {
          return malformed(text, (e as Error).message);
        }
        // A struct is read from a JSON object only; `123` or `[…]` is as malformed as `not json`.
        if (parsed === null) return null; // JSON null is null, as in Spark
        if (struct && (typeof parsed !== 'object' || Array.isArray(parsed))) return malformed(text, `not a JSON object: ${text.slice(0, 40)}`);
        return fromJsonValue(parsed, type);
      },
    };
  },
});

registerFunction('to_json', {
  bind({ args }) {
    const a = args[0]!;
    if (!(a.type instanceof StructType || a.type instanceof ArrayType || a.type instanceof MapType)) {
      throw new AnalysisError(`to_json() needs a struct, array or map, but \`${a.name}\` is ${a.type.simpleString()}. Wrap it: to_json(struct(...)).`);
    }
    const ev = a.eval;
    const t = a.type;
    return { type: StringType, eval: (row) => { const v = ev(row); return v == null ? null : toJsonText(toJsonValue(v, t)); } };
  },
});

