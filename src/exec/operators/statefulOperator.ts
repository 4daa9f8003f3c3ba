/**
 * The one shape every stateful operator has (Spark's StateStoreWriter / StatefulOperator): aggregation,
 * deduplication, session windows, and the joins and user state to come each implement it in a file of
 * their own, and the micro-batch loop knows only this interface.
 *
 * A batch, as the loop drives it (exec/microBatch.ts, exec/planRunner.ts):
 *   begin(batch)        load state at version batchId (the state after batch batchId-1), take this
 *                       batch's watermarks from the per-batch plan (exec/incremental.ts)
 *   process(rows)*      once per chunk of input (a batch is streamed in chunks, so its memory stays
 *                       bounded): drop rows behind the watermark for late events, update state; returns
 *                       the rows it emits at once (dedupe's first occurrences), usually none
 *   finish()            after the last chunk: evict state behind the watermark for eviction and emit
 *                       what the output mode wants (append: final groups; update: changed groups;
 *                       complete: all groups)
 *   commit()            write state version batchId+1
 *   progress()          Spark's stateOperators[] entry for this batch
 * and between batches:
 *   shouldRunAnotherBatch(w)  would a batch with no new data, run with input watermark w, evict or emit?
 *                             (Spark's no-data batch, decided per operator)
 *   produceOutputWatermark(w) the watermark this operator's output rows keep (watermark propagation)
 */
import type { OutputMode } from '../../sinks/sink.js';
import type { Row } from '../../types/index.js';
import type { StateSchema } from '../../state/schema.js';

/** Spark's StateOperatorProgress, with its field names. */
export interface StateOperatorProgress {
  operatorName: string;
  numRowsTotal: number;
  numRowsUpdated: number;
  numRowsRemoved: number;
  numRowsDroppedByWatermark: number;
  memoryUsedBytes: number;
  commitTimeMs: number;
  numShufflePartitions: number;
  numStateStoreInstances: number;
  /**
   * Window and session aggregations: `numRowsWithNullEventTime`, rows left out because their event time was
   * null (Spark drops them silently; Sluice counts them and logs a warning).
   */
  customMetrics?: Record<string, number>;
}

/** A row an operator dropped as late, for a late-events destination. */
export interface LateRow {
  row: Row;
  operator: string;
  watermarkMs: number;
}

/**
 * What one batch asks of an operator, decided by the per-batch plan (exec/incremental.ts), as Spark's
 * IncrementalExecution hands each operator its watermarks.
 */
export interface OperatorBatch {
  batchId: number;
  outputMode: OutputMode;
  /**
   * Rows at or behind this watermark are late: the previous batch's watermark, propagated to this operator
   * (Spark 3.4+). Using the previous one means rows that an upstream operator emits in this batch (a window
   * that just closed) are not late for the operator after it.
   */
  lateEventsMs: number;
  /** State at or behind this watermark is evicted (and, in append mode, emitted): this batch's watermark. */
  evictionMs: number;
  /** Rows dropped as late go here when a late-events destination is set. */
  onLate?: (late: LateRow) => void;
  /** The batch's processing time (offsets/N's batchTimestampMs): user state's processing-time timeouts. */
  batchTimestampMs?: number;
}

export interface StatefulOperator {
  /** The operator id: its state lives in `state/<id>/`. */
  readonly id: number;
  /** Spark's short operator name, as in progress (`stateStoreSave`, `dedupe`, …). */
  readonly name: string;
  readonly partitions: number;
  /** Where its partitions run, for explain(). */
  describe(): string;
  /** What its state holds, written to `state/<id>/_metadata/schema` and checked on restart. */
  stateSchema(): StateSchema;
  begin(batch: OperatorBatch): Promise<void>;
  /** `input`: which input the rows come from, for an operator with several (a join: 0 left, 1 right). */
  process(rows: Row[], input?: number): Promise<Row[]>;
  finish(): Promise<Row[]>;
  commit(): Promise<void>;
  progress(): StateOperatorProgress;
  /** The watermark of this operator's output, given its input watermark; undefined: its output has none. */
  produceOutputWatermark(inputWatermarkMs: number): number | undefined;
  /**
   * Whether a no-data batch, whose input watermark for this operator would be `newInputWatermarkMs`, has work
   * to do, given the last batch this operator ran (`last`: its watermarks and output mode) and the processing
   * time that batch would run with (`nextBatchTimestampMs`: user state's processing-time timeouts).
   */
  shouldRunAnotherBatch(last: OperatorBatch, newInputWatermarkMs: number, nextBatchTimestampMs: number): boolean;
  /** What it holds until the watermark passes it (an event-time aggregation's groups), for diagnose(). */
  pendingOutput?(): PendingOutput | undefined;
  close(): Promise<void>;
}

/**
 * Spark's rule for aggregation, deduplication and session windows (StateStoreSaveExec,
 * StreamingDeduplicateExec, SessionWindowStateStoreSaveExec.shouldRunAnotherBatch): another batch is worth
 * running when the operator's input watermark moved past the one its last batch evicted with — except in
 * complete mode, which never evicts. (Spark asks this even when no key is an event time; so does Sluice,
 * so that batch ids line up with Spark's.)
 */
/** Rows an operator holds in state until the watermark passes their event time (exec/diagnose.ts). */
export interface PendingOutput {
  /** Groups in state. */
  rows: number;
  /** The earliest event time in state (a window's end): the watermark must pass it first. Undefined when not known. */
  oldestEventTimeMs?: number;
}

export function watermarkMoved(last: OperatorBatch, newInputWatermarkMs: number): boolean {
  return last.outputMode !== 'complete' && newInputWatermarkMs > last.evictionMs;
}
