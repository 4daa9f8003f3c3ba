/**
 * `session.read.parquet(path)`: Parquet files, read with hyparquet (docs/decisions.md), typed as Spark's
 * ParquetToSparkSchemaConverter types them:
 *
 * | Parquet                                      | Spark / Sluice                                    |
 * |----------------------------------------------|---------------------------------------------------|
 * | BOOLEAN, FLOAT, DOUBLE                        | boolean, float, double                            |
 * | INT32 (INT_8, INT_16, UINT_8, UINT_16)        | int (tinyint, smallint, smallint, int)            |
 * | INT32 UINT_32, INT64 (INT_64), INT64 UINT_64  | bigint, bigint, decimal(20,0)                     |
 * | DECIMAL on INT32/INT64/BYTE_ARRAY/FIXED       | decimal(p,s), exact (`Decimal`)                   |
 * | DATE                                          | date                                              |
 * | TIMESTAMP millis/micros, INT96                | timestamp (µs kept: `MicrosDate`)                 |
 * | TIMESTAMP nanos                               | timestamp, truncated to µs (Spark 3.5 refuses it) |
 * | BYTE_ARRAY UTF8/STRING/ENUM/JSON              | string                                            |
 * | BYTE_ARRAY, FIXED_LEN_BYTE_ARRAY otherwise    | binary                                            |
 * | UUID, FLOAT16                                 | string, float                                     |
 * | group, LIST, MAP, repeated field              | struct, array, map, array                         |
 *
 * TIME, INTERVAL, BSON and VARIANT columns are refused with the column's name (Spark 3.5 cannot read them
 * either). Timestamps without isAdjustedToUTC (Spark's timestamp_ntz) are read as UTC timestamps: Sluice
 * has no timestamp_ntz type. hyparquet turns decimals into JS numbers (inexact past 15 digits), so the
 * reader takes them raw — the decimal annotation is hidden from hyparquet — and makes exact `Decimal`s.
 *
 * The schema is the first file's (in name order), or all files' merged with `mergeSchema`, or the user's:
 * columns are found by name (case-insensitively when no exact match, as Spark's default), a column a file
 * lacks is null, and a file's column whose type differs from the schema's is widened where that loses
 * nothing (int → bigint, float → double, a wider decimal) or refused, naming the file and column.
 */
import { asyncBufferFromFile, parquetMetadataAsync, parquetRead, parquetSchema } from 'hyparquet';
import type { AsyncBuffer, ColumnData, FileMetaData, ParquetParsers, SchemaElement, SchemaTree } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { castValue, formatDate } from '../../expr/values.js';
import type { BatchSourceSpec } from '../../plan/logical.js';
import {
  ArrayType, BinaryType, BooleanType, ByteType, DataType, DateType, Decimal, DecimalType, DoubleType, FloatType, IntegerType, LongType,
  MapType, Row, ShortType, StringType, StructField, StructType, TimestampType, fromEpochMicros,
} from '../../types/index.js';
import { BatchReader, BatchSourceError, registerBatchReader } from '../batch.js';
import { CHUNK_ROWS } from '../source.js';
import { checkPathsExist, FILE_OPTIONS, FormatOptions, listFiles } from './common.js';
import { decimalForIntegral } from './infer.js';

const PARQUET_OPTIONS: Record<string, string> = {
  ...FILE_OPTIONS,
  mergeSchema: 'true: the schema is all files\' columns merged by name (default false: the first file\'s)',
};

const utf8 = new TextDecoder();

/** How hyparquet hands over dates and timestamps: as Sluice values, keeping microseconds. */
const PARSERS: Partial<ParquetParsers> = {
  timestampFromMilliseconds: (ms: bigint) => new Date(Number(ms)),
  timestampFromMicroseconds: (us: bigint) => fromEpochMicros(Number(us)),
  // Sluice's timestamps stop at µs, as Spark's: nanoseconds are truncated toward the past.
  timestampFromNanoseconds: (ns: bigint) => fromEpochMicros(Number(ns / 1000n - (ns % 1000n < 0n ? 1n : 0n))),
  dateFromDays: (days: number) => formatDate(new Date(days * 86_400_000)),
  // Spark reads JSON-annotated bytes as a string column, not parsed.
  jsonFromBytes: (bytes: Uint8Array) => bytes && utf8.decode(bytes),
};

