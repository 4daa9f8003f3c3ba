/** The contract between the micro-batch loop and a sink (Spark's Sink.addBatch). */
import type { Row, StructType } from '../types/index.js';

export type OutputMode = 'append' | 'update' | 'complete';

export interface Sink {
  /** Shown in progress as `sink.description`. */
  describe(): string;
  /**
   * Writes the rows of batch `batchId`. After a crash, a batch can be handed over again with the same id
   * and the same rows: a sink that can recognise it (memory, files, transactional Kafka) skips it.
   */
  addBatch(batchId: number, rows: Row[], schema: StructType, mode: OutputMode): Promise<void>;
  stop(): Promise<void>;
}
