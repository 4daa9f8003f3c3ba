/**
 * A logical plan as data that crosses threads (exec/tasks.ts sends the stateless part of a query to worker
 * threads, which analyze it again and run it on their chunks). `postMessage` copies plain objects, arrays,
 * Dates, typed arrays and bigints, but not class instances or functions, so this codec tags what it must:
 * data types (by structure, with nullability and watermark metadata, which decide output schemas such as
 * toAvro's), decimals, microsecond timestamps and Buffers. A JS function anywhere (a UDF, `map`, a row
 * filter) makes the plan not portable: it cannot leave its thread, so that part of the query stays there.
 */
import type { Expr } from '../expr/column.js';
import { lookupFunction } from '../expr/compile.js';
import {
  ArrayType,
  DataType,
  Decimal,
  MapType,
  MicrosDate,
  StructField,
  StructType,
  parseDataType,
} from '../types/index.js';
import type { LogicalPlan } from './logical.js';

/** A plan, type or value in its portable form (structured-cloneable). */
export type Portable = unknown;

/** Why something cannot cross to another thread. */
export class NotPortable extends Error {}

/** A data type as plain data: by structure, keeping nullability and the watermark/qualifier metadata. */
export function typeToData(t: DataType): Portable {
  if (t instanceof StructType) {
    return {
      struct: t.fields.map((f) => ({
        name: f.name,
        type: typeToData(f.dataType),
        nullable: f.nullable,
        ...(f.watermarkDelayMs !== undefined ? { watermarkDelayMs: f.watermarkDelayMs } : {}),
        ...(f.qualifier !== undefined ? { qualifier: f.qualifier } : {}),
        ...(f.sideName !== undefined ? { sideName: f.sideName } : {}),
      })),
    };
  }
  if (t instanceof ArrayType) return { array: typeToData(t.elementType), containsNull: t.containsNull };
  if (t instanceof MapType) return { map: [typeToData(t.keyType), typeToData(t.valueType)] };
  return t.simpleString(); // atomic and decimal(p,s): parseDataType gives back the same (singleton) type
}

export function typeFromData(d: Portable): DataType {
  if (typeof d === 'string') return parseDataType(d);
  const o = d as { struct?: Array<Record<string, unknown>>; array?: Portable; containsNull?: boolean; map?: [Portable, Portable] };
  if (o.struct) {
    return new StructType(
      o.struct.map(
        (f): StructField => ({
          name: f.name as string,
          dataType: typeFromData(f.type),
          nullable: f.nullable as boolean,
          ...(f.watermarkDelayMs !== undefined ? { watermarkDelayMs: f.watermarkDelayMs as number } : {}),
          ...(f.qualifier !== undefined ? { qualifier: f.qualifier as string } : {}),
          ...(f.sideName !== undefined ? { sideName: f.sideName as string } : {}),
        }),
      ),
    );
  }
  if (o.array !== undefined) return new ArrayType(typeFromData(o.array), o.containsNull ?? true);
  if (o.map) return new MapType(typeFromData(o.map[0]), typeFromData(o.map[1]));
  throw new Error(`Not a portable data type: ${JSON.stringify(d)} (internal error).`);
}

const TAG = '$sluice';

/**
 * Any value of a plan (a literal, a function's options) in portable form. Symbol-keyed properties are left
 * behind on purpose: functions cache prepared state there (a fetched schema), which the other thread
 * prepares again.
 */