/** A column's Spark type and how a value hyparquet returns becomes a Sluice value. */
interface Column {
  type: DataType;
  nullable: boolean;
  conv: (v: unknown) => unknown;
}

const same = (v: unknown): unknown => v;
const toBuffer = (v: unknown): unknown => (v instanceof Uint8Array ? Buffer.from(v.buffer, v.byteOffset, v.byteLength) : v);
const toNumber = (v: unknown): unknown => (typeof v === 'bigint' ? Number(v) : v);

/** One file's columns as Spark types, and its metadata with decimal annotations hidden from hyparquet. */
interface FileLayout {
  metadata: FileMetaData;
  columns: Map<string, Column>;
  schema: StructType;
}

class ParquetReader implements BatchReader {
  private readonly o: FormatOptions;

  constructor(private readonly spec: BatchSourceSpec) {
    this.o = new FormatOptions('parquet', spec.options, PARQUET_OPTIONS);
    this.o.bool('mergeSchema', false);
    checkPathsExist(spec, 'parquet');
  }

  async schema(): Promise<StructType> {
    if (this.spec.userSchema) return this.spec.userSchema;
    const files = await listFiles(this.spec, this.o);
    if (!files.length) {
      throw new BatchSourceError(
        `Unable to infer the schema of Parquet: no files in ${this.spec.paths.join(', ') || this.o.get('path')}. ` +
          'Give it with .schema(…), or put files there first.',
      );
    }
    if (!this.o.bool('mergeSchema', false)) return (await layout(files[0]!)).schema;
    let merged: StructType | undefined;
    for (const f of files) {
      const s = (await layout(f)).schema;
      merged = merged ? mergeParquetSchemas(merged, s, f) : s;
    }
    return merged!;
  }

  async *read(schema: StructType): AsyncGenerator<Row[]> {
    for (const path of await listFiles(this.spec, this.o)) {
      const file = await asyncBufferFromFile(path);
      const l = await layout(path, file);
      // Per requested column: the file's column (by name, else case-insensitively) and how to bring its values to the schema's type.
      const plan = schema.fields.map((f) => {
        const name = l.columns.has(f.name) ? f.name : [...l.columns.keys()].find((n) => n.toLowerCase() === f.name.toLowerCase());
        if (name === undefined) return { field: f.name, name: undefined, conv: same };
        const c = l.columns.get(name)!;
        const widen = widener(c.type, f.dataType, () => `${path}: column "${name}" is ${c.type.simpleString()}, but the schema says ${f.dataType.simpleString()}`);
        return { field: f.name, name, conv: (v: unknown) => widen(c.conv(v)) };
      });
      const columns = [...new Set(plan.flatMap((p) => (p.name === undefined ? [] : [p.name])))];
      let start = 0;
      for (const rg of l.metadata.row_groups) {
        const end = start + Number(rg.num_rows);
        // A row group is decoded column by column (compact arrays: what hyparquet decodes a page into), then handed
        // over as rows CHUNK_ROWS at a time: memory holds one row group's columns and one chunk of row objects.
        // (Reading a row group in row ranges instead decodes each page once per range that touches it.)
        const data = new Map<string, ColumnData[]>();
        if (columns.length) {
          await parquetRead({
            file,
            metadata: l.metadata,
            columns,
            rowStart: start,
            rowEnd: end,
            utf8: false,
            parsers: PARSERS,
            compressors,
            geoparquet: false,
            onChunk: (c) => {
              const list = data.get(c.columnName) ?? [];
              list.push(c);
              data.set(c.columnName, list);
            },
          });
        }
        const cursors = plan.map((p) => (p.name === undefined ? undefined : new ColumnCursor(data.get(p.name) ?? [])));
        for (let from = start; from < end; from += CHUNK_ROWS) {
          const to = Math.min(end, from + CHUNK_ROWS);
          const rows: Row[] = [];
          for (let i = from; i < to; i++) {
            const row: Row = {};
            plan.forEach((p, j) => {
              const v = cursors[j]?.at(i);
              row[p.field] = v === undefined || v === null ? null : p.conv(v);
            });
            rows.push(row);
          }
          yield rows;
        }
        start = end;
      }
    }
  }
}

