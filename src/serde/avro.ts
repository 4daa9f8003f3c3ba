/**
 * Avro with a Schema Registry: `fromAvro` decodes each record by the writer schema id in its header and
 * projects it onto the reader schema (Avro schema resolution: added fields take their default, removed
 * fields are skipped); `toAvro` encodes with a registered schema and frames the result. Avro itself is
 * avsc's; Sluice maps Avro types to Spark types as Spark's SchemaConverters does.
 */
import avro from 'avsc';
import { Column, ColumnLike, colExpr } from '../expr/column.js';
import { AnalysisError, registerFunction } from '../expr/compile.js';
import { NeedsIO, RecordError, formatDate } from '../expr/values.js';
import {
  ArrayType,
  BinaryType,
  BooleanType,
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
  Row,
  StringType,
  StructType,
  TimestampType,
  epochMicros,
  fromEpochMicros,
} from '../types/index.js';
import { REGISTRY_DEFAULTS, RegistryConfig, RegistryError, registryClient } from './registry.js';
import { frame, unframe } from './wireformat.js';
import { redactUrl } from '../util/redact.js';
import { NotPortable } from '../plan/portable.js';

type AvroSchema = string | AvroSchema[] | { [k: string]: unknown };

export interface FromAvroOptions {
  /** The Schema Registry that holds the writer schemas. */
  registry?: RegistryConfig;
  /** Reader schema = latest version of this subject (when `schema` and `schemaId` are not given). */
  subject?: string;
  /** Reader schema = the schema with this id. */
  schemaId?: number;
  /** Reader schema given directly (Avro JSON). Without a registry, records must be plain Avro (no header). */
  schema?: string | object;
  /** `DEADLETTER` (default): an undecodable record goes to the dead-letter destination. `FAILFAST`: the query stops. */
  mode?: 'DEADLETTER' | 'FAILFAST' | 'PERMISSIVE';
  /**
   * A tombstone — a Kafka record with a null value (the `value` column), which on a compacted topic deletes
   * its key — is not an Avro record; a null in any other column decodes to null. `deadLetter` (default): it goes to the dead-letter destination with reason `tombstone` (with
   * FAILFAST it stops the query; with PERMISSIVE it decodes to null). `keep`: it decodes to a null struct,
   * so the row stays, and `toAvro` of that null column writes a tombstone again — keep the struct whole
   * (`select(col('key'), toAvro(col('event')))`) to pass deletes through; expanding it (`event.*`) makes
   * all-null columns, which encode as a record of nulls. (Spark's `from_avro` returns null for a null value.)
   */
  tombstones?: 'deadLetter' | 'keep';
}

export interface ToAvroOptions {
  registry?: RegistryConfig;
  /** Subject to register under / read from (TopicNameStrategy: `<topic>-value`). */
  subject?: string;
  /** Register the schema derived from the column's type (default true). If false, use the subject's latest. */
  autoRegister?: boolean;
  /** The writer schema (Avro JSON); default: derived from the column's type. */
  schema?: string | object;
  /** Record name and namespace of a derived schema (Spark: topLevelRecord). */
  recordName?: string;
  recordNamespace?: string;
}

/** Decodes an Avro (Confluent-framed when a registry is given) binary column into a struct. */
export function fromAvro(c: ColumnLike, options: FromAvroOptions): Column {
  return new Column({ kind: 'fn', name: 'from_avro', args: [colExpr(c)], options: { ...options } as Record<string, unknown> });
}
/** Encodes a column (usually `struct(...)`) as Avro, framed with its registered schema id. */
export function toAvro(c: ColumnLike, options: ToAvroOptions = {}): Column {
  return new Column({ kind: 'fn', name: 'to_avro', args: [colExpr(c)], options: { ...options } as Record<string, unknown> });
}
export { fromAvro as from_avro, toAvro as to_avro };

// ------------------------------------------------------------------ Avro <-> Spark types

function logical(s: { [k: string]: unknown }): string | undefined {
  return typeof s.logicalType === 'string' ? s.logicalType : undefined;
}

const PRIMITIVES = new Set(['null', 'boolean', 'int', 'long', 'float', 'double', 'bytes', 'string']);

