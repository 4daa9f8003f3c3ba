/**
 * `session.read.csv(path)`: CSV files, as Spark's CSV source, parsed by csv-parse (docs/decisions.md).
 *
 * Options and defaults as Spark's: `header` (false: columns `_c0`, `_c1`, …; true: the first line of each
 * file is the header, the names come from the first file's), `sep`/`delimiter` (`,`), `quote` (`"`; empty
 * turns quoting off), `escape` (`\`: `\"` inside quotes is a quote — set `escape` to `"` for RFC 4180's `""`),
 * `nullValue` (the empty string), `inferSchema` (false: every column is a string). With inferSchema, every
 * value is read and each column gets the narrowest type that holds all its values, tried in Spark's order:
 * int, bigint, decimal (integers past a bigint), double, date (`yyyy-MM-dd`, or `dateFormat`), timestamp,
 * boolean, else string.
 *
 * Values are converted by position. A record with fewer or more values than the schema, or a value that does
 * not convert (`abc` in an int column), is malformed: PERMISSIVE (default) keeps what converted and the
 * record's text goes to the corrupt-record column if the schema has one; DROPMALFORMED leaves it out;
 * FAILFAST fails the read. Unlike Spark with multiLine=false, a quoted value may span lines whatever
 * `multiLine` says (csv-parse always honours quotes), so such a record is never cut in two.
 */
import { parse as csvParse, type CsvError, type InfoField } from 'csv-parse';
import type { BatchSourceSpec } from '../../plan/logical.js';
import {
  ArrayType, BinaryType, BooleanType, ByteType, DataType, DateType, Decimal, DecimalType, DoubleType, FloatType, IntegerType, LongType,
  MapType, NullType, Row, ShortType, StringType, StructField, StructType, TimestampType,
} from '../../types/index.js';
import { BatchReader, BatchSourceError, registerBatchReader } from '../batch.js';
import {
  applyMode, checkPathsExist, Chunker, corruptColumn, dateFromText, FILE_OPTIONS, FormatOptions, listFiles, MODE_OPTIONS, openText,
  ParseMode, parseMode, RecordPlace, refuseType, TEXT_OPTIONS, textEncoding, timestampFromText, unescapeOption,
} from './common.js';
import { csvCompatibleType, integerDigits } from './infer.js';

const CSV_OPTIONS: Record<string, string> = {
  ...FILE_OPTIONS,
  ...TEXT_OPTIONS,
  ...MODE_OPTIONS,
  header: 'true: the first line of each file holds the column names (default false: columns are named _c0, _c1, …)',
  sep: 'the separator between values (default ,); \\t for tabs',
  delimiter: 'the same as sep',
  quote: 'the quote character (default "); an empty string turns quoting off',
  escape: 'the character that escapes a quote inside a quoted value (default \\; set it to " for doubled quotes "")',
  nullValue: 'the text that stands for null (default: the empty string)',
  emptyValue: 'what a quoted empty value "" reads as (default: the empty string, which is also the default nullValue)',
  inferSchema: 'true: read the data once more to infer each column\'s type (default false: all strings)',
  comment: 'lines starting with this character are skipped (default: none)',
  ignoreLeadingWhiteSpace: 'true: trim spaces before values (default false)',
  ignoreTrailingWhiteSpace: 'true: trim spaces after values (default false)',
  nanValue: 'the text of a NaN double (default NaN)',
  positiveInf: 'the text of +Infinity (default Inf)',
  negativeInf: 'the text of -Infinity (default -Inf)',
  preferDate: 'with inferSchema, infer columns of dates as date (default true)',
  dateFormat: 'the Spark datetime pattern of dates (default yyyy-MM-dd)',
  timestampFormat: 'the Spark datetime pattern of timestamps (default: ISO 8601 and yyyy-MM-dd HH:mm:ss[.SSSSSS])',
  multiLine: 'accepted for Spark compatibility: a quoted value may always span lines',
};

