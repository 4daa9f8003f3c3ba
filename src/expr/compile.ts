/**
 * Resolution and compilation of expressions: an `Expr` is checked against the input schema (names,
 * types) and turned into a plain JS closure `(row) => value`. Errors in resolution are analysis errors
 * (the query does not start); errors while evaluating one row are `RecordError`s (the row goes to the
 * dead-letter destination).
 */
import {
  BooleanType,
  DataType,
  DoubleType,
  IntegerType,
  LongType,
  NullType,
  Row,
  StringType,
  StructField,
  StructType,
  TimestampType,
  isIntegral,
  isNumeric,
} from '../types/index.js';
import { Expr, exprName } from './column.js';
import { CalendarInterval, CalendarIntervalType, intervalArithmetic } from './interval.js';
import { castValue, compareValues, decimalCommonType, literalType } from './values.js';

export class AnalysisError extends Error {
  override name = 'AnalysisError';
}

/** Per-batch values that expressions may read (Spark fixes `current_timestamp()` per batch). */
export interface EvalContext {
  batchTimestampMs: number;
}

export type Evaluator = (row: Row) => unknown;

export interface Bound {
  readonly type: DataType;
  readonly nullable: boolean;
  readonly eval: Evaluator;
  readonly name: string;
  /** The column is the watermarked event time (or a window of it): stateful operators evict by it. */
  readonly watermarkDelayMs?: number;
}

/** What a function definition receives: its arguments already resolved. */
export interface FunctionCall {
  readonly name: string;
  readonly args: Bound[];
  readonly options: Record<string, unknown>;
  readonly ctx: EvalContext;
  /** The unresolved argument expressions (for functions that need a literal, e.g. a format). */
  readonly argExprs: Expr[];
}

export interface FunctionDef {
  /** Checks argument types and returns the result type and evaluator. Throw AnalysisError on misuse. */
  bind(call: FunctionCall): { type: DataType; nullable?: boolean; eval: Evaluator; watermarkDelayMs?: number };
  /** Work that needs I/O before binding (e.g. fetching a schema from the registry). */
  prepare?(options: Record<string, unknown>): Promise<void>;
  /**
   * The options another thread gets (plan/portable.ts): what `prepare` found, so that the other side does not
   * look it up again and find something newer. Throw plan/portable.ts's NotPortable when it cannot be sent.
   */
  portableOptions?(options: Record<string, unknown>): Record<string, unknown>;
  /**
   * How the SQL call `name(args…)` becomes the node the column function builds, when that is not simply
   * `{ kind: 'fn', name, args }` — e.g. a DDL string that the column function keeps in `options`, or an
   * argument the column function defaults. Lives next to the definition so SQL strings and column
   * functions cannot drift apart (src/sql/ finds every registered function by name).
   */
  fromSql?(call: SqlCall): Expr;
}

/** A function call as written in a SQL string, handed to {@link FunctionDef.fromSql}. */
export interface SqlCall {
  /** The function's name, lower case. */
  readonly name: string;
  readonly args: readonly Expr[];
  /** Stops parsing with `message`, shown under argument `argIndex` (or under the call). */
  fail(message: string, argIndex?: number): never;
  /** The value of argument `i`, which must be a literal of JS type `type` (fails with `what` otherwise). */
  literal<T extends string | number>(i: number, what: string, type: 'string' | 'number'): T;
}

const FUNCTIONS = new Map<string, FunctionDef>();

export function registerFunction(name: string, def: FunctionDef): void {
  FUNCTIONS.set(name, def);
}

/** The registered function of that (SQL) name, if any: how SQL strings find every function. */
export function lookupFunction(name: string): FunctionDef | undefined {
  return FUNCTIONS.get(name);
}

/** Names of all registered (non-aggregate) functions, for "did you mean" hints. */
export function functionNames(): string[] {
  return [...FUNCTIONS.keys()];
}

/** Runs the I/O some functions need before analysis (registry look-ups), once per expression. */
export async function prepareExpr(e: Expr): Promise<void> {
  const children = childExprs(e);
  for (const c of children) await prepareExpr(c);
  if (e.kind === 'fn') {
    const def = FUNCTIONS.get(e.name);
    if (def?.prepare) await def.prepare(e.options ?? {});
  }
}