/** The Avro type name of a branch as Spark's union rules see it (`int`, `long`, `record`, …; logical types count as their base). */
function baseTypeName(s: AvroSchema, named: Map<string, AvroSchema>, namespace: string): string | undefined {
  if (typeof s === 'string') {
    if (PRIMITIVES.has(s)) return s;
    const ref = named.get(s) ?? named.get(`${namespace}.${s}`);
    return ref === undefined ? undefined : baseTypeName(ref, named, namespace);
  }
  if (Array.isArray(s)) return 'union';
  return typeof s.type === 'string' ? s.type : baseTypeName(s.type as AvroSchema, named, namespace);
}

/** Spark's type for a union of several non-null branches: int+long → long, float+double → double, else undefined (a struct). */
function numericUnionType(names: Array<string | undefined>): DataType | undefined {
  if (names.length !== 2) return undefined;
  const set = new Set(names);
  if (set.has('int') && set.has('long')) return LongType;
  if (set.has('float') && set.has('double')) return DoubleType;
  return undefined;
}

/**
 * The decimal type of an Avro `decimal` logical type on `bytes` or `fixed`, or undefined when the logical
 * type is not valid (Avro then ignores it and the value is plain binary, as in Spark): precision ≥ 1,
 * 0 ≤ scale ≤ precision, and for a `fixed` a precision its size can hold. Above 38 digits Spark refuses.
 */
function decimalOf(s: { [k: string]: unknown }): DecimalType | undefined {
  if (logical(s) !== 'decimal' || (s.type !== 'bytes' && s.type !== 'fixed')) return undefined;
  const precision = s.precision;
  const scale = s.scale ?? 0;
  if (typeof precision !== 'number' || !Number.isInteger(precision) || precision < 1) return undefined;
  if (typeof scale !== 'number' || !Number.isInteger(scale) || scale < 0 || scale > precision) return undefined;
  // Avro's maxPrecision for a fixed of n bytes: floor(log10(2^(8n-1) - 1)).
  if (s.type === 'fixed' && precision > Math.floor(Math.log10(2) * (8 * Number(s.size) - 1))) return undefined;
  if (precision > DecimalType.MAX_PRECISION) {
    throw new AnalysisError(
      `Avro decimal(${precision},${scale}) has more digits than Spark's decimal can hold (${DecimalType.MAX_PRECISION}); ` +
        'read it as bytes by removing the logicalType from the reader schema.',
    );
  }
  return new DecimalType(precision, scale);
}

/** Bytes a `fixed` needs for any decimal of this precision (Spark's `Decimal.minBytesForPrecision`). */
function minBytesForPrecision(precision: number): number {
  let n = 1;
  while (1n << BigInt(8 * n - 1) < 10n ** BigInt(precision)) n++;
  return n;
}

/**
 * The Spark type of an Avro schema, as Spark's SchemaConverters.toSqlType: records → struct; [null, T] →
 * nullable T; a union of several non-null types → struct<member0, member1, …> in branch order, nulls left
 * out (int+long → long and float+double → double instead); timestamp-millis/-micros → timestamp;
 * decimal on bytes/fixed → decimal(p,s).
 */