export function valueToData(v: unknown, where: string): Portable {
  if (v === null || v === undefined || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return v;
  if (typeof v === 'function') throw new NotPortable(`${where} holds a JavaScript function, which cannot leave its thread`);
  if (typeof v !== 'object') throw new NotPortable(`${where} holds a ${typeof v}`);
  if (v instanceof MicrosDate) return { [TAG]: 'micros', ms: v.getTime(), us: v.microsOfMilli };
  if (v instanceof Date) return v;
  if (Buffer.isBuffer(v)) return { [TAG]: 'buffer', bytes: new Uint8Array(v) };
  if (v instanceof Decimal) return { [TAG]: 'decimal', unscaled: v.unscaled, scale: v.scale };
  if (v instanceof DataType) return { [TAG]: 'type', type: typeToData(v) };
  if (Array.isArray(v)) return v.map((x, i) => valueToData(x, `${where}[${i}]`));
  const proto = Object.getPrototypeOf(v) as object | null;
  if (proto !== Object.prototype && proto !== null) {
    throw new NotPortable(`${where} holds an object of class ${(v as object).constructor?.name ?? '?'}`);
  }
  // A function call: its options as the function says they cross (what its prepare() found, e.g. a schema).
  const fn = v as { kind?: unknown; name?: unknown; options?: Record<string, unknown> };
  const def = fn.kind === 'fn' && typeof fn.name === 'string' && fn.options ? lookupFunction(fn.name) : undefined;
  const source = def?.portableOptions ? { ...v, options: def.portableOptions(fn.options!) } : v;
  const out: Record<string, Portable> = {};
  for (const [k, x] of Object.entries(source)) out[k] = valueToData(x, `${where}.${k}`);
  return out;
}

export function valueFromData(d: Portable): unknown {
  if (d === null || typeof d !== 'object' || d instanceof Date) return d;
  if (Array.isArray(d)) return d.map(valueFromData);
  const o = d as Record<string, unknown>;
  switch (o[TAG]) {
    case 'micros':
      return new MicrosDate(o.ms as number, o.us as number);
    case 'buffer':
      return Buffer.from(o.bytes as Uint8Array);
    case 'decimal':
      return Decimal.of(o.unscaled as bigint, o.scale as number);
    case 'type':
      return typeFromData(o.type);
  }
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(o)) out[k] = valueFromData(x);
  return out;
}

/** Node kinds a worker can run: per-row steps and the watermark's event-time observation. */
const STATELESS = new Set<LogicalPlan['kind']>(['project', 'filter', 'withColumns', 'drop', 'rename', 'alias', 'watermark']);
const STATEFUL = new Set<LogicalPlan['kind']>(['aggregate', 'dedupe', 'groupState']);

/**
 * The part of a query that worker threads can run for it: the per-row steps between its one streaming
 * source and its first stateful operator (or its sink), as a plan of its own. Undefined, with the reason,
 * when there is none — a join or union (more than one input), a step with a JS function, or nothing but the
 * source. The cut is only ever right below a stateful operator (or at the top), where the analyzer starts a
 * new stage: so the sub-plan's stages are exactly the first stages of the whole plan's source.
 */
export function statelessPrefix(plan: LogicalPlan): { plan: LogicalPlan; needed?: string[]; aggregate?: LogicalPlan } | { reason: string } {
  // Walk down the chain from the sink's side; remember the node below the lowest stateful operator.
  let top: LogicalPlan = plan;
  let node: LogicalPlan = plan;
  let above: LogicalPlan | undefined;
  for (;;) {
    if (node.kind === 'streamingSource') break;
    if (STATEFUL.has(node.kind)) {
      top = (node as { child: LogicalPlan }).child;
      above = node;
    }
    else if (node.kind === 'join' || node.kind === 'union') return { reason: `the plan has a ${node.kind} (tasks run one input's per-row steps)` };
    if (!('child' in node)) return { reason: `the plan's input is a ${node.kind}, not a stream` };
    node = node.child;
  }
  // Everything from `top` down to the source must be per-row steps that can cross.
  const steps: LogicalPlan[] = [];
  for (let n: LogicalPlan = top; n.kind !== 'streamingSource'; n = (n as { child: LogicalPlan }).child) {
    if (n.kind === 'mapRows') return { reason: `${n.label} is a JavaScript function, which runs only in the query's thread` };
    if (!STATELESS.has(n.kind)) return { reason: `the plan has a ${n.kind} between its source and its first stateful operator` };
    steps.push(n);
  }
  if (!steps.some((s) => s.kind !== 'watermark' && s.kind !== 'alias')) return { reason: 'there are no per-row steps to run' };
  // An aggregation reads only the columns its keys and aggregates name: only those need to come back.
  const needed = above?.kind === 'aggregate' ? columnsNamed([...above.groupBy, ...above.aggs]) : undefined;
  const watermarks = steps.flatMap((s) => (s.kind === 'watermark' ? [s.column] : []));
  return {
    plan: top,
    ...(needed ? { needed: [...new Set([...needed, ...watermarks])] } : {}),
    // The aggregation itself, which workers may pre-aggregate chunk by chunk (exec/tasks/).
    ...(above?.kind === 'aggregate' ? { aggregate: above } : {}),
  };
}

/**
 * The top-level columns expressions may name (`a.b`: `a.b`, `a` and `b`), or undefined when one reads every
 * column (a `*`).
 */