/** Reads the values of one column, row by row in increasing order, from the chunks hyparquet decoded. */
class ColumnCursor {
  private k = 0;
  constructor(private readonly chunks: ColumnData[]) {
    chunks.sort((a, b) => a.rowStart - b.rowStart);
  }
  at(row: number): unknown {
    while (this.k < this.chunks.length && this.chunks[this.k]!.rowEnd <= row) this.k++;
    const c = this.chunks[this.k];
    return c && c.rowStart <= row ? c.columnData[row - c.rowStart] : undefined;
  }
}

/** Reads a file's footer and maps its columns to Spark types. */
async function layout(path: string, file?: AsyncBuffer): Promise<FileLayout> {
  let metadata: FileMetaData;
  try {
    metadata = await parquetMetadataAsync(file ?? (await asyncBufferFromFile(path)), { parsers: PARSERS, geoparquet: false });
  } catch (e) {
    throw new BatchSourceError(`${path} is not a Parquet file Sluice can read: ${(e as Error).message}.`);
  }
  const tree = parquetSchema(metadata);
  const columns = new Map<string, Column>();
  const fields: StructField[] = [];
  for (const child of tree.children) {
    const c = column(child, path);
    columns.set(child.element.name, c);
    fields.push({ name: child.element.name, dataType: c.type, nullable: c.nullable });
  }
  return { metadata, columns, schema: new StructType(fields) };
}

function unsupported(path: string, node: SchemaTree, what: string): never {
  throw new BatchSourceError(
    `${path}: column "${node.path.join('.')}" is ${what}, which Sluice (like Spark 3.5) cannot read. Leave it out with .schema(…) naming the other columns.`,
  );
}

/** The Spark type of a Parquet schema node, and how its values convert (ParquetToSparkSchemaConverter). */
function column(node: SchemaTree, path: string): Column {
  const e = node.element;
  const nullable = e.repetition_type !== 'REQUIRED';
  const inner = node.children.length ? group(node, path) : primitive(node, path);
  if (e.repetition_type === 'REPEATED') {
    // A repeated field outside a LIST group is an array of non-null elements (Spark's legacy list rule).
    return { type: new ArrayType(inner.type, false), nullable: false, conv: (v) => (Array.isArray(v) ? v.map((x) => conv(inner, x)) : v) };
  }
  return { ...inner, nullable };
}

function conv(c: Column, v: unknown): unknown {
  return v === undefined || v === null ? null : c.conv(v);
}

function group(node: SchemaTree, path: string): Column {
  const e = node.element;
  const annotation = e.logical_type?.type ?? e.converted_type;
  if (annotation === 'VARIANT' || e.logical_type?.type === 'VARIANT') unsupported(path, node, 'a VARIANT');
  if (annotation === 'LIST') {
    const repeated = node.children[0];
    if (node.children.length !== 1 || !repeated || repeated.element.repetition_type !== 'REPEATED' || repeated.children.length > 1) {
      unsupported(path, node, 'a LIST in a legacy layout (a repeated group of several fields)');
    }
    // Three levels (list → repeated group → element), or two (list → repeated primitive element).
    const elementNode = repeated.children.length === 1 ? repeated.children[0]! : repeated;
    const el = repeated.children.length === 1 ? column(elementNode, path) : { ...primitive(elementNode, path), nullable: false };
    return { type: new ArrayType(el.type, el.nullable), nullable: true, conv: (v) => (Array.isArray(v) ? v.map((x) => conv(el, x)) : v) };
  }
  if (annotation === 'MAP' || annotation === 'MAP_KEY_VALUE') {
    const kv = node.children[0];
    const key = kv?.children.find((c) => c.element.name === 'key');
    const value = kv?.children.find((c) => c.element.name === 'value');
    if (node.children.length !== 1 || !kv || kv.children.length !== 2 || !key || !value) unsupported(path, node, 'a MAP in a layout other than key/value');
    const k = column(key, path);
    const val = column(value, path);
    return {
      type: new MapType(k.type, val.type),
      nullable: true,
      conv: (v) => {
        if (typeof v !== 'object' || v === null) return v;
        const out: Record<string, unknown> = {};
        for (const [kk, x] of Object.entries(v)) out[kk] = conv(val, x);
        return out;
      },
    };
  }
  const children = node.children.map((c) => ({ name: c.element.name, col: column(c, path) }));
  return {
    type: new StructType(children.map((c) => ({ name: c.name, dataType: c.col.type, nullable: c.col.nullable }))),
    nullable: true,
    conv: (v) => {
      if (typeof v !== 'object' || v === null) return v;
      const src = v as Record<string, unknown>;
      const out: Row = {};
      for (const c of children) out[c.name] = conv(c.col, src[c.name]);
      return out;
    },
  };
}