export function childExprs(e: Expr): Expr[] {
  switch (e.kind) {
    case 'alias':
    case 'cast':
    case 'not':
    case 'neg':
    case 'isNull':
    case 'field':
      return [e.child];
    case 'binary':
      return [e.left, e.right];
    case 'in':
      return [e.child, ...e.values];
    case 'case':
      return [...e.branches.flat(), ...(e.otherwise ? [e.otherwise] : [])];
    case 'fn':
      return e.args;
    default:
      return [];
  }
}

function suggest(name: string, schema: StructType): string {
  const names = schema.fieldNames;
  return names.length ? ` Available columns: ${names.map((n) => `\`${n}\``).join(', ')}.` : ' The input has no columns.';
}

/** Splits `a.b.c` into parts, honouring backticks (`` `a.b`.c ``). */
export function splitName(name: string): string[] {
  const parts: string[] = [];
  let cur = '';
  let quoted = false;
  for (const ch of name) {
    if (ch === '`') quoted = !quoted;
    else if (ch === '.' && !quoted) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  parts.push(cur);
  return parts;
}

function resolveColumn(name: string, schema: StructType): Bound {
  let parts = splitName(name);
  let field: StructField | undefined;
  // A join's output column renamed because both sides had its name (`o.id`): the whole name.
  const whole = schema.field(name);
  if (whole && parts.length > 1) {
    field = whole;
    parts = [name];
  }
  // `o.id`: the column `id` of the DataFrame aliased `o` (df.alias('o')), then nested fields.
  if (!field && parts.length > 1) {
    const q = schema.fields.filter((f) => f.qualifier === parts[0] && (f.sideName ?? f.name) === parts[1]);
    if (q.length === 1) {
      field = q[0];
      parts = [q[0]!.name, ...parts.slice(2)];
    }
  }
  const top = parts[0]!;
  field ??= schema.field(top) ?? schema.fields.find((f) => f.name.toLowerCase() === top.toLowerCase());
  if (!field) {
    // A name both sides of a join had: it exists twice, under `<qualifier>.<name>`.
    const twins = schema.fields.filter((f) => f.sideName === top);
    if (twins.length > 1) {
      throw new AnalysisError(
        `Column \`${top}\` is ambiguous: both sides of the join have it, as ${twins.map((f) => `\`${f.name}\``).join(' and ')}. ` +
          `Refer to one of them: ${twins.map((f) => `col('${f.name}')`).join(' or ')}.`,
      );
    }
    field = twins[0];
  }
  if (!field) {
    throw new AnalysisError(`Column \`${name}\` does not exist.${suggest(top, schema)}`);
  }
  let type = field.dataType;
  let nullable = field.nullable;
  const key = field.name;
  let ev: Evaluator = (row) => row[key] ?? null;
  for (const part of parts.slice(1)) {
    if (!(type instanceof StructType)) {
      throw new AnalysisError(`Cannot read field \`${part}\` of \`${name}\`: it is ${type.simpleString()}, not a struct.`);
    }
    const sub = type.field(part);
    if (!sub) throw new AnalysisError(`Struct \`${name}\` has no field \`${part}\`.${suggest(part, type)}`);
    const prev = ev;
    const k = sub.name;
    ev = (row) => {
      const o = prev(row) as Row | null;
      return o == null ? null : (o[k] ?? null);
    };
    type = sub.dataType;
    nullable = nullable || sub.nullable;
  }
  const out: Bound = { type, nullable, eval: ev, name: parts[parts.length - 1]! };
  return parts.length === 1 && field.watermarkDelayMs !== undefined ? { ...out, watermarkDelayMs: field.watermarkDelayMs } : out;
}

