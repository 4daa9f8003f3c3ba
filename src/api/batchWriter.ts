/**
 * `df.write`: writes a batch DataFrame once, as Spark's DataFrameWriter —
 * `df.write.format(f).option(k, v).mode(m).save(path?)`. Its main use is inside foreachBatch, where one
 * micro-batch is written to several places:
 *
 * ```ts
 * .foreachBatch(async (batch, batchId) => {
 *   await batch.write.format('kafka').option('kafka.bootstrap.servers', servers).option('topic', 'out').save();
 *   await batch.write.mode('overwrite').json(`out/batch=${batchId}`); // a re-run replaces the same folder
 * })
 * ```
 *
 * Formats: `json` (JSON-lines files in a folder, Spark's part-file names and save modes), `kafka` (the
 * streaming Kafka sink's options and row → record rules, same code), `console` (Spark's batch console
 * format: the rows as a table) and `memory` (a Sluice addition: rows into a table `session.table(name)` reads).
 * The DataFrame is computed once per save(); to compute a derived DataFrame once for several saves,
 * `persist()` it and write the DataFrame persist() returns.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { ensureDir, fsyncDir, writeAtomic } from '../checkpoint/files.js';
import { AnalysisError } from '../expr/compile.js';
import { toJsonValue } from '../expr/functions.js';
import { toJsonText } from '../expr/values.js';
import { kafkaConfigFromOptions } from '../kafka/client.js';
import { KafkaSink } from '../sinks/kafka.js';
import { showString } from '../sinks/show.js';
import type { Row, StructType } from '../types/index.js';
import { editDistance } from '../util/editDistance.js';
import type { DataFrame } from './dataframe.js';
import { WithOptions } from './options.js';
import type { SluiceSession } from './session.js';
import { checkOutputTopics } from './writer.js';

/** Spark's SaveMode: what save() does when the destination already has data. */
export type SaveMode = 'append' | 'overwrite' | 'ignore' | 'errorifexists';

/** Spark's names for the modes (case-insensitive); `error` and `default` mean errorifexists. */
const MODE_NAMES: Record<string, SaveMode> = {
  append: 'append',
  overwrite: 'overwrite',
  ignore: 'ignore',
  error: 'errorifexists',
  errorifexists: 'errorifexists',
  default: 'errorifexists',
};

interface WriteRequest {
  df: DataFrame;
  session: SluiceSession;
  path: string | undefined;
  mode: SaveMode;
  /** The options: known ones under the format's spelling of their name, `kafka.*` ones as given. */
  options: Readonly<Record<string, string>>;
  /** A known option, by the format's spelling of its name. */
  get(name: string): string | undefined;
}

interface BatchFormat {
  /** Known option names; and prefixes whose options pass through (`kafka.`). */
  options: Record<string, string>;
  prefixes?: string[];
  /** What `save(path)` means for this format, or undefined when it takes no path (and why). */
  path: { required: true; what: string } | { required: false; why: string };
  /** Save modes the format accepts (others are refused, with these listed). */
  modes: SaveMode[];
  write(req: WriteRequest): Promise<void>;
}

const ALL_MODES: SaveMode[] = ['errorifexists', 'append', 'overwrite', 'ignore'];

const FORMATS: Record<string, BatchFormat> = {
  json: {
    options: {
      maxRecordsPerFile: 'the most rows in one part file (default 0: no limit); more rows make more files (c000, c001, …)',
    },
    path: { required: true, what: 'the folder that receives the part files' },
    modes: ALL_MODES,
    write: writeJson,
  },
  kafka: {
    options: {
      topic: 'the topic for rows without a "topic" column (or with a null one)',
      createMissingTopics: 'true: create the "topic" option\'s topic if it does not exist (broker defaults)',
    },
    prefixes: ['kafka.'],
    path: { required: false, why: 'it writes to topics: set .option("topic", …) or give the rows a "topic" column' },
    // Spark's Kafka relation: both append and errorifexists simply write (a topic cannot "exist already").
    modes: ['errorifexists', 'append'],
    write: writeKafka,
  },
  console: {
    options: { numRows: 'rows to show (default 20)', truncate: 'cut values to 20 characters (default true)' },
    path: { required: false, why: 'it prints to the session output' },
    modes: ALL_MODES, // Spark's console relation ignores the mode
    write: writeConsole,
  },
  memory: {
    options: {},
    path: { required: true, what: 'the table name, for session.table(name) and session.sql()' },
    modes: ALL_MODES,
    write: writeMemory,
  },
};