export function avroToSparkType(schema: AvroSchema, named = new Map<string, AvroSchema>(), namespace = ''): DataType {
  if (typeof schema === 'string') {
    switch (schema) {
      case 'string':
        return StringType;
      case 'int':
        return IntegerType;
      case 'long':
        return LongType;
      case 'float':
        return FloatType;
      case 'double':
        return DoubleType;
      case 'boolean':
        return BooleanType;
      case 'bytes':
        return BinaryType;
      case 'null':
        return NullType;
      default: {
        const ref = named.get(schema) ?? named.get(`${namespace}.${schema}`);
        if (!ref) throw new AnalysisError(`Avro schema refers to unknown type "${schema}".`);
        return avroToSparkType(ref, named, namespace);
      }
    }
  }
  if (Array.isArray(schema)) {
    const nonNull = schema.filter((s) => s !== 'null');
    if (nonNull.length === 1) return avroToSparkType(nonNull[0]!, named, namespace);
    const numeric = numericUnionType(nonNull.map((s) => baseTypeName(s, named, namespace)));
    if (numeric) return numeric;
    // Spark turns other unions into a struct member0, member1, … (only the branch that was written is non-null).
    return new StructType(nonNull.map((s, i) => ({ name: `member${i}`, dataType: avroToSparkType(s, named, namespace), nullable: true })));
  }
  const type = schema.type as AvroSchema;
  const lt = logical(schema);
  if (lt === 'timestamp-millis' || lt === 'timestamp-micros' || lt === 'local-timestamp-millis' || lt === 'local-timestamp-micros') {
    return TimestampType;
  }
  if (lt === 'date') return DateType;
  const decimal = decimalOf(schema);
  if (decimal) {
    if (type === 'fixed') named.set(schema.name as string, schema);
    return decimal;
  }
  switch (type) {
    case 'record': {
      const ns = (schema.namespace as string | undefined) ?? namespace;
      const name = schema.name as string;
      const full = name.includes('.') ? name : ns ? `${ns}.${name}` : name;
      named.set(full, schema);
      named.set(name, schema);
      const fields = schema.fields as Array<{ name: string; type: AvroSchema }>;
      return new StructType(
        fields.map((f) => ({
          name: f.name,
          dataType: avroToSparkType(f.type, named, ns),
          nullable: Array.isArray(f.type) && f.type.includes('null'),
        })),
      );
    }
    case 'enum':
      named.set(schema.name as string, schema);
      return StringType;
    case 'fixed':
      named.set(schema.name as string, schema);
      return BinaryType;
    case 'array':
      return new ArrayType(avroToSparkType(schema.items as AvroSchema, named, namespace));
    case 'map':
      return new MapType(StringType, avroToSparkType(schema.values as AvroSchema, named, namespace));
    default:
      return avroToSparkType(type, named, namespace);
  }
}

/**
 * The Avro schema for a Spark type (nullable fields become ["null", T] with default null, so they can evolve).
 * A decimal(p,s) becomes a `fixed` of the fewest bytes that hold p digits with the decimal logical type, as
 * Spark's SchemaConverters.toAvroType writes it. Timestamps stay timestamp-millis (Spark writes
 * timestamp-micros): see docs/decisions.md, "Timestamps keep microseconds".
 */
export function sparkToAvroSchema(t: DataType, name = 'topLevelRecord', namespace = ''): AvroSchema {
  let n = 0;
  const walk = (type: DataType, recName: string): AvroSchema => {
    if (type instanceof StructType) {
      const rec: { [k: string]: unknown } = {
        type: 'record',
        name: recName,
        fields: type.fields.map((f) => {
          const inner = walk(f.dataType, `${recName}_${f.name}`.replace(/[^A-Za-z0-9_]/g, '_'));
          return f.nullable ? { name: f.name, type: ['null', inner], default: null } : { name: f.name, type: inner };
        }),
      };
      if (namespace && n++ === 0) rec.namespace = namespace;
      return rec;
    }
    if (type instanceof ArrayType) return { type: 'array', items: walk(type.elementType, recName) };
    if (type instanceof MapType) return { type: 'map', values: walk(type.valueType, recName) };
    if (type instanceof DecimalType) {
      // Spark names it "<record>.<field>.fixed" so that two decimal fields never clash; so does this.
      return { type: 'fixed', name: `${recName}.fixed`, size: minBytesForPrecision(type.precision), logicalType: 'decimal', precision: type.precision, scale: type.scale };
    }
    if (type === StringType) return 'string';
    if (type === IntegerType) return 'int';
    if (type === LongType) return 'long';
    if (type === DoubleType) return 'double';
    if (type === FloatType) return 'float';
    if (type === BooleanType) return 'boolean';
    if (type === BinaryType) return 'bytes';
    if (type === TimestampType) return { type: 'long', logicalType: 'timestamp-millis' };
    if (type === DateType) return { type: 'int', logicalType: 'date' };
    if (type === NullType) return 'null';
    if (['smallint', 'tinyint'].includes(type.simpleString())) return 'int';
    throw new AnalysisError(`toAvro: no Avro type for ${type.simpleString()}.`);
  };
  return walk(t, name);
}

// ------------------------------------------------------------------ value conversion

type Conv = (v: unknown) => unknown;
const identity: Conv = (v) => v;
const DAY_MS = 86_400_000;

/** What differs between decoding and encoding: the conversion of logical types and of bytes, and the direction of unions. */
interface LeafConversions {
  readonly decoding: boolean;
  /** The conversion for a schema with a logical type, or undefined to convert it as its base type. */
  logical(schema: { [k: string]: unknown }): Conv | undefined;
  bytes: Conv;
}