/** The common type two operands are converted to before comparing or adding (Spark's type coercion, simplified). */
function commonType(a: DataType, b: DataType): DataType {
  if (a.equals(b)) return a;
  if (a === NullType) return b;
  if (b === NullType) return a;
  const decimal = decimalCommonType(a, b);
  if (decimal) return decimal;
  if (isNumeric(a) && isNumeric(b)) {
    if (isIntegral(a) && isIntegral(b)) return a === LongType || b === LongType ? LongType : IntegerType;
    return DoubleType;
  }
  if ((a === TimestampType && b === StringType) || (a === StringType && b === TimestampType)) return TimestampType;
  if ((isNumeric(a) && b === StringType) || (a === StringType && isNumeric(b))) return DoubleType;
  if (a === StringType || b === StringType) return StringType;
  throw new AnalysisError(`Cannot combine ${a.simpleString()} with ${b.simpleString()}; add an explicit cast().`);
}

function coerce(b: Bound, to: DataType): Evaluator {
  if (b.type.equals(to) || b.type === NullType) return b.eval;
  const ev = b.eval;
  return (row) => castValue(ev(row), to);
}

export function compile(e: Expr, schema: StructType, ctx: EvalContext): Bound {
  const name = exprName(e);
  switch (e.kind) {
    case 'col':
      return resolveColumn(e.name, schema);
    case 'star':
      throw new AnalysisError(`\`${name}\` can only be used directly in select(), not inside an expression.`);
    case 'lit': {
      const v = e.value;
      const type = v instanceof CalendarInterval ? CalendarIntervalType : literalType(v);
      return { type, nullable: v == null, eval: () => v, name };
    }
    case 'alias': {
      const c = compile(e.child, schema, ctx);
      return { ...c, name: e.name };
    }
    case 'cast': {
      const c = compile(e.child, schema, ctx);
      const to = e.to;
      const ev = c.eval;
      return { type: to, nullable: true, eval: (row) => castValue(ev(row), to), name: c.name };
    }
    case 'field': {
      const c = compile(e.child, schema, ctx);
      if (!(c.type instanceof StructType)) {
        throw new AnalysisError(`getField('${e.name}'): \`${c.name}\` is ${c.type.simpleString()}, not a struct.`);
      }
      const f = c.type.field(e.name);
      if (!f) throw new AnalysisError(`Struct \`${c.name}\` has no field \`${e.name}\`.${suggest(e.name, c.type)}`);
      const ev = c.eval;
      const k = f.name;
      return {
        type: f.dataType,
        nullable: true,
        eval: (row) => {
          const o = ev(row) as Row | null;
          return o == null ? null : (o[k] ?? null);
        },
        name,
      };
    }
    case 'not': {
      const c = compile(e.child, schema, ctx);
      const ev = coerce(c, BooleanType);
      return {
        type: BooleanType,
        nullable: c.nullable,
        eval: (row) => {
          const v = ev(row);
          return v == null ? null : !v;
        },
        name,
      };
    }
    case 'neg': {
      const c = compile(e.child, schema, ctx);
      if (!isNumeric(c.type)) throw new AnalysisError(`Cannot negate \`${c.name}\` of type ${c.type.simpleString()}.`);
      const ev = c.eval;
      return {
        ...c,
        eval: (row) => {
          const v = ev(row) as number | null;
          return v == null ? null : -v;
        },
        name,
      };
    }
    case 'isNull': {
      const c = compile(e.child, schema, ctx);
      const ev = c.eval;
      const neg = e.negated;
      return { type: BooleanType, nullable: false, eval: (row) => (ev(row) == null) !== neg, name };
    }
    case 'in': {
      const c = compile(e.child, schema, ctx);
      const vals = e.values.map((v) => compile(v, schema, ctx));
      const t = vals.reduce((acc, v) => commonType(acc, v.type), c.type);
      const ev = coerce(c, t);
      const vevs = vals.map((v) => coerce(v, t));
      return {
        type: BooleanType,
        nullable: true,
        eval: (row) => {
          const x = ev(row);
          if (x == null) return null;
          let sawNull = false;
          for (const ve of vevs) {
            const y = ve(row);
            if (y == null) sawNull = true;
            else if (compareValues(x, y) === 0) return true;
          }
          return sawNull ? null : false;
        },
        name,
      };
    }
    case 'case': {
      const conds = e.branches.map(([c]) => coerce(compile(c, schema, ctx), BooleanType));
      const values = e.branches.map(([, v]) => compile(v, schema, ctx));
      const other = e.otherwise ? compile(e.otherwise, schema, ctx) : undefined;
      const t = [...values, ...(other ? [other] : [])].reduce<DataType>((acc, v) => commonType(acc, v.type), NullType);
      const vevs = values.map((v) => coerce(v, t));
      const oev = other ? coerce(other, t) : () => null;
      return {
        type: t,
        nullable: true,
        eval: (row) => {
          for (let i = 0; i < conds.length; i++) if (conds[i]!(row) === true) return vevs[i]!(row);
          return oev(row);
        },
        name,
      };
    }
    case 'binary':
      return compileBinary(e.op, compile(e.left, schema, ctx), compile(e.right, schema, ctx), name);
    case 'fn': {
      const def = FUNCTIONS.get(e.name);
      if (!def) throw new AnalysisError(`Unknown function ${e.name}().`);
      // `struct('*')` and friends: a star argument expands to the columns it names.
      const args = e.args.some((a) => a.kind === 'star')
        ? expandProjection(e.args, schema, ctx)
        : e.args.map((a) => compile(a, schema, ctx));
      const r = def.bind({ name: e.name, args, options: e.options ?? {}, ctx, argExprs: e.args });
      const out: Bound = { type: r.type, nullable: r.nullable ?? true, eval: r.eval, name };
      return r.watermarkDelayMs !== undefined ? { ...out, watermarkDelayMs: r.watermarkDelayMs } : out;
    }
  }
}