function primitive(node: SchemaTree, path: string): Column {
  const e = node.element;
  const lt = e.logical_type;
  const ct = e.converted_type;
  const col = (type: DataType, f: (v: unknown) => unknown = same): Column => ({ type, nullable: true, conv: f });
  if (ct === 'DECIMAL' || lt?.type === 'DECIMAL') return decimalColumn(e, lt?.type === 'DECIMAL' ? lt : undefined, node, path);
  if (lt?.type === 'TIME' || ct === 'TIME_MILLIS' || ct === 'TIME_MICROS') unsupported(path, node, 'a TIME');
  if (ct === 'INTERVAL' || lt?.type === 'INTERVAL') unsupported(path, node, 'an INTERVAL');
  if (ct === 'BSON' || lt?.type === 'BSON') unsupported(path, node, 'a BSON value');
  if (lt?.type === 'TIMESTAMP' || ct === 'TIMESTAMP_MILLIS' || ct === 'TIMESTAMP_MICROS' || e.type === 'INT96') return col(TimestampType);
  if (ct === 'DATE' || lt?.type === 'DATE') return col(DateType);
  switch (e.type) {
    case 'BOOLEAN':
      return col(BooleanType);
    case 'FLOAT':
      return col(FloatType);
    case 'DOUBLE':
      return col(DoubleType);
    case 'INT32': {
      const bits = lt?.type === 'INTEGER' ? lt.bitWidth : ct === 'INT_8' || ct === 'UINT_8' ? 8 : ct === 'INT_16' || ct === 'UINT_16' ? 16 : 32;
      const signed = lt?.type === 'INTEGER' ? lt.isSigned : !ct?.startsWith('UINT');
      // Unsigned values need the next wider type (Spark: UINT_8 → smallint, UINT_16 → int, UINT_32 → bigint).
      const width = signed ? bits : bits * 2;
      return col(width <= 8 ? ByteType : width <= 16 ? ShortType : width <= 32 ? IntegerType : LongType, toNumber);
    }
    case 'INT64': {
      const unsigned = ct === 'UINT_64' || (lt?.type === 'INTEGER' && !lt.isSigned);
      if (unsigned) return col(new DecimalType(20, 0), (v) => (typeof v === 'bigint' ? Decimal.of(v, 0) : Decimal.from(v)));
      return col(LongType, toNumber);
    }
    case 'BYTE_ARRAY':
    case 'FIXED_LEN_BYTE_ARRAY': {
      if (ct === 'UTF8' || ct === 'ENUM' || ct === 'JSON' || lt?.type === 'STRING' || lt?.type === 'ENUM' || lt?.type === 'JSON') {
        return col(StringType, (v) => (v instanceof Uint8Array ? utf8.decode(v) : v));
      }
      if (lt?.type === 'UUID') return col(StringType);
      if (lt?.type === 'FLOAT16') return col(FloatType);
      if (lt?.type === 'GEOMETRY' || lt?.type === 'GEOGRAPHY') return col(BinaryType, toBuffer);
      return col(BinaryType, toBuffer);
    }
    default:
      return unsupported(path, node, `of physical type ${e.type}`);
  }
}

/**
 * A decimal column. Its annotation is removed from the element hyparquet reads with, so hyparquet hands over
 * the unscaled integer (a number, a bigint, or big-endian two's complement bytes) instead of a rounded double.
 */
function decimalColumn(e: SchemaElement, lt: { precision: number; scale: number } | undefined, node: SchemaTree, path: string): Column {
  const precision = lt?.precision ?? e.precision;
  const scale = lt?.scale ?? e.scale ?? 0;
  if (precision === undefined || precision < 1 || precision > DecimalType.MAX_PRECISION) {
    unsupported(path, node, `a decimal of precision ${precision ?? '(none)'} (Spark's decimals have 1 to ${DecimalType.MAX_PRECISION} digits)`);
  }
  const mutable = e as { converted_type?: unknown; logical_type?: unknown };
  delete mutable.converted_type;
  delete mutable.logical_type;
  return {
    type: new DecimalType(precision, scale),
    nullable: true,
    conv: (v) => {
      if (v instanceof Uint8Array) return v.length ? Decimal.fromTwosComplement(v, scale) : Decimal.of(0n, scale);
      if (typeof v === 'bigint') return Decimal.of(v, scale);
      if (typeof v === 'number') return Decimal.of(BigInt(v), scale);
      return v;
    },
  };
}