/** Avro values → Sluice values: timestamps → Date (with microseconds), dates → 'YYYY-MM-DD', decimals → Decimal. */
const DECODE: LeafConversions = {
  decoding: true,
  logical: (s) => {
    const lt = logical(s);
    if (lt === 'timestamp-millis' || lt === 'local-timestamp-millis') return (v) => new Date(Number(v));
    // Spark keeps microseconds; a Date alone would cut them (MicrosDate keeps them: types/timestamp.ts).
    if (lt === 'timestamp-micros' || lt === 'local-timestamp-micros') return (v) => fromEpochMicros(Number(v));
    if (lt === 'date') return (v) => formatDate(new Date(Number(v) * DAY_MS));
    const decimal = decimalOf(s);
    if (decimal) return (v) => Decimal.fromTwosComplement(v as Buffer, decimal.scale);
    return undefined;
  },
  bytes: identity,
};

/**
 * A Sluice value as the Avro decimal `type` (two's complement bytes; a `fixed` is sign-extended to its size).
 * A Decimal must fit without rounding (a wider scale is rescaled only if the extra digits are zeros);
 * numbers and numeric strings are converted as a cast would (HALF_UP), since they carry no scale.
 */
function encodeDecimal(v: unknown, type: DecimalType, fixedSize: number | undefined): Buffer {
  let d = Decimal.from(v);
  if (d === null) throw new Error(`${String(v)} is not a decimal`);
  if (v instanceof Decimal && d.scale > type.scale && d.rescale(type.scale).compareTo(d) !== 0) {
    throw new Error(`${d.toPlainString()} has more than ${type.scale} decimal places for ${type.simpleString()}; round it first (cast to ${type.simpleString()})`);
  }
  d = d.rescale(type.scale);
  if (!d.fits(type.precision)) throw new Error(`${d.toPlainString()} has more than ${type.precision} digits for ${type.simpleString()}`);
  return d.toTwosComplement(fixedSize);
}

/** Sluice values → Avro values: the reverse of DECODE; strings are accepted for bytes. */
const ENCODE: LeafConversions = {
  decoding: false,
  logical: (s) => {
    const lt = logical(s);
    // Spark writes a timestamp's microseconds to timestamp-millis floored (microsToMillis): getTime() is that.
    if (lt === 'timestamp-millis' || lt === 'local-timestamp-millis') return (v) => (v instanceof Date ? v.getTime() : v);
    if (lt === 'timestamp-micros' || lt === 'local-timestamp-micros') return (v) => (v instanceof Date ? epochMicros(v) : v);
    if (lt === 'date') return (v) => (typeof v === 'string' ? Math.round(Date.parse(v + 'T00:00:00Z') / DAY_MS) : v);
    const decimal = decimalOf(s);
    if (decimal) {
      const size = s.type === 'fixed' ? Number(s.size) : undefined;
      return (v) => encodeDecimal(v, decimal, size);
    }
    return undefined;
  },
  bytes: (v) => (Buffer.isBuffer(v) ? v : Buffer.from(String(v))),
};

/** The JS "bucket" of a value, by which avsc picks the branch of an unwrapped union (avsc's getValueBucket). */
function valueBucket(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (Buffer.isBuffer(v)) return 'buffer';
  return typeof v;
}

/** The bucket of an avsc type's values (avsc's getTypeBucket; no avsc logical types are registered here). */
function typeBucket(t: avro.Type): string {
  switch (t.typeName) {
    case 'double':
    case 'float':
    case 'int':
    case 'long':
      return 'number';
    case 'bytes':
    case 'fixed':
      return 'buffer';
    case 'enum':
      return 'string';
    case 'map':
    case 'error':
    case 'record':
      return 'object';
    default:
      return t.typeName;
  }
}