function compileBinary(op: string, l: Bound, r: Bound, name: string): Bound {
  if (op === 'and' || op === 'or') {
    const le = coerce(l, BooleanType);
    const re = coerce(r, BooleanType);
    // SQL three-valued logic: false AND null = false, true OR null = true.
    const ev: Evaluator =
      op === 'and'
        ? (row) => {
            const a = le(row);
            if (a === false) return false;
            const b = re(row);
            if (b === false) return false;
            return a == null || b == null ? null : true;
          }
        : (row) => {
            const a = le(row);
            if (a === true) return true;
            const b = re(row);
            if (b === true) return true;
            return a == null || b == null ? null : false;
          };
    return { type: BooleanType, nullable: true, eval: ev, name };
  }
  if (['=', '!=', '<', '<=', '>', '>=', '<=>'].includes(op)) {
    const t = commonType(l.type, r.type);
    const le = coerce(l, t);
    const re = coerce(r, t);
    const test: (c: number) => boolean =
      op === '=' || op === '<=>'
        ? (c) => c === 0
        : op === '!='
          ? (c) => c !== 0
          : op === '<'
            ? (c) => c < 0
            : op === '<='
              ? (c) => c <= 0
              : op === '>'
                ? (c) => c > 0
                : (c) => c >= 0;
    const nullSafe = op === '<=>';
    return {
      type: BooleanType,
      nullable: !nullSafe,
      eval: (row) => {
        const a = le(row);
        const b = re(row);
        if (a == null || b == null) return nullSafe ? a == null && b == null : null;
        return test(compareValues(a, b));
      },
      name,
    };
  }
  // timestamp ± interval (and date ± interval, interval ± interval).
  const timed = intervalArithmetic(op, l.type, r.type, wholeDays(l) && wholeDays(r));
  if (timed) {
    const le = l.eval;
    const re = r.eval;
    const apply = timed.apply;
    return {
      type: timed.type,
      nullable: true,
      eval: (row) => {
        const a = le(row);
        const b = re(row);
        return a == null || b == null ? null : apply(a, b);
      },
      name,
    };
  }
  if (l.type === CalendarIntervalType || r.type === CalendarIntervalType) {
    throw new AnalysisError(
      `Cannot apply ${op} to ${l.type.simpleString()} and ${r.type.simpleString()} in ${name}: an interval is added to or subtracted from a timestamp or a date.`,
    );
  }
  // Arithmetic. Spark's `/` always yields double; `+` on strings casts them to double.
  let t = commonType(l.type, r.type);
  if (!isNumeric(t)) {
    if (t === StringType) t = DoubleType;
    else throw new AnalysisError(`Cannot apply ${op} to ${l.type.simpleString()} and ${r.type.simpleString()} in ${name}.`);
  }
  if (op === '/') t = DoubleType;
  const le = coerce(l, t);
  const re = coerce(r, t);
  const integral = isIntegral(t);
  const f: (a: number, b: number) => number | null =
    op === '+'
      ? (a, b) => a + b
      : op === '-'
        ? (a, b) => a - b
        : op === '*'
          ? (a, b) => a * b
          : op === '/'
            ? (a, b) => (b === 0 ? null : a / b)
            : (a, b) => (b === 0 ? null : integral ? a % b : a % b);
  return {
    type: t,
    nullable: true,
    eval: (row) => {
      const a = le(row) as number | null;
      const b = re(row) as number | null;
      return a == null || b == null ? null : f(a, b);
    },
    name,
  };
}

