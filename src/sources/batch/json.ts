/**
 * `session.read.json(path)`: JSON Lines (one JSON value per line), or with `multiLine` one JSON document per
 * file, as Spark's JSON source. A record is an object (one row) or an array of objects (a row each).
 *
 * Schema inference follows Spark's JsonInferSchema: every record is read, and the types of a field merge over
 * the records (integers are bigint, other numbers double, a mix of kinds is string; objects are structs with
 * fields sorted by name, arrays take their elements' merged type; fields that are always null are strings).
 * Timestamps stay strings, as Spark's default (inferTimestamp=false): give a schema to read them as
 * timestamps. Numbers are parsed without loss (lossless-json), so `1.0` infers as double, not bigint, and a
 * decimal(38,18) column keeps all its digits.
 *
 * Reading converts each value to its column's type as Spark's JacksonParser does: a value of the wrong kind
 * (a string where an int is expected, a fraction for an int, an object for a number) makes the record
 * malformed; in PERMISSIVE mode (the default) that field is null and the other fields keep their values, and
 * the corrupt-record column (when the schema has one) gets the record's text. A JSON value read into a string
 * column keeps its JSON text (`{"a":1}`), as Spark.
 */
import { createInterface } from 'node:readline';
import { isLosslessNumber, parse as parseLossless, stringify as stringifyLossless } from 'lossless-json';
import type { BatchSourceSpec } from '../../plan/logical.js';
import {
  ArrayType, BinaryType, BooleanType, ByteType, DataType, DateType, Decimal, DecimalType, DoubleType, FloatType, IntegerType, LongType,
  MapType, NullType, Row, ShortType, StringType, StructField, StructType, TimestampType,
} from '../../types/index.js';
import { BatchReader, BatchSourceError, registerBatchReader } from '../batch.js';
import {
  applyMode, checkPathsExist, Chunker, corruptColumn, dateFromText, DEFAULT_CORRUPT_COLUMN, FILE_OPTIONS, FormatOptions, listFiles,
  MODE_OPTIONS, openText, ParseMode, parseMode, RecordPlace, TEXT_OPTIONS, textEncoding, timestampFromText,
} from './common.js';
import { integerDigits, jsonCompatibleType, sortedStruct } from './infer.js';

const JSON_OPTIONS: Record<string, string> = {
  ...FILE_OPTIONS,
  ...TEXT_OPTIONS,
  ...MODE_OPTIONS,
  multiLine: 'true: each file is one JSON document (an object, or an array of objects), which may span lines (default false: one record per line)',
  primitivesAsString: 'true: infer numbers and booleans as strings (default false)',
  prefersDecimal: 'true: infer numbers with a fraction as decimal instead of double when they fit (default false)',
  dropFieldIfAllNull: 'true: leave out of the inferred schema the fields that are always null or empty (default false)',
  timestampFormat: 'the Spark datetime pattern of timestamp strings (default: ISO 8601 and yyyy-MM-dd HH:mm:ss[.SSSSSS])',
  dateFormat: 'the Spark datetime pattern of date strings (default yyyy-MM-dd)',
};

/** One record's text and where it is. */
interface TextRecord {
  text: string;
  place: RecordPlace;
}

type JsonObject = Record<string, unknown>;

/** A parsed record: the objects it holds (one per row), or why it is malformed. */
type ParsedRecord = { objects: JsonObject[] } | { problem: string };

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v) && !isLosslessNumber(v);

/** Thrown while converting one field: the record is malformed (Spark's BadRecordException). */
class FieldError extends Error {}

const LONG_MIN = -(2n ** 63n);
const LONG_MAX = 2n ** 63n - 1n;
const INTEGRAL_BITS = new Map<DataType, number>([
  [ByteType, 8],
  [ShortType, 16],
  [IntegerType, 32],
  [LongType, 64],
]);
/** The non-numeric numbers Spark's JSON reader accepts in quotes for float and double columns. */
const SPECIAL_DOUBLES: Record<string, number> = {
  NaN: NaN,
  Infinity: Infinity,
  '+Infinity': Infinity,
  '-Infinity': -Infinity,
  INF: Infinity,
  '+INF': Infinity,
  '-INF': -Infinity,
};