/** Every named type of a schema by full name, wherever it is defined, so references resolve in any order. */
function collectNamed(schema: AvroSchema, namespace: string, into: Map<string, { [k: string]: unknown }>): void {
  if (typeof schema === 'string') return;
  if (Array.isArray(schema)) {
    for (const s of schema) collectNamed(s, namespace, into);
    return;
  }
  let ns = namespace;
  if (typeof schema.name === 'string' && ['record', 'error', 'enum', 'fixed'].includes(schema.type as string)) {
    const name = schema.name;
    ns = name.includes('.') ? name.slice(0, name.lastIndexOf('.')) : ((schema.namespace as string | undefined) ?? namespace);
    into.set(name.includes('.') ? name : ns ? `${ns}.${name}` : name, schema);
  }
  if (Array.isArray(schema.fields)) for (const f of schema.fields as Array<{ type: AvroSchema }>) collectNamed(f.type, ns, into);
  if (schema.items !== undefined) collectNamed(schema.items as AvroSchema, ns, into);
  if (schema.values !== undefined) collectNamed(schema.values as AvroSchema, ns, into);
  if (typeof schema.type === 'object') collectNamed(schema.type as AvroSchema, ns, into);
}

/**
 * A converter for values of `schema`, walked together with avsc's `type` for it (which has resolved the
 * named references, and knows whether avsc wraps each union). Records become plain objects, nulls stay
 * null, unions of several types become (or come from) Spark's member struct, leaves per `leaf`.
 */
function converterFor(schema: AvroSchema, type: avro.Type, leaf: LeafConversions): Conv {
  const named = new Map<string, { [k: string]: unknown }>();
  collectNamed(schema, '', named);
  const built = new Map<avro.Type, Conv>();

  const walk = (s: AvroSchema, t: avro.Type): Conv => {
    if (typeof s === 'string') {
      if (PRIMITIVES.has(s)) return s === 'bytes' ? leaf.bytes : identity;
      // A reference: avsc knows the type's full name; the definition has its logical type.
      const def = t.name !== undefined ? named.get(t.name) : undefined;
      return def ? walk(def, t) : identity;
    }
    if (Array.isArray(s)) return union(s, t as avro.types.WrappedUnionType | avro.types.UnwrappedUnionType);
    const byLogical = logical(s) ? leaf.logical(s) : undefined;
    if (byLogical) return byLogical;
    switch (s.type) {
      case 'record':
      case 'error': {
        const done = built.get(t);
        if (done) return done;
        // Recursive records refer back to themselves: register before building the fields.
        let fields: Array<readonly [string, Conv]> = [];
        const conv: Conv = (v) => {
          const src = v as Row;
          const o: Row = {};
          for (const [k, c] of fields) o[k] = src[k] == null ? null : c(src[k]);
          return o;
        };
        built.set(t, conv);
        const rt = t as avro.types.RecordType;
        fields = (s.fields as Array<{ name: string; type: AvroSchema }>).map((f, i) => [f.name, walk(f.type, rt.fields[i]!.type)] as const);
        return conv;
      }
      case 'array': {
        const inner = walk(s.items as AvroSchema, (t as avro.types.ArrayType).itemsType);
        return (v) => (v as unknown[]).map(inner);
      }
      case 'map': {
        const inner = walk(s.values as AvroSchema, (t as avro.types.MapType).valuesType as avro.Type);
        return (v) => Object.fromEntries(Object.entries(v as Row).map(([k, x]) => [k, inner(x)]));
      }
      case 'bytes':
        return leaf.bytes;
      default:
        return typeof s.type === 'object' ? walk(s.type as AvroSchema, t) : identity;
    }
  };

  const union = (s: AvroSchema[], t: avro.types.WrappedUnionType | avro.types.UnwrappedUnionType): Conv => {
    const wrapped = t.typeName === 'union:wrapped';
    const branches = s
      .map((b, i) => ({ schema: b, type: t.types[i]! }))
      .filter((b) => b.type.typeName !== 'null')
      .map((b) => ({ ...b, conv: walk(b.schema, b.type), key: b.type.branchName! }));
    if (branches.length === 0) return () => null;
    const unwrap = (v: unknown): unknown => (wrapped && v != null ? (v as Row)[Object.keys(v as Row)[0]!] : v);
    if (branches.length === 1) {
      // [null, T]: avsc never wraps it (null has its own bucket), but stay correct if it did.
      const only = branches[0]!;
      return leaf.decoding
        ? (v) => (v == null ? null : only.conv(unwrap(v)))
        : (v) => (v == null ? null : wrapped ? { [only.key]: only.conv(v) } : only.conv(v));
    }
    const numeric = numericUnionType(branches.map((b) => b.type.typeName));
    if (numeric) {
      // Spark reads int+long as long and float+double as double, and writes the wider branch back.
      const wide = branches.find((b) => b.type.typeName === (numeric === LongType ? 'long' : 'double'))!;
      return leaf.decoding ? (v) => (v == null ? null : unwrap(v)) : (v) => (v == null ? null : wrapped ? { [wide.key]: v } : v);
    }
    if (leaf.decoding) {
      // Which branch was written: a wrapped union names it; an unwrapped one is told apart by the value's kind.
      const byKey = new Map(branches.map((b, i) => [b.key, i]));
      const byBucket = new Map(branches.map((b, i) => [typeBucket(b.type), i]));
      return (v) => {
        if (v == null) return null;
        const i = wrapped ? byKey.get(Object.keys(v as Row)[0]!) : byBucket.get(valueBucket(v));
        if (i === undefined) throw new Error(`a value of none of the union's types: ${String(v)}`);
        const out: Row = {};
        branches.forEach((b, j) => (out[`member${j}`] = j === i ? b.conv(unwrap(v)) : null));
        return out;
      };
    }
    // Encoding Spark's member struct: the first non-null member is the branch written (Spark's AvroSerializer).
    return (v) => {
      if (v == null) return null;
      const o = v as Row;
      if (typeof o !== 'object' || Array.isArray(o) || Buffer.isBuffer(o) || !('member0' in o)) return v; // a bare value: avsc picks the branch
      for (let j = 0; j < branches.length; j++) {
        const x = o[`member${j}`];
        if (x == null) continue;
        const b = branches[j]!;
        return wrapped ? { [b.key]: b.conv(x) } : b.conv(x);
      }
      return null;
    };
  };

  return walk(schema, type);
}