const INT_RANGE = new Map<DataType, [bigint, bigint]>([
  [ByteType, [-(2n ** 7n), 2n ** 7n - 1n]],
  [ShortType, [-(2n ** 15n), 2n ** 15n - 1n]],
  [IntegerType, [-(2n ** 31n), 2n ** 31n - 1n]],
  [LongType, [-(2n ** 63n), 2n ** 63n - 1n]],
]);
/** What Java's Double.parseDouble accepts (Spark's `toDouble`), less hexadecimal floats. */
const JAVA_DOUBLE = /^\s*[+-]?(?:NaN|Infinity|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)[fFdD]?\s*$/;
const INTEGER = /^[+-]?\d+$/;

/** One CSV record: its values (null for an unquoted empty value), its raw text, where it ends. */
interface CsvRecord {
  values: Array<string | null>;
  /** The text csv-parse read for it, with the blank and comment lines before it. */
  raw: string;
  file: string;
  /** Lines of the file before `raw`. */
  linesBefore: number;
  /** Set when csv-parse could not read the record (an unclosed quote). */
  problem?: string;
}

class CsvReader implements BatchReader {
  private readonly o: FormatOptions;
  private readonly mode: ParseMode;
  private readonly header: boolean;
  private readonly nullValue: string;
  private readonly emptyValue: string;
  // Options read per value, looked up once.
  private readonly nanValue: string;
  private readonly positiveInf: string;
  private readonly negativeInf: string;
  private readonly preferDate: boolean;
  private readonly dateFormat: string | undefined;
  private readonly timestampFormat: string | undefined;
  private readonly encoding: BufferEncoding;

  constructor(private readonly spec: BatchSourceSpec) {
    this.o = new FormatOptions('csv', spec.options, CSV_OPTIONS);
    this.mode = parseMode(this.o);
    this.header = this.o.bool('header', false);
    for (const k of ['inferSchema', 'ignoreLeadingWhiteSpace', 'ignoreTrailingWhiteSpace', 'multiLine']) this.o.bool(k, false);
    this.nullValue = this.o.get('nullValue') ?? '';
    this.emptyValue = this.o.get('emptyValue') ?? '';
    this.nanValue = this.o.get('nanValue') ?? 'NaN';
    this.positiveInf = this.o.get('positiveInf') ?? 'Inf';
    this.negativeInf = this.o.get('negativeInf') ?? '-Inf';
    this.preferDate = this.o.bool('preferDate', true);
    this.dateFormat = this.o.get('dateFormat');
    this.timestampFormat = this.o.get('timestampFormat');
    this.encoding = textEncoding(this.o);
    const sep = this.separator();
    if (sep === '') throw new BatchSourceError('Option sep (delimiter) of format csv must not be empty.');
    for (const k of ['quote', 'escape', 'comment']) {
      const v = this.char(k);
      if (v !== undefined && v.length > 1) throw new BatchSourceError(`Option ${k} of format csv must be one character, got "${this.o.get(k)}".`);
    }
    if (spec.userSchema) {
      corruptColumn(this.o, spec.userSchema);
      for (const f of spec.userSchema.fields) {
        if (f.dataType instanceof StructType || f.dataType instanceof ArrayType || f.dataType instanceof MapType) {
          refuseType('csv', f.name, f.dataType, 'a CSV value is text; read it as a string and parse it (from_json, split)');
        }
      }
    }
    checkPathsExist(spec, 'csv');
  }

  private separator(): string {
    return unescapeOption(this.o.get('sep') ?? this.o.get('delimiter') ?? ',');
  }

  private char(name: string): string | undefined {
    const v = this.o.get(name);
    return v === undefined ? undefined : unescapeOption(v);
  }