function columnsNamed(exprs: Expr[]): string[] | undefined {
  const out: string[] = [];
  const visit = (e: unknown): boolean => {
    if (e === null || typeof e !== 'object') return true;
    if (Array.isArray(e)) return e.every(visit);
    const x = e as { kind?: string; name?: unknown };
    if (x.kind === 'star') return false;
    if (x.kind === 'col' && typeof x.name === 'string') {
      // Over-inclusive on purpose: `e.user` may be column `user` of the DataFrame aliased `e`, field `user` of
      // struct column `e`, or a column named "e.user".
      const name = x.name.replace(/`/g, '');
      const parts = name.split('.');
      out.push(name, ...parts);
      return true;
    }
    return Object.values(e).every(visit);
  };
  return exprs.every(visit) ? out : undefined;
}

/** A plan made only of portable nodes (see {@link statelessPrefix}) as data; throws NotPortable otherwise. */
export function planToData(p: LogicalPlan): Portable {
  const e = (x: Expr, where: string): Portable => valueToData(x, where);
  switch (p.kind) {
    case 'streamingSource': {
      const { format, options, userSchema, instance } = p.spec;
      // An in-process source (MemoryStream) stays where it is: the other side needs only its schema.
      return {
        kind: p.kind,
        spec: { format, options: { ...options }, ...(userSchema ? { userSchema: typeToData(userSchema) } : {}), ...(instance ? { schema: typeToData(instance.schema) } : {}) },
      };
    }
    case 'project':
      return { kind: p.kind, child: planToData(p.child), exprs: p.exprs.map((x, i) => e(x, `select() column ${i + 1}`)) };
    case 'filter':
      return { kind: p.kind, child: planToData(p.child), condition: e(p.condition, 'filter()') };
    case 'withColumns':
      return { kind: p.kind, child: planToData(p.child), columns: p.columns.map((c) => ({ name: c.name, expr: e(c.expr, `withColumn('${c.name}')`) })) };
    case 'drop':
    case 'rename':
    case 'alias':
    case 'watermark':
      return { ...p, child: planToData(p.child) };
    case 'aggregate':
      return {
        kind: p.kind,
        child: planToData(p.child),
        groupBy: p.groupBy.map((x, i) => e(x, `groupBy() column ${i + 1}`)),
        aggs: p.aggs.map((x, i) => e(x, `agg() column ${i + 1}`)),
      };
    default:
      throw new NotPortable(`a ${p.kind} does not run in a worker thread`);
  }
}

export function planFromData(d: Portable): LogicalPlan {
  const o = d as Record<string, unknown> & { kind: LogicalPlan['kind'] };
  const child = (): LogicalPlan => planFromData(o.child);
  switch (o.kind) {
    case 'streamingSource': {
      const s = o.spec as { format: string; options: Record<string, string>; userSchema?: Portable; schema?: Portable };
      const schema = s.schema !== undefined ? (typeFromData(s.schema) as StructType) : undefined;
      return {
        kind: 'streamingSource',
        spec: {
          format: s.format,
          options: s.options,
          ...(s.userSchema !== undefined ? { userSchema: typeFromData(s.userSchema) as StructType } : {}),
          // Only its schema is read on this side (analysis); reading rows stays with the query's thread.
          ...(schema ? { instance: schemaOnlySource(schema) } : {}),
        },
      };
    }
    case 'project':
      return { kind: 'project', child: child(), exprs: (o.exprs as Portable[]).map((x) => valueFromData(x) as Expr) };
    case 'filter':
      return { kind: 'filter', child: child(), condition: valueFromData(o.condition) as Expr };
    case 'withColumns':
      return {
        kind: 'withColumns',
        child: child(),
        columns: (o.columns as Array<{ name: string; expr: Portable }>).map((c) => ({ name: c.name, expr: valueFromData(c.expr) as Expr })),
      };
    case 'drop':
    case 'rename':
    case 'alias':
    case 'watermark':
      return { ...(o as object), child: child() } as LogicalPlan;
    case 'aggregate':
      return {
        kind: 'aggregate',
        child: child(),
        groupBy: (o.groupBy as Portable[]).map((x) => valueFromData(x) as Expr),
        aggs: (o.aggs as Portable[]).map((x) => valueFromData(x) as Expr),
      };
    default:
      throw new Error(`Not a portable plan node: ${o.kind} (internal error).`);
  }
}

/** A stand-in for an in-process source on the other side of a thread: it has a schema and nothing else. */
function schemaOnlySource(schema: StructType): NonNullable<import('./logical.js').SourceSpec['instance']> {
  const no = (): never => {
    throw new Error('A worker thread does not read sources (internal error).');
  };
  return { schema, describe: () => 'worker stand-in', initialOffset: no, latestOffset: no, getBatch: no, stop: async () => {} } as unknown as NonNullable<
    import('./logical.js').SourceSpec['instance']
  >;
}