class JsonReader implements BatchReader {
  private readonly o: FormatOptions;
  private readonly mode: ParseMode;
  private readonly multiLine: boolean;
  private readonly primitivesAsString: boolean;
  private readonly prefersDecimal: boolean;
  private readonly timestampFormat: string | undefined;
  private readonly dateFormat: string | undefined;
  private readonly encoding: BufferEncoding;

  constructor(private readonly spec: BatchSourceSpec) {
    this.o = new FormatOptions('json', spec.options, JSON_OPTIONS);
    this.mode = parseMode(this.o);
    this.multiLine = this.o.bool('multiLine', false);
    this.primitivesAsString = this.o.bool('primitivesAsString', false);
    this.prefersDecimal = this.o.bool('prefersDecimal', false);
    this.o.bool('dropFieldIfAllNull', false);
    this.timestampFormat = this.o.get('timestampFormat');
    this.dateFormat = this.o.get('dateFormat');
    this.encoding = textEncoding(this.o);
    if (spec.userSchema) corruptColumn(this.o, spec.userSchema);
    checkPathsExist(spec, 'json');
  }

  async schema(): Promise<StructType> {
    if (this.spec.userSchema) return this.spec.userSchema;
    const files = await listFiles(this.spec, this.o);
    if (!files.length) {
      throw new BatchSourceError(
        `Unable to infer the schema of JSON: no files in ${this.spec.paths.join(', ') || this.o.get('path')}. Give it with .schema('a STRING, n BIGINT'), ` +
          'or put files there first.',
      );
    }
    const corruptName = this.o.get('columnNameOfCorruptRecord') ?? DEFAULT_CORRUPT_COLUMN;
    const corruptStruct = new StructType([{ name: corruptName, dataType: StringType, nullable: true }]);
    let root: DataType = NullType;
    for await (const rec of records(files, this.multiLine, this.encoding)) {
      const parsed = parseRecord(rec.text);
      if ('problem' in parsed) {
        if (this.mode === 'FAILFAST') {
          throw new BatchSourceError(
            `Malformed JSON record while inferring the schema, in ${rec.place.file}${rec.place.line ? `, line ${rec.place.line}` : ''}: ${parsed.problem}. ` +
              'mode=FAILFAST stops at the first one; PERMISSIVE (the default) adds a _corrupt_record column for such records, DROPMALFORMED skips them.',
          );
        }
        if (this.mode === 'PERMISSIVE') root = jsonCompatibleType(root, corruptStruct);
        continue;
      }
      for (const obj of parsed.objects) root = jsonCompatibleType(root, this.inferValue(obj));
    }
    const canonical = canonicalize(root, this.o.bool('dropFieldIfAllNull', false));
    return canonical instanceof StructType ? canonical : new StructType([]);
  }

  /** The type of one JSON value (JsonInferSchema.inferField). */
  private inferValue(v: unknown): DataType {
    if (v === null || v === undefined) return NullType;
    if (typeof v === 'string') return StringType;
    if (typeof v === 'boolean') return this.primitivesAsString ? StringType : BooleanType;
    if (isLosslessNumber(v)) {
      if (this.primitivesAsString) return StringType;
      const text = v.value;
      if (/^-?\d+$/.test(text)) {
        const b = BigInt(text);
        if (b >= LONG_MIN && b <= LONG_MAX) return LongType;
        // Past a long, Spark reads a BigInteger and infers a decimal (a double past 38 digits).
        const p = integerDigits(text);
        return p <= DecimalType.MAX_PRECISION ? new DecimalType(p, 0) : DoubleType;
      }
      if (this.prefersDecimal) {
        const d = Decimal.parse(text);
        if (d) {
          const p = Math.max(d.precision, d.scale);
          if (p <= DecimalType.MAX_PRECISION) return new DecimalType(p, d.scale);
        }
      }
      return DoubleType;
    }
    if (Array.isArray(v)) {
      let t: DataType = NullType;
      for (const e of v) t = jsonCompatibleType(t, this.inferValue(e));
      return new ArrayType(t, true);
    }
    const fields: StructField[] = Object.entries(v as JsonObject).map(([name, x]) => ({ name, dataType: this.inferValue(x), nullable: true }));
    return sortedStruct(fields);
  }