  /** The records of one file, in order, with the header line still in. */
  private async *fileRecords(file: string): AsyncGenerator<CsvRecord> {
    const quote = this.char('quote') ?? '"';
    const comment = this.char('comment');
    const skipped: CsvRecord[] = [];
    // Lines are counted from the records' raw text (which includes the blank and comment lines before each):
    // csv-parse's own `info` and a `cast` function per value would each triple the parse time.
    let lines = 0;
    // A quoted "" and an unquoted empty value differ only when nullValue or emptyValue is not the empty string.
    const distinguishEmpty = this.nullValue !== '' || this.emptyValue !== '';
    const source = openText(file);
    const parser = source.pipe(
      csvParse({
        delimiter: this.separator(),
        quote: quote === '' ? false : quote,
        escape: this.char('escape') ?? '\\',
        ...(comment ? { comment } : {}),
        ltrim: this.o.bool('ignoreLeadingWhiteSpace', false),
        rtrim: this.o.bool('ignoreTrailingWhiteSpace', false),
        bom: true,
        encoding: this.encoding,
        relax_column_count: true,
        relax_quotes: true,
        skip_empty_lines: true,
        raw: true,
        // An unquoted empty value is null (Spark's parser gives null there); a quoted "" is the empty value.
        ...(distinguishEmpty ? { cast: (value: string, ctx: InfoField) => (value === '' && !ctx.quoting ? null : value) } : {}),
        skip_records_with_error: true,
        // In practice only an unclosed quote at the end of the file: the rest of the file is one malformed record.
        on_skip: (err: CsvError | undefined, raw: string | undefined): undefined => {
          const r = raw ?? '';
          const end = (err as { lines?: number } | undefined)?.lines;
          const linesBefore = end === undefined ? lines : end - countNewlines(r) - (r.endsWith('\n') ? 0 : 1);
          skipped.push({ values: [], raw: r, file, linesBefore, problem: err?.message ?? 'the record could not be parsed' });
          return undefined;
        },
      }),
    );
    try {
      for await (const r of parser as AsyncIterable<{ record: Array<string | null>; raw: string }>) {
        while (skipped.length) yield skipped.shift()!;
        yield { values: r.record, raw: r.raw, file, linesBefore: lines };
        lines += countNewlines(r.raw);
      }
      while (skipped.length) yield skipped.shift()!;
    } finally {
      // A reader that stops early (the header alone, a FAILFAST error) closes the file: pipe() would leave it open.
      source.destroy();
    }
  }

  /** Data records of all files: each file's header line left out. */
  private async *dataRecords(files: string[]): AsyncGenerator<CsvRecord> {
    for (const file of files) {
      let first = true;
      for await (const rec of this.fileRecords(file)) {
        if (first && this.header && !rec.problem) {
          first = false;
          continue;
        }
        first = false;
        yield rec;
      }
    }
  }

  async schema(): Promise<StructType> {
    if (this.spec.userSchema) return this.spec.userSchema;
    const files = await listFiles(this.spec, this.o);
    let firstRecord: CsvRecord | undefined;
    for (const file of files) {
      for await (const rec of this.fileRecords(file)) {
        if (!rec.problem) {
          firstRecord = rec;
          break;
        }
      }
      if (firstRecord) break;
    }
    if (!firstRecord) {
      if (!files.length) {
        throw new BatchSourceError(
          `Unable to infer the schema of CSV: no files in ${this.spec.paths.join(', ') || this.o.get('path')}. Give it with .schema('a STRING, n INT'), or put files there first.`,
        );
      }
      return new StructType([]);
    }
    const names = this.header ? safeHeader(firstRecord.values, this.nullValue) : firstRecord.values.map((_, i) => `_c${i}`);
    if (!this.o.bool('inferSchema', false)) return new StructType(names.map((name) => ({ name, dataType: StringType, nullable: true })));
    const types: DataType[] = names.map(() => NullType);
    for await (const rec of this.dataRecords(files)) {
      if (rec.problem) continue;
      for (let i = 0; i < Math.min(types.length, rec.values.length); i++) types[i] = this.inferField(types[i]!, rec.values[i]!);
    }
    return new StructType(names.map((name, i): StructField => ({ name, dataType: types[i] === NullType ? StringType : types[i]!, nullable: true })));
  }