function parseAvro(text: string | object, what: string): AvroSchema {
  if (typeof text !== 'string') return text as AvroSchema;
  try {
    return JSON.parse(text) as AvroSchema;
  } catch {
    // A bare primitive name ("string") is a valid Avro schema too.
    if (/^[a-z]+$/.test(text.trim())) return text.trim();
    throw new AnalysisError(`${what} is not valid Avro schema JSON: ${text.slice(0, 80)}`);
  }
}

function avscType(schema: AvroSchema, what: string): avro.Type {
  try {
    return avro.Type.forSchema(schema as avro.Schema, { wrapUnions: 'auto' });
  } catch (e) {
    throw new AnalysisError(`${what}: ${(e as Error).message}`);
  }
}

// ------------------------------------------------------------------ from_avro

interface ReaderState {
  schema: AvroSchema;
  type: avro.Type;
  sparkType: DataType;
  decode: Conv;
}

/** State kept on the expression's options object between prepare() and bind(). */
const READER = Symbol('reader');
const WRITER = Symbol('writer');

registerFunction('from_avro', {
  // The reader schema prepare() fetched, so a task worker reads with exactly it (not the subject's latest then).
  portableOptions(options) {
    const r = (options as { [READER]?: ReaderState })[READER];
    return r && options.schema === undefined ? { ...options, schema: JSON.stringify(r.schema) } : options;
  },
  async prepare(options) {
    const o = options as FromAvroOptions & { [READER]?: ReaderState };
    if (o[READER]) return;
    let schema: AvroSchema;
    if (o.schema !== undefined) schema = parseAvro(o.schema, 'fromAvro schema');
    else {
      if (!o.registry) {
        throw new AnalysisError('fromAvro needs a reader schema: give { schema }, or { registry, subject } / { registry, schemaId }.');
      }
      const client = registryClient(o.registry);
      let found;
      try {
        found = o.schemaId !== undefined ? await client.getById(o.schemaId) : o.subject ? await client.getVersion(o.subject) : undefined;
      } catch (e) {
        if (e instanceof RegistryError && e.status === 404) {
          throw new AnalysisError(
            `fromAvro: ${o.schemaId !== undefined ? `schema id ${o.schemaId}` : `subject "${o.subject}"`} is not in the registry at ` +
              `${redactUrl(o.registry.url)}. Register the schema first (sluice produce registers it; or POST it to /subjects/<subject>/versions).`,
          );
        }
        throw e;
      }
      if (!found) throw new AnalysisError('fromAvro with a registry needs { subject } or { schemaId } to know the reader schema.');
      if (found.schemaType !== 'AVRO') {
        throw new AnalysisError(`fromAvro: ${o.subject ?? o.schemaId} holds a ${found.schemaType} schema, not Avro.`);
      }
      schema = parseAvro(found.schema, 'registry schema');
    }
    const type = avscType(schema, 'fromAvro reader schema');
    const sparkType = avroToSparkType(schema);
    o[READER] = { schema, type, sparkType, decode: converterFor(schema, type, DECODE) };
  },
  bind({ args, options }) {
    const o = options as FromAvroOptions & { [READER]?: ReaderState };
    const reader = o[READER];
    if (!reader) throw new AnalysisError('fromAvro was not prepared (internal error: analyze() must run prepare first).');
    const a = args[0]!;
    if (a.type !== BinaryType) {
      throw new AnalysisError(`fromAvro reads binary data, but \`${a.name}\` is ${a.type.simpleString()}. Pass the Kafka value column: col('value').`);
    }
    const failFast = o.mode === 'FAILFAST';
    const permissive = o.mode === 'PERMISSIVE';
    if (o.tombstones !== undefined && o.tombstones !== 'deadLetter' && o.tombstones !== 'keep') {
      throw new AnalysisError(`fromAvro's tombstones option must be "deadLetter" (default) or "keep", got "${String(o.tombstones)}".`);
    }
    const keepTombstones = o.tombstones === 'keep';
    const ev = a.eval;
    const fail = (e: RecordError): null => {
      if (permissive) return null;
      if (failFast) {
        throw new Error(
          `fromAvro (mode FAILFAST) stopped the query on a bad record: ${e.message} ` +
            'Remove mode: "FAILFAST" to send such records to the dead-letter destination and keep going.',
        );
      }
      throw e;
    };
    // Only a Kafka record's value is a tombstone when null; any other null (no key, an outer join's missing
    // side) decodes to null, as in Spark.
    const isKafkaValue = a.name === 'value';
    const tombstone = (): null =>
      keepTombstones || !isKafkaValue
        ? null
        : fail(
            new RecordError(
              'The record is a tombstone (null value: a delete on a compacted topic), not an Avro record. ' +
                "Pass fromAvro(…, { tombstones: 'keep' }) to keep it as a null struct, which toAvro writes out as a tombstone again.",
              'tombstone',
            ),
          );
    if (!o.registry) {
      // Plain Avro without the Confluent header (Spark's from_avro with a JSON schema).
      return {
        type: reader.sparkType,
        eval: (row) => {
          const v = ev(row) as Buffer | null;
          if (v == null) return tombstone();
          try {
            // Inside the try: a value can fail its conversion too (a decimal of zero bytes).
            return reader.decode(reader.type.fromBuffer(v));
          } catch (e) {
            return fail(new RecordError(`Avro decoding failed: ${(e as Error).message}`, 'avro.decode'));
          }
        },
      };
    }
    const client = registryClient(o.registry);
    // Per writer schema id: the resolver onto the reader schema, or why that id cannot be read. An id the
    // registry does not know (yet: a replica may lag behind the writer's registration) is asked for again
    // after unknownIdRecheckMs; until then its records go to the dead letters without a request each.
    const writers = new Map<number, { type: avro.Type; resolver: avro.Resolver } | RecordError>();
    const unknownUntil = new Map<number, number>();
    const recheckMs = o.registry?.unknownIdRecheckMs ?? REGISTRY_DEFAULTS.unknownIdRecheckMs;
    const fetchWriter = (id: number): Promise<void> =>
      client.getById(id).then(
        (w) => {
          try {
            if (w.schemaType !== 'AVRO') throw new Error(`schema id ${id} is ${w.schemaType}, not Avro`);
            const type = avscType(parseAvro(w.schema, `writer schema ${id}`), `writer schema ${id}`);
            writers.set(id, { type, resolver: reader.type.createResolver(type) });
          } catch (e) {
            writers.set(id, new RecordError(`Writer schema ${id} cannot be read with the reader schema: ${(e as Error).message}`, 'avro.incompatible-schema'));
          }
        },
        (e) => {
          if (e instanceof RegistryError && e.status === 404) {
            writers.set(id, new RecordError(`Schema id ${id} is not in the registry at ${redactUrl(o.registry!.url)}.`, 'avro.unknown-schema-id'));
            unknownUntil.set(id, Date.now() + recheckMs);
          } else throw e; // the registry is down: that fails the query, it is not the record's fault
        },
      );
    return {
      type: reader.sparkType,
      eval: (row) => {
        const v = ev(row) as Buffer | null;
        if (v == null) return tombstone();
        let framed;
        try {
          framed = unframe(v);
        } catch (e) {
          return fail(e as RecordError);
        }
        let w = writers.get(framed.schemaId);
        if (w instanceof RecordError && (unknownUntil.get(framed.schemaId) ?? Infinity) <= Date.now()) {
          writers.delete(framed.schemaId);
          unknownUntil.delete(framed.schemaId);
          w = undefined;
        }
        if (w === undefined) throw new NeedsIO(fetchWriter(framed.schemaId));
        if (w instanceof RecordError) return fail(w);
        let decoded: unknown;
        try {
          // Bytes left after the record mean it was not written with this schema (or was damaged): a dead
          // letter. Confluent's deserializer and Spark's from_avro ignore them (docs/decisions.md).
          decoded = reader.type.fromBuffer(framed.payload, w.resolver, false);
        } catch (e) {
          const msg = (e as Error).message;
          if (msg === 'trailing data') {
            return fail(
              new RecordError(
                `The Avro payload has bytes left after a whole record of writer schema ${framed.schemaId}: it was not written with that schema, or it was damaged.`,
                'avro.trailing-bytes',
              ),
            );
          }
          return fail(new RecordError(`Avro payload does not match writer schema ${framed.schemaId}: ${msg}`, 'avro.decode'));
        }
        try {
          return reader.decode(decoded);
        } catch (e) {
          return fail(new RecordError(`Avro value cannot be converted (writer schema ${framed.schemaId}): ${(e as Error).message}`, 'avro.decode'));
        }
      },
    };
  },
});

