/**
 * `session.readStream` (DataStreamReader) and `session.read` (DataFrameReader): declare a streaming or a
 * batch source — format, options, schema — as Spark's readers do.
 */
import { StructType, parseSchema } from '../types/index.js';
import { sourceSchema } from '../sources/index.js';
import { createBatchReader } from '../sources/batch.js';
import '../sources/batch/index.js'; // registers json, csv, parquet and kafka with createBatchReader
import type { BatchSourceSpec } from '../plan/logical.js';
import { DataFrame } from './dataframe.js';
import { WithOptions } from './options.js';
import type { SluiceSession } from './session.js';

/** What both readers declare before load(): the format, options and an optional schema. */
abstract class SourceReader extends WithOptions {
  protected fmt: string | undefined;
  protected userSchema: StructType | undefined;

  constructor(protected readonly session: SluiceSession) {
    super();
  }

  /** The source's format (`kafka`, `rate`; for session.read also `json`, `csv`, `parquet`). */
  format(source: string): this {
    this.fmt = source;
    return this;
  }

  /**
   * The schema to read with, instead of the source's own (inferred for json/csv, the file's for parquet): a
   * StructType or a DDL string (`'id BIGINT, name STRING'`).
   */
  schema(schema: StructType | string): this {
    this.userSchema = typeof schema === 'string' ? parseSchema(schema) : schema;
    return this;
  }
}

export class DataStreamReader extends SourceReader {
  /** Returns the streaming DataFrame. No connection is made until a query starts. */
  load(): DataFrame {
    if (!this.fmt) throw new Error('readStream: call .format("kafka") (or another source) before .load().');
    const spec = { format: this.fmt, options: { ...this.opts }, ...(this.userSchema ? { userSchema: this.userSchema } : {}) };
    sourceSchema(spec); // unknown formats and bad options fail here, not at start()
    return new DataFrame(this.session, { kind: 'streamingSource', spec });
  }
}

/**
 * `session.read`: declares a batch (static) source, as Spark's DataFrameReader — files (`json`, `csv`,
 * `parquet`: a file, a folder of files read in name order, or a glob) or a Kafka topic's current contents
 * (`kafka`). The DataFrame is read when a plan that uses it runs (`collect()`, `show()`, each micro-batch of a
 * stream-static join), and read anew each time, so a changed file is seen by the next run; `df.cache()` reads
 * it once. Options are strings, as in Spark, with case-insensitive names; an option a format does not know is
 * refused with the ones it does.
 *
 * ```ts
 * const users = session.read.option('header', true).option('inferSchema', true).csv('data/users.csv');
 * const events = session.read.schema('id BIGINT, ts TIMESTAMP, tags ARRAY<STRING>').json('data/events/');
 * ```
 */
export class DataFrameReader extends SourceReader {

  /**
   * The DataFrame of `path` (one path or several; or the `path` option; none for kafka). Options and paths are
   * checked now — an unknown option, a missing file — and the data is read when the DataFrame runs.
   */
  load(path?: string | string[]): DataFrame {
    if (!this.fmt) throw new Error("read: call .format('json') (or csv, parquet, kafka) before .load(), or use .json(path), .csv(path), .parquet(path).");
    const paths = path === undefined ? [] : Array.isArray(path) ? [...path] : [path];
    const spec: BatchSourceSpec = { format: this.fmt, options: { ...this.opts }, paths, ...(this.userSchema ? { userSchema: this.userSchema } : {}) };
    // An unknown format, a bad option or a missing path fails here, where it was written. On a Spark Connect
    // session the paths and formats are the cluster's: Spark checks them.
    if (!this.session.remote) createBatchReader(spec);
    return new DataFrame(this.session, { kind: 'batchSource', spec });
  }

  /** JSON Lines files (one object per line; `multiLine` for one document per file). */
  json(path: string | string[]): DataFrame {
    return this.format('json').load(path);
  }

  /** CSV files (`header`, `sep`, `inferSchema`, `quote`, `escape`, `nullValue`, …). */
  csv(path: string | string[]): DataFrame {
    return this.format('csv').load(path);
  }

  /** Parquet files. */
  parquet(path: string | string[]): DataFrame {
    return this.format('parquet').load(path);
  }
}