  /** CSVInferSchema.inferField: the type so far widened by one more value. */
  private inferField(soFar: DataType, raw: string | null): DataType {
    const value = raw === '' ? this.emptyValue : raw;
    if (value === null || value === '' || value === this.nullValue) return soFar;
    let t: DataType;
    if (soFar === NullType || soFar === IntegerType) t = this.tryInteger(value);
    else if (soFar === LongType) t = this.tryLong(value);
    else if (soFar instanceof DecimalType) t = this.tryDecimal(value);
    else if (soFar === DoubleType) t = this.tryDouble(value);
    else if (soFar === DateType) t = this.tryDate(value);
    else if (soFar === TimestampType) t = this.tryTimestamp(value);
    else if (soFar === BooleanType) t = this.tryBoolean(value);
    else t = StringType;
    return csvCompatibleType(soFar, t) ?? StringType;
  }

  private tryInteger(v: string): DataType {
    return INTEGER.test(v) && inRange(v, IntegerType) ? IntegerType : this.tryLong(v);
  }
  private tryLong(v: string): DataType {
    return INTEGER.test(v) && inRange(v, LongType) ? LongType : this.tryDecimal(v);
  }
  private tryDecimal(v: string): DataType {
    // Spark infers a decimal only for whole numbers (past a bigint): a fraction is a double.
    if (INTEGER.test(v)) {
      const p = integerDigits(v);
      if (p <= DecimalType.MAX_PRECISION) return new DecimalType(p, 0);
    }
    return this.tryDouble(v);
  }
  private tryDouble(v: string): DataType {
    if (JAVA_DOUBLE.test(v) || this.special(v) !== undefined) return DoubleType;
    return this.preferDate ? this.tryDate(v) : this.tryTimestamp(v);
  }
  private tryDate(v: string): DataType {
    const fmt = this.dateFormat;
    // Without dateFormat, Spark's inference parses dates strictly as yyyy-MM-dd.
    const ok = fmt ? dateFromText(v, fmt) !== null : /^\d{4}-\d{2}-\d{2}$/.test(v) && dateFromText(v, undefined) !== null;
    return ok ? DateType : this.tryTimestamp(v);
  }
  private tryTimestamp(v: string): DataType {
    return timestampFromText(v, this.timestampFormat) ? TimestampType : this.tryBoolean(v);
  }
  private tryBoolean(v: string): DataType {
    return /^(true|false)$/i.test(v) ? BooleanType : StringType;
  }

  /** The double a NaN/Infinity spelling stands for (nanValue, positiveInf, negativeInf). */
  private special(v: string): number | undefined {
    if (v === this.nanValue) return NaN;
    if (v === this.positiveInf) return Infinity;
    if (v === this.negativeInf) return -Infinity;
    return undefined;
  }

  async *read(schema: StructType): AsyncGenerator<Row[]> {
    const corrupt = corruptColumn(this.o, schema);
    const dataFields = schema.fields.filter((f) => f.name !== corrupt);
    const files = await listFiles(this.spec, this.o);
    const chunker = new Chunker();
    for await (const rec of this.dataRecords(files)) {
      const row: Row = {};
      let problem = rec.problem;
      if (!problem && rec.values.length !== dataFields.length) {
        problem = `${rec.values.length} values where the schema has ${dataFields.length} columns`;
      }
      let i = 0;
      for (const f of schema.fields) {
        if (f.name === corrupt) {
          row[f.name] = null;
          continue;
        }
        const raw = rec.values[i++];
        try {
          row[f.name] = this.convert(raw === undefined ? null : raw, f);
        } catch (e) {
          if (!(e instanceof FieldError)) throw e;
          row[f.name] = null;
          problem ??= e.message;
        }
      }
      let text = '';
      let place: RecordPlace = { file: rec.file };
      if (problem !== undefined) {
        const own = recordText(rec.raw, this.char('comment'));
        text = own.text;
        place = { file: rec.file, line: rec.linesBefore + own.skippedLines + 1 };
      }
      const out = applyMode('CSV', this.mode, row, problem, text, place, corrupt);
      if (!out) continue;
      const full = chunker.push(out);
      if (full) yield full;
    }
    const rest = chunker.rest();
    if (rest.length) yield rest;
  }