/**
 * False when `b` is an interval with a time part, or one not known before the query runs: a date plus such
 * an interval is a timestamp, a date plus whole days stays a date. Interval values only come from literals
 * (no source has interval columns), so evaluating one without a row is safe; anything else counts as timed.
 */
function wholeDays(b: Bound): boolean {
  if (b.type !== CalendarIntervalType) return true;
  try {
    const v = b.eval({});
    return v instanceof CalendarInterval && v.ms === 0;
  } catch {
    return false;
  }
}

/** Output columns of `select(...)`: `*` and `x.*` expand to the fields they name. */
export function expandProjection(exprs: Expr[], schema: StructType, ctx: EvalContext): Bound[] {
  const out: Bound[] = [];
  for (const e of exprs) {
    if (e.kind === 'star') {
      if (!e.qualifier) {
        for (const f of schema.fields) out.push(resolveColumn('`' + f.name + '`', schema));
      } else if (!schema.field(e.qualifier) && schema.fields.some((f) => f.qualifier === e.qualifier)) {
        // `o.*` after `df.alias('o')` (a join's side): that side's columns.
        for (const f of schema.fields) if (f.qualifier === e.qualifier) out.push(resolveColumn('`' + f.name + '`', schema));
      } else {
        const parent = resolveColumn(e.qualifier, schema);
        if (!(parent.type instanceof StructType)) {
          throw new AnalysisError(
            `\`${e.qualifier}.*\` needs a struct column, but \`${e.qualifier}\` is ${parent.type.simpleString()}.`,
          );
        }
        const pev = parent.eval;
        for (const f of parent.type.fields) {
          const k = f.name;
          out.push({
            type: f.dataType,
            nullable: true,
            eval: (row) => {
              const o = pev(row) as Row | null;
              return o == null ? null : (o[k] ?? null);
            },
            name: f.name,
          });
        }
      }
    } else out.push(compile(e, schema, ctx));
  }
  return out;
}

export function schemaOf(bounds: Bound[]): StructType {
  const fields: StructField[] = bounds.map((b) => ({
    name: b.name,
    dataType: b.type,
    nullable: b.nullable,
    ...(b.watermarkDelayMs !== undefined ? { watermarkDelayMs: b.watermarkDelayMs } : {}),
  }));
  return new StructType(fields);
}

/**
 * Builds the row-producing closure of a projection: an object literal of the projection's names, generated
 * once per projection, so every output row has the same shape from birth (V8's fast properties). Filling an
 * empty object name by name made every row a dictionary-mode object: 2–3× slower to build and to read in the
 * next step. Names go in as JSON strings; `__proto__` as a computed key, which defines a field instead of
 * setting the prototype. A name given twice keeps its first position and last value, as assignment did.
 */
export function projector(bounds: Bound[]): (row: Row) => Row {
  const evs = bounds.map((b) => b.eval);
  const fields = bounds.map((b, i) => `${b.name === '__proto__' ? `[${JSON.stringify(b.name)}]` : JSON.stringify(b.name)}: e[${i}](row)`);
  // eslint-disable-next-line @typescript-eslint/no-implied-eval -- generated from column names, each JSON-quoted
  return new Function('e', `return (row) => ({${fields.join(', ')}});`)(evs) as (row: Row) => Row;
}