/**
 * Writes a batch DataFrame to a sink, once (Spark's DataFrameWriter). Get one with `df.write`; save() runs
 * the DataFrame and resolves when the data is written (for Kafka: acknowledged by the broker).
 */
export class DataFrameWriter extends WithOptions {
  private fmt: string | undefined;
  private saveMode: SaveMode = 'errorifexists';

  constructor(private readonly df: DataFrame) {
    super();
  }

  /** The destination format: `json`, `kafka`, `console` or `memory`. Case-insensitive, as Spark's. */
  format(source: string): this {
    this.fmt = source.toLowerCase();
    return this;
  }

  /**
   * What save() does when the destination has data: `errorifexists` (default; also `error`, `default`) fails,
   * `append` adds, `overwrite` replaces, `ignore` writes nothing. Kafka takes append and errorifexists (both
   * just write), as Spark's.
   */
  mode(saveMode: SaveMode | string): this {
    const m = MODE_NAMES[String(saveMode).toLowerCase()];
    if (!m) {
      throw new AnalysisError(
        `Unknown save mode "${saveMode}". Accepted save modes are 'overwrite', 'append', 'ignore', 'error', 'errorifexists', 'default'.`,
      );
    }
    this.saveMode = m;
    return this;
  }

  /** Shortcut for `format('json').save(path)`: JSON lines in part files under the folder `path`. */
  json(path: string): Promise<void> {
    return this.format('json').save(path);
  }

  /**
   * Runs the DataFrame and writes its rows. `path` is the folder for `json`, the table name for `memory`,
   * and absent for `kafka` and `console`. Checks the format, the options, the mode and the path before
   * anything runs.
   */
  async save(path?: string): Promise<void> {
    if (!this.fmt) {
      throw new AnalysisError(`df.write: call .format(…) before save(): Sluice writes ${Object.keys(FORMATS).join(', ')} (Spark's default, parquet, is not written yet).`);
    }
    const format = FORMATS[this.fmt];
    if (!format) {
      const near = Object.keys(FORMATS).find((f) => editDistance(f, this.fmt!) <= 2);
      throw new AnalysisError(
        `Unknown format "${this.fmt}" for df.write${near ? ` (did you mean ${near}?)` : ''}. Sluice writes: ${Object.keys(FORMATS).join(', ')}. ` +
          '(A streaming DataFrame is written with writeStream.)',
      );
    }
    const known = new Map(Object.keys(format.options).map((k) => [k.toLowerCase(), k]));
    for (const key of Object.keys(this.opts)) {
      if (known.has(key.toLowerCase()) || format.prefixes?.some((p) => key.startsWith(p))) continue;
      const names = [...Object.keys(format.options), ...(format.prefixes ?? []).map((p) => `${p}*`)];
      const near = names.find((k) => editDistance(k.toLowerCase(), key.toLowerCase()) <= 2);
      throw new AnalysisError(
        `df.write.format('${this.fmt}') has no option "${key}"${near ? ` (did you mean ${near}?)` : ''}. ` +
          `Its options: ${names.length ? names.map((n) => (format.options[n] ? `${n} (${format.options[n]})` : n)).join('; ') : 'none'}.`,
      );
    }
    if (!format.modes.includes(this.saveMode)) {
      // Spark's wording for Kafka: "Save mode Overwrite not allowed for Kafka. Allowed save modes are Append and ErrorIfExists (default)."
      throw new AnalysisError(
        `Save mode ${this.saveMode} is not allowed for ${this.fmt}. Allowed save modes are ${format.modes.join(' and ')}` +
          `${format.modes[0] === 'errorifexists' ? ' (errorifexists is the default)' : ''}.`,
      );
    }
    if (format.path.required && !path) throw new AnalysisError(`df.write.format('${this.fmt}').save() needs a path: ${format.path.what}.`);
    if (!format.path.required && path !== undefined) {
      throw new AnalysisError(`df.write.format('${this.fmt}') takes no path (got "${path}"): ${format.path.why}.`);
    }
    if (this.df.isStreaming) throw new AnalysisError("'write' can not be called on a streaming DataFrame: use writeStream.");
    // Known options under their own spelling (Spark's are case-insensitive), prefixed ones (kafka.*) as given.
    const options = Object.fromEntries(Object.entries(this.opts).map(([k, v]) => [known.get(k.toLowerCase()) ?? k, v]));
    await format.write({ df: this.df, session: this.df.session, path, mode: this.saveMode, options, get: (name) => options[name] });
  }
}

