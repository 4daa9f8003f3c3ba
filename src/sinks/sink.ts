/** The contract between the micro-batch loop and a sink (Spark's Sink.addBatch). */
import type { RecordError } from '../expr/values.js';
import type { Row, StructType } from '../types/index.js';

/** Where a sink sends a row it cannot write (the dead-letter destination, or a failure with onBadRecord=fail). */
export type BadRowHandler = (row: Row, e: RecordError) => void;

export type OutputMode = 'append' | 'update' | 'complete';

/** What a sink learns when its query starts (Sink.start). */
export interface SinkContext {
  /** The query's id, stable across restarts (from the checkpoint's metadata). */
  queryId: string;
  /** The last batch the checkpoint says is committed (commits/N), if any. */
  lastCommittedBatch: number | undefined;
  /** What batch N reads, as logged in offsets/N (its end offsets and where it starts), or undefined without offsets/N. */
  batchOffsets: (batchId: number) => string | undefined;
  log: (line: string) => void;
}

export interface Sink {
  /** Shown in progress as `sink.description`. */
  describe(): string;
  /**
   * Called once when the query's loop starts, before its first batch (a re-run one included): a sink that
   * must recover (the transactional Kafka sink: fence a zombie, find the last batch it committed) does it here.
   */
  start?(ctx: SinkContext): Promise<void>;
  /**
   * Writes the rows of batch `batchId`. After a crash, a batch can be handed over again with the same id
   * and the same rows: a sink that can recognise it (memory, files, transactional Kafka) skips it.
   */
  addBatch(batchId: number, rows: Row[], schema: StructType, mode: OutputMode): Promise<void>;
  /**
   * A sink that can take a batch in chunks, as the rows are produced, implements this instead of being
   * handed the whole batch: a batch's memory then stays bounded however large its backlog (Kafka). The batch
   * is complete, and may be committed, only after `close()` resolves. A row the sink refuses before writing
   * anything of its chunk (a record too large for Kafka) goes to `onBad`.
   */
  openBatch?(batchId: number, schema: StructType, mode: OutputMode, onBad?: BadRowHandler): BatchWriter;
  stop(): Promise<void>;
}

/** One batch written chunk by chunk (Sink.openBatch). */
export interface BatchWriter {
  write(rows: Row[]): Promise<void>;
  /** Resolves when every row written is durable in the sink (for Kafka: acknowledged). */
  close(): Promise<void>;
  /** Called instead of close() when the batch fails: a transactional sink aborts what it wrote. */
  abort?(): Promise<void>;
}
