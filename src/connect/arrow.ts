/**
 * Rows ↔ Arrow IPC for Spark Connect (apache-arrow): results come back as Arrow record batches, and a
 * DataFrame of in-memory rows (`createDataFrame`) goes to Spark as a LocalRelation holding one.
 * Values take Sluice's representation: long as number, timestamp as Date (µs kept: MicrosDate), date as
 * 'YYYY-MM-DD', binary as Buffer, decimal as Decimal.
 */
import {
  Binary,
  Bool,
  DataType as ArrowType,
  DateDay,
  Float32,
  Float64,
  Int16,
  Int32,
  Int64,
  Int8,
  makeData,
  Table,
  TimestampMicrosecond,
  Utf8,
  Vector,
  makeVector,
  tableFromIPC,
  tableToIPC,
  vectorFromArray,
  Type,
} from 'apache-arrow';
import { AnalysisError } from '../expr/compile.js';
import { formatDate } from '../expr/values.js';
import {
  BinaryType,
  BooleanType,
  ByteType,
  DataType,
  DateType,
  Decimal,
  DoubleType,
  FloatType,
  IntegerType,
  LongType,
  Row,
  ShortType,
  StringType,
  StructType,
  TimestampType,
  epochMicros,
  fromEpochMicros,
} from '../types/index.js';
import type { Msg } from './base.js';
import { sparkSchemaJson } from './types.js';

function arrowType(t: DataType, field: string): ArrowType {
  if (t === StringType) return new Utf8();
  if (t === IntegerType) return new Int32();
  if (t === LongType) return new Int64();
  if (t === ShortType) return new Int16();
  if (t === ByteType) return new Int8();
  if (t === DoubleType) return new Float64();
  if (t === FloatType) return new Float32();
  if (t === BooleanType) return new Bool();
  if (t === DateType) return new DateDay();
  if (t === BinaryType) return new Binary();
  if (t === TimestampType) return new Int64(); // re-typed as µs timestamps below
  throw new AnalysisError(
    `createDataFrame on Spark Connect: column \`${field}\` is ${t.simpleString()}; in-memory rows are sent with string, number, boolean, date, timestamp and binary columns. ` +
      'Write the data to a file or topic the cluster can read, and read it there.',
  );
}

function toArrowValue(v: unknown, t: DataType): unknown {
  if (v === null || v === undefined) return null;
  if (t === LongType || t === TimestampType) return BigInt(t === TimestampType ? epochMicros(v as Date) : Math.trunc(Number(v)));
  if (t === DateType) return typeof v === 'string' ? new Date(`${v}T00:00:00Z`) : v;
  return v;
}

/** A LocalRelation message: the rows as one Arrow IPC stream, and the schema as DDL. */
export function localRelation(rows: Row[], schema: StructType): Msg {
  const columns: Record<string, Vector> = {};
  for (const f of schema.fields) {
    const values = rows.map((r) => toArrowValue(r[f.name], f.dataType));
    const vec = vectorFromArray(values, arrowType(f.dataType, f.name));
    if (f.dataType === TimestampType) {
      const d = vec.data[0]!;
      // Spark reads TimestampType as Arrow microsecond timestamps in UTC.
      columns[f.name] = makeVector(
        makeData({ type: new TimestampMicrosecond('UTC'), length: d.length, nullCount: d.nullCount, nullBitmap: d.nullBitmap, data: d.values as BigInt64Array }),
      );
    } else columns[f.name] = vec;
  }
  const table = new Table(columns);
  return { data: Buffer.from(tableToIPC(table, 'stream')), schema: sparkSchemaJson(schema) };
}

function fromArrowValue(v: unknown, type: ArrowType): unknown {
  if (v === null || v === undefined) return null;
  switch (type.typeId) {
    case Type.Int:
      return typeof v === 'bigint' ? Number(v) : v;
    case Type.Timestamp:
      return fromEpochMicros(Math.round((v as number) * 1000));
    case Type.Date:
      return formatDate(new Date(v as number));
    case Type.Binary:
      return Buffer.from(v as Uint8Array);
    case Type.Decimal: {
      const scale = (type as unknown as { scale: number }).scale;
      return Decimal.of(BigInt(String(v)), scale);
    }
    case Type.Struct: {
      const fields = (type as unknown as { children: Array<{ name: string; type: ArrowType }> }).children;
      const o = (v as { toJSON(): Record<string, unknown> }).toJSON();
      return Object.fromEntries(fields.map((f) => [f.name, fromArrowValue(o[f.name], f.type)]));
    }
    case Type.Map: {
      // A map comes back as an Arrow MapRow: Sluice's maps are plain objects, keyed by the key's text.
      const entry = (type as unknown as { children: Array<{ type: { children: Array<{ type: ArrowType }> } }> }).children[0]!.type.children[1]!.type;
      const o = (v as { toJSON(): Record<string, unknown> }).toJSON();
      return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, fromArrowValue(x, entry)]));
    }
    case Type.List: {
      const el = (type as unknown as { children: Array<{ type: ArrowType }> }).children[0]!.type;
      return [...(v as Iterable<unknown>)].map((x) => fromArrowValue(x, el));
    }
    default:
      return v;
  }
}

/** Rows of the Arrow IPC streams a query's results came in. */
export function rowsFromArrow(batches: Uint8Array[]): Row[] {
  const out: Row[] = [];
  for (const b of batches) {
    const table = tableFromIPC(b);
    const fields = table.schema.fields;
    for (let i = 0; i < table.numRows; i++) {
      const row: Row = {};
      for (const [j, f] of fields.entries()) row[f.name] = fromArrowValue(table.getChildAt(j)!.get(i), f.type);
      out.push(row);
    }
  }
  return out;
}