  /** One CSV value as a value of the field's type (Spark's UnivocityParser.makeConverter); FieldError when it does not convert. */
  private convert(raw: string | null, f: StructField): unknown {
    const value = raw === '' ? this.emptyValue : raw;
    if (value === null || value === this.nullValue) return null;
    const t = f.dataType;
    const fail = (): never => {
      throw new FieldError(`column "${f.name}" is ${t.simpleString()} but the value is ${JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value)}`);
    };
    if (t === StringType) return value;
    if (INT_RANGE.has(t)) return INTEGER.test(value) && inRange(value, t) ? Number(value) : fail();
    if (t === DoubleType || t === FloatType) {
      const s = this.special(value);
      if (s !== undefined) return s;
      return JAVA_DOUBLE.test(value) ? Number(value.trim().replace(/[fFdD]$/, '')) : fail();
    }
    if (t === BooleanType) return /^true$/i.test(value) ? true : /^false$/i.test(value) ? false : fail();
    if (t instanceof DecimalType) {
      // Spark's US-locale decimal parser drops grouping commas (1,234.5).
      return Decimal.parse(value.replace(/,/g, ''))?.toPrecision(t.precision, t.scale) ?? fail();
    }
    if (t === TimestampType) return timestampFromText(value, this.timestampFormat) ?? fail();
    if (t === DateType) return dateFromText(value, this.dateFormat) ?? fail();
    if (t === BinaryType) return Buffer.from(value, 'utf8');
    if (t === NullType) return null;
    return fail();
  }
}

class FieldError extends Error {}

function inRange(v: string, t: DataType): boolean {
  const [lo, hi] = INT_RANGE.get(t)!;
  const b = BigInt(v);
  return b >= lo && b <= hi;
}

/** A record's own text (without the blank and comment lines before it, nor its line end), and how many lines came before it. */
function recordText(raw: string, comment: string | undefined): { text: string; skippedLines: number } {
  let s = raw;
  let skippedLines = 0;
  for (;;) {
    const nl = s.indexOf('\n');
    if (nl < 0) break;
    const first = s.slice(0, nl).replace(/\r$/, '');
    if (first.trim() !== '' && !(comment && first.startsWith(comment))) break;
    s = s.slice(nl + 1);
    skippedLines++;
  }
  return { text: s.replace(/\r?\n$/, ''), skippedLines };
}

function countNewlines(s: string): number {
  let n = 0;
  for (let i = s.indexOf('\n'); i >= 0; i = s.indexOf('\n', i + 1)) n++;
  return n;
}

/**
 * Spark's CSVUtils.makeSafeHeader: an empty (or null-valued) name becomes `_c<i>`; names repeated
 * (case-insensitively, as Spark's default spark.sql.caseSensitive=false) get their position appended.
 */
function safeHeader(values: Array<string | null>, nullValue: string): string[] {
  const lower = values.filter((v): v is string => v !== null).map((v) => v.toLowerCase());
  const dup = new Set(lower.filter((v, i) => lower.indexOf(v) !== i));
  return values.map((v, i) => {
    if (v === null || v === '' || v === nullValue) return `_c${i}`;
    if (dup.has(v.toLowerCase())) return `${v}${i}`;
    return v;
  });
}

registerBatchReader('csv', { create: (spec) => new CsvReader(spec) });