/**
 * How a value of the file's type becomes one of the schema's: the same type as is; a widening that loses
 * nothing (a narrower integer, float → double, an integer or narrower decimal → a decimal that holds it)
 * through the cast; nested types field by field. Anything else is refused, as Spark refuses a Parquet column
 * that does not match the requested type.
 */
function widener(from: DataType, to: DataType, what: () => string): (v: unknown) => unknown {
  if (from.equals(to)) return same;
  const ints: DataType[] = [ByteType, ShortType, IntegerType, LongType];
  if (ints.includes(from) && ints.includes(to) && ints.indexOf(from) < ints.indexOf(to)) return same;
  if ((ints.includes(from) && from !== LongType && to === DoubleType) || (from === FloatType && to === DoubleType)) return same;
  if (to instanceof DecimalType) {
    const f = from instanceof DecimalType ? from : decimalForIntegral(from);
    if (f && to.precision - to.scale >= f.precision - f.scale && to.scale >= f.scale) return (v) => castValue(v, to);
  }
  if (from instanceof StructType && to instanceof StructType) {
    const parts = to.fields.map((tf) => {
      const ff = from.field(tf.name) ?? from.fields.find((x) => x.name.toLowerCase() === tf.name.toLowerCase());
      return { name: tf.name, src: ff?.name, w: ff ? widener(ff.dataType, tf.dataType, () => `${what()} (field ${tf.name})`) : same };
    });
    return (v) => {
      if (typeof v !== 'object' || v === null) return v;
      const src = v as Row;
      const out: Row = {};
      for (const p of parts) {
        const x = p.src === undefined ? null : src[p.src];
        out[p.name] = x === undefined || x === null ? null : p.w(x);
      }
      return out;
    };
  }
  if (from instanceof ArrayType && to instanceof ArrayType) {
    const w = widener(from.elementType, to.elementType, what);
    return (v) => (Array.isArray(v) ? v.map((x) => (x === null || x === undefined ? null : w(x))) : v);
  }
  if (from instanceof MapType && to instanceof MapType) {
    const w = widener(from.valueType, to.valueType, what);
    return (v) => {
      if (typeof v !== 'object' || v === null) return v;
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, x === null || x === undefined ? null : w(x)]));
    };
  }
  throw new BatchSourceError(`${what()}. Read it with its own type (leave it out of .schema(…) or give ${from.simpleString()}), then cast it.`);
}

/** mergeSchema: columns of both, by name; a column whose types differ must widen (else it is refused, naming the file). */
function mergeParquetSchemas(a: StructType, b: StructType, file: string): StructType {
  const fields = [...a.fields];
  for (const f of b.fields) {
    const i = fields.findIndex((x) => x.name === f.name);
    if (i < 0) {
      fields.push({ ...f, nullable: true });
      continue;
    }
    const prev = fields[i]!;
    if (prev.dataType.equals(f.dataType)) continue;
    const wider = mergeType(prev.dataType, f.dataType);
    if (!wider) {
      throw new BatchSourceError(
        `mergeSchema: column "${f.name}" is ${prev.dataType.simpleString()} in earlier files but ${f.dataType.simpleString()} in ${file}; ` +
          'they do not merge. Read the files separately, or give a schema.',
      );
    }
    fields[i] = { ...prev, dataType: wider, nullable: prev.nullable || f.nullable };
  }
  return new StructType(fields);
}

function mergeType(a: DataType, b: DataType): DataType | undefined {
  if (a instanceof StructType && b instanceof StructType) {
    try {
      return mergeParquetSchemas(a, b, '');
    } catch {
      return undefined;
    }
  }
  for (const [x, y] of [
    [a, b],
    [b, a],
  ] as const) {
    try {
      widener(x, y, () => '');
      return y;
    } catch {
      // not this way round
    }
  }
  return undefined;
}

registerBatchReader('parquet', { create: (spec) => new ParquetReader(spec) });