  async *read(schema: StructType): AsyncGenerator<Row[]> {
    const corrupt = corruptColumn(this.o, schema);
    const files = await listFiles(this.spec, this.o);
    const chunker = new Chunker();
    for await (const rec of records(files, this.multiLine, this.encoding)) {
      const parsed = parseRecord(rec.text);
      const converted: Array<{ row: Row; problem: string | undefined }> =
        'problem' in parsed ? [{ row: nullRow(schema), problem: parsed.problem }] : parsed.objects.map((obj) => this.convertRoot(obj, schema, corrupt));
      for (const { row, problem } of converted) {
        const out = applyMode('JSON', this.mode, row, problem, rec.text, rec.place, corrupt);
        if (!out) continue;
        const full = chunker.push(out);
        if (full) yield full;
      }
    }
    const rest = chunker.rest();
    if (rest.length) yield rest;
  }

  /** A top-level object as a row of `schema`: fields that do not convert are null, and the first problem is reported. */
  private convertRoot(obj: JsonObject, schema: StructType, corrupt: string | undefined): { row: Row; problem: string | undefined } {
    const row: Row = {};
    let problem: string | undefined;
    for (const f of schema.fields) {
      if (f.name === corrupt || !Object.prototype.hasOwnProperty.call(obj, f.name)) {
        row[f.name] = null;
        continue;
      }
      try {
        row[f.name] = this.convert(obj[f.name], f.dataType, f.name);
      } catch (e) {
        if (!(e instanceof FieldError)) throw e;
        row[f.name] = null;
        problem ??= e.message;
      }
    }
    return { row, problem };
  }

  /** One JSON value as a value of type `t` (Spark's JacksonParser.makeConverter); FieldError when it does not fit. */
  private convert(v: unknown, t: DataType, path: string): unknown {
    if (v === null || v === undefined || t === NullType) return null;
    const fail = (): never => {
      const shown = typeof v === 'string' ? JSON.stringify(v) : (stringifyLossless(v) ?? String(v));
      throw new FieldError(`field "${path}" is ${t.simpleString()} but the record has ${shown.length > 60 ? `${shown.slice(0, 60)}…` : shown}`);
    };
    if (t === StringType) return typeof v === 'string' ? v : (stringifyLossless(v) ?? fail());
    const bits = INTEGRAL_BITS.get(t);
    if (bits !== undefined) {
      if (!isLosslessNumber(v) || !/^-?\d+$/.test(v.value)) return fail();
      const b = BigInt(v.value);
      if (b < -(2n ** BigInt(bits - 1)) || b >= 2n ** BigInt(bits - 1)) return fail();
      return Number(b);
    }
    if (t === DoubleType || t === FloatType) {
      if (isLosslessNumber(v)) return Number(v.value);
      if (typeof v === 'string' && Object.prototype.hasOwnProperty.call(SPECIAL_DOUBLES, v)) return SPECIAL_DOUBLES[v];
      return fail();
    }
    if (t === BooleanType) return typeof v === 'boolean' ? v : fail();
    if (t instanceof DecimalType) {
      const text = isLosslessNumber(v) ? v.value : typeof v === 'string' && v !== '' ? v : fail();
      // Rounded HALF_UP to the scale; a value with more digits than the precision does not fit (Spark fails the record too).
      return Decimal.parse(text)?.toPrecision(t.precision, t.scale) ?? fail();
    }
    if (t === TimestampType) {
      if (typeof v === 'string') return timestampFromText(v, this.timestampFormat) ?? fail();
      // Spark reads an integer as seconds since the epoch.
      if (isLosslessNumber(v) && /^-?\d+$/.test(v.value)) return new Date(Number(v.value) * 1000);
      return fail();
    }
    if (t === DateType) return typeof v === 'string' ? (dateFromText(v, this.dateFormat) ?? fail()) : fail();
    if (t === BinaryType) return typeof v === 'string' ? Buffer.from(v, 'base64') : fail();
    if (t instanceof ArrayType) return Array.isArray(v) ? v.map((e, i) => this.convert(e, t.elementType, `${path}[${i}]`)) : fail();
    if (t instanceof MapType) {
      if (!isObject(v)) return fail();
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) out[k] = this.convert(x, t.valueType, `${path}.${k}`);
      return out;
    }
    if (t instanceof StructType) {
      if (!isObject(v)) return fail();
      const out: Row = {};
      for (const f of t.fields) {
        out[f.name] = Object.prototype.hasOwnProperty.call(v, f.name) ? this.convert(v[f.name], f.dataType, `${path}.${f.name}`) : null;
      }
      return out;
    }
    return fail();
  }
}