// ------------------------------------------------------------------ to_avro

interface WriterState {
  schema: AvroSchema;
  id?: number;
}

registerFunction('to_avro', {
  portableOptions(options) {
    if ((options as ToAvroOptions).autoRegister === false) {
      throw new NotPortable('toAvro with autoRegister: false writes with the id it looked up in the registry, which a worker thread would look up again');
    }
    return options;
  },
  async prepare(options) {
    const o = options as ToAvroOptions & { [WRITER]?: WriterState };
    if (o[WRITER] || o.autoRegister !== false || o.schema !== undefined) return;
    if (!o.registry || !o.subject) throw new AnalysisError('toAvro with autoRegister: false needs { registry, subject }.');
    const latest = await registryClient(o.registry).getVersion(o.subject);
    o[WRITER] = { schema: parseAvro(latest.schema, 'registry schema'), id: latest.id };
  },
  bind({ args, options }) {
    const o = options as ToAvroOptions & { [WRITER]?: WriterState };
    const a = args[0]!;
    const state: WriterState = o[WRITER] ?? {
      schema: o.schema !== undefined ? parseAvro(o.schema, 'toAvro schema') : sparkToAvroSchema(a.type, o.recordName, o.recordNamespace),
    };
    const type = avscType(state.schema, 'toAvro writer schema');
    const encode = converterFor(state.schema, type, ENCODE);
    const ev = a.eval;
    const toBuf = (v: unknown): Buffer => {
      try {
        return type.toBuffer(encode(v));
      } catch (e) {
        throw new RecordError(`toAvro: the row does not fit the writer schema: ${(e as Error).message}`, 'avro.encode');
      }
    };
    if (!o.registry) return { type: BinaryType, eval: (row) => { const v = ev(row); return v == null ? null : toBuf(v); } };
    if (!o.subject) throw new AnalysisError('toAvro with a registry needs { subject } (TopicNameStrategy: "<topic>-value").');
    const client = registryClient(o.registry);
    const schemaText = JSON.stringify(state.schema);
    let registering: Promise<void> | undefined;
    return {
      type: BinaryType,
      eval: (row) => {
        const v = ev(row);
        if (v == null) return null;
        if (state.id === undefined) {
          // First row: register the schema (or find its id), then evaluate the row again.
          registering ??= client.register(o.subject!, schemaText).then((id) => {
            state.id = id;
          });
          throw new NeedsIO(registering);
        }
        return frame(state.id, toBuf(v));
      },
    };
  },
});
