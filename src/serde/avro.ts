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
} from '../types/index.js';
import { RegistryConfig, RegistryError, registryClient } from './registry.js';
import { frame, unframe } from './wireformat.js';

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

/** The Spark type of an Avro schema (records → struct, [null, T] → nullable T, timestamp-millis → timestamp, …). */
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
    // Spark turns other unions into a struct member0, member1, …
    return new StructType(nonNull.map((s, i) => ({ name: `member${i}`, dataType: avroToSparkType(s, named, namespace), nullable: true })));
  }
  const type = schema.type as AvroSchema;
  const lt = logical(schema);
  if (lt === 'timestamp-millis' || lt === 'timestamp-micros' || lt === 'local-timestamp-millis') return TimestampType;
  if (lt === 'date') return DateType;
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

/** The Avro schema for a Spark type (nullable fields become ["null", T] with default null, so they can evolve). */
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

/** What differs between decoding and encoding: the conversion of logical types and of bytes. */
interface LeafConversions {
  logical(logicalType: string): Conv | undefined;
  bytes: Conv;
}

/** Avro values → Sluice values: timestamps → Date, dates → 'YYYY-MM-DD'. */
const DECODE: LeafConversions = {
  logical: (lt) =>
    lt === 'timestamp-millis' || lt === 'local-timestamp-millis'
      ? (v) => new Date(Number(v))
      : lt === 'timestamp-micros'
        ? (v) => new Date(Math.floor(Number(v) / 1000))
        : lt === 'date'
          ? (v) => formatDate(new Date(Number(v) * DAY_MS))
          : undefined,
  bytes: identity,
};

/** Sluice values → Avro values: the reverse of DECODE; strings are accepted for bytes. */
const ENCODE: LeafConversions = {
  logical: (lt) =>
    lt === 'timestamp-millis' || lt === 'local-timestamp-millis'
      ? (v) => (v instanceof Date ? v.getTime() : v)
      : lt === 'timestamp-micros'
        ? (v) => (v instanceof Date ? v.getTime() * 1000 : v)
        : lt === 'date'
          ? (v) => (typeof v === 'string' ? Math.round(Date.parse(v + 'T00:00:00Z') / DAY_MS) : v)
          : undefined,
  bytes: (v) => (Buffer.isBuffer(v) ? v : Buffer.from(String(v))),
};

/** A converter for values of `schema`: records become plain objects, nulls stay null, leaves per `leaf`. */
function converterFor(schema: AvroSchema, named: Map<string, AvroSchema>, leaf: LeafConversions): Conv {
  if (typeof schema === 'string') {
    const ref = named.get(schema);
    if (ref) return (v) => converterFor(ref, named, leaf)(v);
    return schema === 'bytes' ? leaf.bytes : identity;
  }
  if (Array.isArray(schema)) {
    const nonNull = schema.filter((s) => s !== 'null');
    if (nonNull.length !== 1) return identity;
    const inner = converterFor(nonNull[0]!, named, leaf);
    return (v) => (v == null ? null : inner(v));
  }
  const lt = logical(schema);
  const byLogical = lt ? leaf.logical(lt) : undefined;
  if (byLogical) return byLogical;
  switch (schema.type) {
    case 'record': {
      named.set(schema.name as string, schema);
      if (schema.namespace) named.set(`${schema.namespace}.${schema.name}`, schema);
      const fields = (schema.fields as Array<{ name: string; type: AvroSchema }>).map((f) => [f.name, converterFor(f.type, named, leaf)] as const);
      return (v) => {
        const src = v as Row;
        const o: Row = {};
        for (const [k, conv] of fields) o[k] = src[k] == null ? null : conv(src[k]);
        return o;
      };
    }
    case 'array': {
      const inner = converterFor(schema.items as AvroSchema, named, leaf);
      return (v) => (v as unknown[]).map(inner);
    }
    case 'map': {
      const inner = converterFor(schema.values as AvroSchema, named, leaf);
      return (v) => Object.fromEntries(Object.entries(v as Row).map(([k, x]) => [k, inner(x)]));
    }
    case 'bytes':
      return leaf.bytes;
    default:
      return typeof schema.type === 'object' ? converterFor(schema.type as AvroSchema, named, leaf) : identity;
  }
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
              `${o.registry.url}. Register the schema first (sluice produce registers it; or POST it to /subjects/<subject>/versions).`,
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
    o[READER] = { schema, type, sparkType, decode: converterFor(schema, new Map(), DECODE) };
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
    if (!o.registry) {
      // Plain Avro without the Confluent header (Spark's from_avro with a JSON schema).
      return {
        type: reader.sparkType,
        eval: (row) => {
          const v = ev(row) as Buffer | null;
          if (v == null) return null;
          try {
            return reader.decode(reader.type.fromBuffer(v));
          } catch (e) {
            return fail(new RecordError(`Avro decoding failed: ${(e as Error).message}`, 'avro.decode'));
          }
        },
      };
    }
    const client = registryClient(o.registry);
    // Per writer schema id: the resolver onto the reader schema, or why that id cannot be read.
    const writers = new Map<number, { type: avro.Type; resolver: avro.Resolver } | RecordError>();
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
            writers.set(id, new RecordError(`Schema id ${id} is not in the registry at ${o.registry!.url}.`, 'avro.unknown-schema-id'));
          } else throw e; // the registry is down: that fails the query, it is not the record's fault
        },
      );
    return {
      type: reader.sparkType,
      eval: (row) => {
        const v = ev(row) as Buffer | null;
        if (v == null) return null;
        let framed;
        try {
          framed = unframe(v);
        } catch (e) {
          return fail(e as RecordError);
        }
        const w = writers.get(framed.schemaId);
        if (w === undefined) throw new NeedsIO(fetchWriter(framed.schemaId));
        if (w instanceof RecordError) return fail(w);
        let decoded: unknown;
        try {
          decoded = reader.type.fromBuffer(framed.payload, w.resolver, true);
        } catch (e) {
          return fail(new RecordError(`Avro payload does not match writer schema ${framed.schemaId}: ${(e as Error).message}`, 'avro.decode'));
        }
        return reader.decode(decoded);
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
    const encode = converterFor(state.schema, new Map(), ENCODE);
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
