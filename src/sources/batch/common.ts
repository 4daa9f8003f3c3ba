/**
 * What the file readers (json, csv, parquet) share: options as Spark takes them (case-insensitive names,
 * string values, unknown names refused with the known ones), the files a path stands for (a file, a folder,
 * a glob), the parse modes for malformed records, and chunking.
 */
import { createReadStream, existsSync, statSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { BatchSourceSpec } from '../../plan/logical.js';
import { parseWithPattern } from '../../expr/datetime.js';
import { castValue, formatDate } from '../../expr/values.js';
import { DataType, DateType, Row, StringType, StructType, TimestampType } from '../../types/index.js';
import { BatchSourceError } from '../batch.js';
import { CHUNK_ROWS } from '../source.js';
import { editDistance } from '../../util/editDistance.js';

/** Options every file format takes (Spark's generic file source options). */
export const FILE_OPTIONS: Record<string, string> = {
  path: 'the file or folder to read (what load(path) sets)',
  recursiveFileLookup: 'true: read the files in sub-folders too (default false)',
  pathGlobFilter: 'only files whose name matches this glob, e.g. *.json',
};

/**
 * A format's options, looked up case-insensitively as Spark does (`inferschema` is `inferSchema`). An option
 * the format does not know is refused with the list of the ones it does: Spark ignores it silently, which
 * hides a typo (`delimeter`) until the data comes out wrong.
 */
export class FormatOptions {
  private readonly values = new Map<string, string>();

  constructor(
    readonly format: string,
    options: Readonly<Record<string, string>>,
    /** Known option names (Spark's spelling) → what each does. */
    known: Readonly<Record<string, string>>,
  ) {
    const byLower = new Map(Object.keys(known).map((k) => [k.toLowerCase(), k]));
    for (const [key, value] of Object.entries(options)) {
      const name = byLower.get(key.toLowerCase());
      if (!name) throw new BatchSourceError(unknownOption(format, key, Object.keys(known)));
      this.values.set(name.toLowerCase(), value);
    }
  }

  get(name: string): string | undefined {
    return this.values.get(name.toLowerCase());
  }

  /** A boolean option: `true`/`false` in any case. */
  bool(name: string, fallback: boolean): boolean {
    const v = this.get(name);
    if (v === undefined) return fallback;
    const t = v.trim().toLowerCase();
    if (t === 'true') return true;
    if (t === 'false') return false;
    throw new BatchSourceError(`Option ${name} of format '${this.format}' must be true or false, got "${v}".`);
  }
}

/** The message for an option a format does not have: the nearest known name if one is close, and all of them. */
export function unknownOption(format: string, key: string, known: string[], more = ''): string {
  const near = known.find((k) => editDistance(k.toLowerCase(), key.toLowerCase()) <= 2);
  return (
    `session.read.format('${format}') has no option "${key}"${near ? ` (did you mean ${near}?)` : ''}. ` +
    `Its options: ${known.join(', ')}${more}.`
  );
}

/** Spark's parse modes for records that do not parse or do not fit the schema. */
export type ParseMode = 'PERMISSIVE' | 'DROPMALFORMED' | 'FAILFAST';

export const MODE_OPTIONS: Record<string, string> = {
  mode:
    'what a malformed record becomes: PERMISSIVE (default: nulls where it does not fit, its text in the corrupt-record column if the ' +
    'schema has one), DROPMALFORMED (left out) or FAILFAST (the read fails)',
  columnNameOfCorruptRecord: 'the string column that receives a malformed record\'s text in PERMISSIVE mode (default _corrupt_record)',
};

export function parseMode(o: FormatOptions): ParseMode {
  const v = (o.get('mode') ?? 'PERMISSIVE').trim().toUpperCase();
  if (v === 'PERMISSIVE' || v === 'DROPMALFORMED' || v === 'FAILFAST') return v;
  throw new BatchSourceError(`Option mode of format '${o.format}' must be PERMISSIVE, DROPMALFORMED or FAILFAST, got "${o.get('mode')}".`);
}

/** Spark's default `spark.sql.columnNameOfCorruptRecord`. */
export const DEFAULT_CORRUPT_COLUMN = '_corrupt_record';

/**
 * The corrupt-record column, when `schema` has it: it must be a nullable string, as Spark requires (it holds
 * the record's text, and is null for records that parsed).
 */
export function corruptColumn(o: FormatOptions, schema: StructType): string | undefined {
  const name = o.get('columnNameOfCorruptRecord') ?? DEFAULT_CORRUPT_COLUMN;
  const f = schema.field(name);
  if (!f) return undefined;
  if (f.dataType !== StringType || !f.nullable) {
    throw new BatchSourceError(
      `The corrupt-record column "${name}" must be a nullable string (it receives the text of malformed records), but the schema makes it ` +
        `${f.dataType.simpleString()}${f.nullable ? '' : ' NOT NULL'}. Declare it as "${name} STRING", or name another column with columnNameOfCorruptRecord.`,
    );
  }
  return name;
}

/** Where a malformed record was found, for messages. */
export interface RecordPlace {
  file: string;
  /** 1-based line where the record starts (undefined for a whole-file record). */
  line?: number;
}

export function describePlace(p: RecordPlace): string {
  return p.line === undefined ? p.file : `${p.file}, line ${p.line}`;
}

/**
 * Applies the parse mode to one record: the row to emit (PERMISSIVE: the fields that did convert, the rest
 * null, the text in the corrupt-record column), or undefined to drop it (DROPMALFORMED); FAILFAST throws.
 * `problem` is undefined for a good record.
 */
export function applyMode(
  format: string,
  mode: ParseMode,
  row: Row,
  problem: string | undefined,
  text: string,
  place: RecordPlace,
  corrupt: string | undefined,
): Row | undefined {
  if (problem === undefined) {
    if (corrupt) row[corrupt] = null;
    return row;
  }
  if (mode === 'DROPMALFORMED') return undefined;
  if (mode === 'FAILFAST') {
    throw new BatchSourceError(
      `Malformed ${format} record in ${describePlace(place)}: ${problem}. Record: ${preview(text)}. ` +
        `mode=FAILFAST stops at the first one; mode=PERMISSIVE (the default) reads it with nulls where it does not fit (and its text in the ` +
        `"${DEFAULT_CORRUPT_COLUMN}" column, if the schema has one), mode=DROPMALFORMED leaves it out.`,
    );
  }
  if (corrupt) row[corrupt] = text;
  return row;
}

function preview(text: string): string {
  return JSON.stringify(text.length > 200 ? `${text.slice(0, 200)}…` : text);
}

const GLOB_CHARS = /[*?[{]/;

/** A glob (`*`, `?`, `[abc]`, `{a,b}`) as a regex over one path component. */
export function globRegex(glob: string): RegExp {
  let re = '';
  let inBraces = 0;
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        const body = glob.slice(i + 1, end);
        re += `[${body.startsWith('!') || body.startsWith('^') ? `^${body.slice(1)}` : body}]`;
        i = end;
      }
    } else if (c === '{') {
      inBraces++;
      re += '(?:';
    } else if (c === '}' && inBraces) {
      inBraces--;
      re += ')';
    } else if (c === ',' && inBraces) re += '|';
    else re += c.replace(/[.+^$()|\\\]]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** Spark (Hadoop) skips files whose name starts with `_` or `.` in a folder (`_SUCCESS`, `.crc` files). */
function hidden(name: string): boolean {
  return name.startsWith('_') || name.startsWith('.');
}

/**
 * The files the spec's paths stand for, in a fixed order: each path in turn; a folder's files sorted by
 * name (hidden ones skipped; sub-folders only with recursiveFileLookup); a glob's matches sorted. Listed
 * anew on each read, so a file added to a folder is read by the next batch.
 */
export async function listFiles(spec: BatchSourceSpec, o: FormatOptions): Promise<string[]> {
  const recursive = o.bool('recursiveFileLookup', false);
  const nameFilter = o.get('pathGlobFilter');
  const nameRe = nameFilter ? globRegex(nameFilter) : undefined;
  const out: string[] = [];
  for (const p of filePaths(spec)) {
    for (const match of await expandGlob(p)) {
      const st = await stat(match);
      if (st.isDirectory()) out.push(...(await folderFiles(match, recursive, nameRe)));
      else if (!nameRe || nameRe.test(basename(match))) out.push(match);
    }
  }
  return out;
}

async function folderFiles(dir: string, recursive: boolean, nameRe: RegExp | undefined): Promise<string[]> {
  const entries = (await readdir(dir, { withFileTypes: true })).filter((e) => !hidden(e.name)).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const out: string[] = [];
  for (const e of entries) {
    const full = join(dir, e.name);
    if (e.isDirectory()) {
      if (recursive) out.push(...(await folderFiles(full, recursive, nameRe)));
    } else if (!nameRe || nameRe.test(e.name)) out.push(full);
  }
  return out;
}

/** The paths the spec names: load(paths), or the `path` option. */
export function filePaths(spec: BatchSourceSpec): string[] {
  const fromOption = Object.entries(spec.options).find(([k]) => k.toLowerCase() === 'path')?.[1];
  const paths = [...spec.paths, ...(fromOption !== undefined ? [fromOption] : [])];
  return paths.map((p) => resolve(p));
}

/** Expands a glob path component by component; a path without glob characters is itself. */
async function expandGlob(path: string): Promise<string[]> {
  if (!GLOB_CHARS.test(path)) return [path];
  const parts = path.split(sep);
  let current = [isAbsolute(path) ? sep : '.'];
  for (const part of parts) {
    if (part === '') continue;
    if (!GLOB_CHARS.test(part)) {
      current = current.map((c) => join(c, part));
      continue;
    }
    const re = globRegex(part);
    const next: string[] = [];
    for (const c of current) {
      let names: string[];
      try {
        names = await readdir(c);
      } catch {
        continue;
      }
      for (const n of names.sort()) if (re.test(n) && !(hidden(n) && !part.startsWith('.') && !part.startsWith('_'))) next.push(join(c, n));
    }
    current = next;
  }
  return current.filter((c) => existsSync(c));
}

/**
 * Checks when the DataFrame is declared (`load()`), as Spark does, that each path exists (a glob: that its
 * folder exists); a missing file is named with its absolute path.
 */
export function checkPathsExist(spec: BatchSourceSpec, format: string): void {
  if (spec.paths.length && Object.keys(spec.options).some((k) => k.toLowerCase() === 'path')) {
    throw new BatchSourceError(
      `session.read.format('${format}'): both the "path" option and load(${spec.paths.map((p) => `'${p}'`).join(', ')}) name paths. Give them one way: ` +
        'load(path) (several: load([a, b])), or the "path" option alone.',
    );
  }
  const paths = filePaths(spec);
  if (!paths.length) {
    throw new BatchSourceError(
      `session.read.format('${format}').load() needs a path: load('data/events.${format}'), load(['a', 'b']), or .option('path', …). ` +
        'A folder reads every file in it.',
    );
  }
  for (const p of paths) {
    if (GLOB_CHARS.test(p)) {
      // A glob may match nothing yet; its fixed part must exist.
      let fixed = p;
      while (GLOB_CHARS.test(fixed)) fixed = dirname(fixed);
      if (!existsSync(fixed)) throw new BatchSourceError(`Path does not exist: ${fixed} (the folder of the pattern ${p}).`);
      continue;
    }
    if (!existsSync(p)) throw new BatchSourceError(`Path does not exist: ${p}. Check the name, or the working directory (${process.cwd()}).`);
    const st = statSync(p);
    if (!st.isFile() && !st.isDirectory()) throw new BatchSourceError(`${p} is neither a file nor a folder.`);
  }
}

/** The text formats' `encoding` option (Spark's `charset` is the same option). */
export const TEXT_OPTIONS: Record<string, string> = {
  encoding: 'the files\' character set: UTF-8 (default), ISO-8859-1, UTF-16LE or US-ASCII',
  charset: 'the same as encoding',
};

const ENCODINGS: Record<string, BufferEncoding> = {
  'utf-8': 'utf8',
  utf8: 'utf8',
  'iso-8859-1': 'latin1',
  latin1: 'latin1',
  'utf-16le': 'utf16le',
  utf16le: 'utf16le',
  'us-ascii': 'ascii',
  ascii: 'ascii',
};

/** The Node encoding the `encoding`/`charset` option names. */
export function textEncoding(o: FormatOptions): BufferEncoding {
  const v = o.get('encoding') ?? o.get('charset');
  if (v === undefined) return 'utf8';
  const e = ENCODINGS[v.trim().toLowerCase()];
  if (!e) throw new BatchSourceError(`Option encoding of format '${o.format}': "${v}" is not one Sluice reads. Known: UTF-8, ISO-8859-1, UTF-16LE, US-ASCII.`);
  return e;
}

/** The bytes of a file as a stream, gunzipped when its name ends in .gz (Spark reads compressed text files by extension). */
export function openText(file: string): Readable {
  const raw = createReadStream(file);
  if (!file.endsWith('.gz')) return raw;
  const gunzip = createGunzip();
  raw.on('error', (e) => gunzip.destroy(e));
  gunzip.on('close', () => raw.destroy()); // destroying what the reader holds closes the file too
  return raw.pipe(gunzip);
}

/** Collects rows and hands them over in chunks of about CHUNK_ROWS. */
export class Chunker {
  private rows: Row[] = [];
  /** Adds a row; returns a full chunk when there is one to hand over. */
  push(row: Row): Row[] | undefined {
    this.rows.push(row);
    if (this.rows.length < CHUNK_ROWS) return undefined;
    const full = this.rows;
    this.rows = [];
    return full;
  }
  /** What is left (possibly empty). */
  rest(): Row[] {
    const r = this.rows;
    this.rows = [];
    return r;
  }
}

/** A type only some formats can hold: the reader refuses a user schema with it, naming the field. */
export function refuseType(format: string, field: string, t: DataType, what: string): never {
  throw new BatchSourceError(`The ${format} format cannot read column "${field}" as ${t.simpleString()}: ${what}.`);
}

/** Converts Spark's CSV/JSON escapes in a one-character option (`\t`, `\u0001`) to the character. */
export function unescapeOption(v: string): string {
  if (v === '\\t') return '\t';
  if (v === '\\n') return '\n';
  if (v === '\\r') return '\r';
  if (v === '\\\\') return '\\';
  if (v === '\\"') return '"';
  if (v === "\\'") return "'";
  const u = /^\\u([0-9a-fA-F]{4})$/.exec(v);
  if (u) return String.fromCharCode(parseInt(u[1]!, 16));
  return v;
}

/**
 * A timestamp from text: with `timestampFormat` (a Spark datetime pattern) when given, else Spark's cast
 * rules (ISO 8601 or `yyyy-MM-dd[ HH:mm:ss[.SSSSSS]]`, UTC when no zone is written). Null when it does not parse.
 */
export function timestampFromText(s: string, format: string | undefined): Date | null {
  return format ? parseWithPattern(s, format) : (castValue(s, TimestampType) as Date | null);
}

/** A date (`YYYY-MM-DD`, Sluice's date value) from text: with `dateFormat` when given, else the cast rules. */
export function dateFromText(s: string, format: string | undefined): string | null {
  if (!format) return castValue(s, DateType) as string | null;
  const d = parseWithPattern(s, format);
  return d ? formatDate(d) : null;
}