function nullRow(schema: StructType): Row {
  const row: Row = {};
  for (const f of schema.fields) row[f.name] = null;
  return row;
}

/** Parses one record; numbers keep their text, and a repeated key keeps its last value (as Spark's parser). */
function parseRecord(text: string): ParsedRecord {
  let v: unknown;
  try {
    v = parseLossless(text, null, { onDuplicateKey: ({ newValue }) => newValue });
  } catch (e) {
    return { problem: `not valid JSON (${(e as Error).message})` };
  }
  if (isObject(v)) return { objects: [v] };
  if (Array.isArray(v)) {
    if (v.every(isObject)) return { objects: v };
    return { problem: 'an array whose elements are not all objects' };
  }
  return { problem: 'a JSON value that is not an object (a record must be an object, or an array of objects)' };
}

/** JsonInferSchema.canonicalizeType: all-null fields become strings (or are dropped), empty structs are dropped. */
function canonicalize(t: DataType, dropAllNull: boolean): DataType | undefined {
  if (t instanceof ArrayType) {
    const e = canonicalize(t.elementType, dropAllNull);
    return e && new ArrayType(e, t.containsNull);
  }
  if (t instanceof StructType) {
    const fields: StructField[] = [];
    for (const f of t.fields) {
      if (f.name === '') continue;
      const c = canonicalize(f.dataType, dropAllNull);
      if (c) fields.push({ ...f, dataType: c });
    }
    return fields.length ? new StructType(fields) : undefined;
  }
  if (t === NullType) return dropAllNull ? undefined : StringType;
  return t;
}

/** The records of the files in order: non-blank lines, or each whole file with multiLine. */
async function* records(files: string[], multiLine: boolean, encoding: BufferEncoding): AsyncGenerator<TextRecord> {
  for (const file of files) {
    if (multiLine) {
      const parts: Buffer[] = [];
      for await (const b of openText(file)) parts.push(b as Buffer);
      const text = Buffer.concat(parts).toString(encoding).replace(/^\uFEFF/, '');
      if (text.trim() !== '') yield { text, place: { file } };
      continue;
    }
    const input = openText(file);
    input.setEncoding(encoding);
    const lines = createInterface({ input, crlfDelay: Infinity });
    let n = 0;
    try {
      for await (const raw of lines) {
        n++;
        const line = n === 1 ? raw.replace(/^\uFEFF/, '') : raw;
        if (line.trim() === '') continue;
        yield { text: line, place: { file, line: n } };
      }
    } finally {
      // Closing the line reader leaves its input open: a read that stops early (FAILFAST) closes the file here.
      lines.close();
      input.destroy();
    }
  }
}

registerBatchReader('json', { create: (spec) => new JsonReader(spec) });
