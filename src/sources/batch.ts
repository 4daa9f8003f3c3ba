/**
 * Batch (static) sources: what `session.read.format(…).load(…)` reads — files (json, csv, parquet) and a
 * Kafka topic's current contents, as Spark's batch sources. A static DataFrame is read again each time a
 * plan that uses it runs (each micro-batch, for the static side of a stream-static join), unless it is
 * cached (`df.cache()`), as in Spark.
 */
import type { BatchSourceSpec } from '../plan/logical.js';
import type { Row, StructType } from '../types/index.js';

export interface BatchReader {
  /** The schema: the user's (`.schema(…)`), or what the data says (inferred from json/csv, a parquet footer, Kafka's fixed columns). */
  schema(): Promise<StructType>;
  /** The rows, in chunks (about CHUNK_ROWS each), read anew on each call. */
  read(schema: StructType): AsyncIterable<Row[]>;
}

export interface BatchReaderFactory {
  create(spec: BatchSourceSpec): BatchReader;
}

const READERS = new Map<string, BatchReaderFactory>();

/** Makes `format` readable by `session.read.format(format)`. */
export function registerBatchReader(format: string, factory: BatchReaderFactory): void {
  READERS.set(format.toLowerCase(), factory);
}

export class BatchSourceError extends Error {
  override name = 'BatchSourceError';
}

export function createBatchReader(spec: BatchSourceSpec): BatchReader {
  const f = READERS.get(spec.format.toLowerCase());
  if (!f) {
    throw new BatchSourceError(
      `session.read.format('${spec.format}') is not a batch format Sluice reads. Known: ${[...READERS.keys()].sort().join(', ') || 'none'}.`,
    );
  }
  return f.create(spec);
}