/** The rows and schema of the DataFrame to write (one run of its plan). */
async function rowsOf(df: DataFrame): Promise<{ rows: Row[]; schema: StructType }> {
  const [rows, schema] = await Promise.all([df.collect(), df.schema()]);
  return { rows, schema };
}

function positiveInt(req: WriteRequest, name: string, fallback: number): number {
  const v = req.get(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new AnalysisError(`Option ${name} must be a whole number (0 or more), got "${v}".`);
  return n;
}

/**
 * JSON lines, as Spark's JSON data source writes them (the to_json encoding: null fields left out, timestamps
 * ISO-8601 with milliseconds, binary base64), in `part-00000-<job uuid>-c000.json` files under the folder,
 * then an empty `_SUCCESS`. Like Spark's commit protocol, files are written under `_temporary/<job>/` and
 * moved into the folder only when complete, so a reader (which skips `_` names) never sees half a file.
 * Like Spark, a DataFrame without rows still writes one (empty) part file.
 */
async function writeJson(req: WriteRequest): Promise<void> {
  const dir = resolve(req.path!);
  const stat = fs.statSync(dir, { throwIfNoEntry: false });
  if (stat) {
    if (req.mode === 'errorifexists') {
      throw new AnalysisError(
        `[PATH_ALREADY_EXISTS] Path ${dir} already exists. Set mode as "overwrite" to overwrite the existing path ` +
          '(or "append" to add files to it, "ignore" to skip the write).',
      );
    }
    if (req.mode === 'ignore') return; // Spark does not even run the DataFrame
    if (req.mode === 'append' && !stat.isDirectory()) throw new AnalysisError(`Cannot append to ${dir}: it is a file, not a folder of part files.`);
    const cwd = resolve(process.cwd());
    if (req.mode === 'overwrite' && (cwd === dir || cwd.startsWith(dir.endsWith(sep) ? dir : dir + sep))) {
      // Spark would delete it; a path typed as '.' or '..' is far more likely a mistake than an intent.
      throw new AnalysisError(`Refusing to overwrite ${dir}: it is the working folder or one of its parents. Write to a folder of its own.`);
    }
  }
  const maxPerFile = positiveInt(req, 'maxRecordsPerFile', 0) || Infinity;
  // Run the DataFrame before deleting anything: a failing DataFrame leaves an overwritten folder as it was.
  const { rows, schema } = await rowsOf(req.df);
  if (stat && req.mode === 'overwrite') {
    fs.rmSync(dir, { recursive: true, force: true });
    fsyncDir(resolve(dir, '..'));
  }
  const job = randomUUID();
  const staging = join(dir, '_temporary', job);
  ensureDir(staging);
  const names: string[] = [];
  let at = 0;
  do {
    const part = rows.slice(at, at + maxPerFile);
    const name = `part-00000-${job}-c${String(names.length).padStart(3, '0')}.json`;
    writeAtomic(join(staging, name), jsonLines(part, schema), { overwrite: false });
    names.push(name);
    at += part.length;
  } while (at < rows.length);
  for (const name of names) fs.renameSync(join(staging, name), join(dir, name));
  fsyncDir(dir);
  fs.rmSync(staging, { recursive: true, force: true });
  try {
    fs.rmdirSync(join(dir, '_temporary')); // unless another write to this folder is under way
  } catch {
    /* not empty: its other job removes its own */
  }
  writeAtomic(join(dir, '_SUCCESS'), '');
}

function* jsonLines(rows: Row[], schema: StructType): Generator<string> {
  for (const row of rows) yield toJsonText(toJsonValue(row, schema)) + '\n';
}

/** Topics checked to exist, per session and cluster: a foreachBatch writing every batch asks the broker once. */
const checkedTopics = new WeakMap<SluiceSession, Set<string>>();

/**
 * The streaming Kafka sink's code, run once: the same options (`kafka.*`, `topic`), the same row → record
 * rules and checks (kafkaRecordMaker: `value` required; `key`, `topic`, `partition`, `headers` optional), the
 * same acknowledged producer. A record too large for the producer fails the save before any of it is sent.
 */
async function writeKafka(req: WriteRequest): Promise<void> {
  const schema = await req.df.schema();
  if ((req.get('exactlyOnce') ?? 'false').toLowerCase() === 'true') {
    throw new AnalysisError(
      "option('exactlyOnce') belongs to a streaming query's Kafka sink: it ties each batch's transaction to the query's checkpoint. " +
        'A batch write (df.write, or batchDF.write inside foreachBatch) has no checkpoint of its own: remove the option. For exactly-once ' +
        "output of a stream, write it with writeStream.format('kafka').option('exactlyOnce', 'true') instead of foreachBatch, or make the consumer idempotent.",
    );
  }
  const sink = new KafkaSink(req.options);
  try {
    sink.validate(schema); // a wrong output schema fails now, before the DataFrame runs
    const topic = req.get('topic');
    if (topic) {
      const key = JSON.stringify([kafkaConfigFromOptions(req.options)['bootstrap.servers'], topic]);
      const seen = checkedTopics.get(req.session) ?? new Set<string>();
      checkedTopics.set(req.session, seen);
      if (!seen.has(key)) {
        const create = (req.get('createMissingTopics') ?? 'false').toLowerCase();
        if (create !== 'true' && create !== 'false') throw new AnalysisError(`Option createMissingTopics must be "true" or "false", got "${req.get('createMissingTopics')}".`);
        await checkOutputTopics([{ topic, option: 'topic', conf: req.options }], create === 'true', (l) => req.session.log(l));
        seen.add(key);
      }
    }
    const rows = await req.df.collect();
    const w = sink.openBatch(0, schema, 'append');
    await w.write(rows);
    await w.close();
  } finally {
    await sink.stop();
  }
}

/** Spark's batch console format: the rows as show() prints them (no "Batch: N" header: there is no batch). */
async function writeConsole(req: WriteRequest): Promise<void> {
  const numRows = positiveInt(req, 'numRows', 20);
  const truncate = req.get('truncate');
  if (truncate !== undefined && !/^(true|false)$/i.test(truncate)) throw new AnalysisError(`Option truncate must be "true" or "false", got "${truncate}".`);
  const { rows, schema } = await rowsOf(req.df);
  req.session.out(showString(rows, schema, numRows, truncate === undefined || truncate.toLowerCase() === 'true'));
}

/**
 * Rows into the session's memory table `path` (the table a memory-sink query writes), read with
 * session.table(path). Not in Spark (its memory sink is streaming only); handy in tests and lessons.
 */
async function writeMemory(req: WriteRequest): Promise<void> {
  const table = req.session.memoryTable(req.path!);
  if (table.schema) {
    if (req.mode === 'errorifexists') {
      throw new AnalysisError(`Table ${req.path} already exists. Set mode as "overwrite" to replace its rows, or "append" to add to them.`);
    }
    if (req.mode === 'ignore') return;
  }
  const { rows, schema } = await rowsOf(req.df);
  if (req.mode === 'append' && table.schema && table.schema.simpleString() !== schema.simpleString()) {
    throw new AnalysisError(`Cannot append to table ${req.path}: its schema is ${table.schema.simpleString()}, the rows' is ${schema.simpleString()}.`);
  }
  table.schema = schema;
  table.rows = req.mode === 'overwrite' ? [...rows] : [...table.rows, ...rows];
}
