/**
 * The handle `writeStream.start()` returns (Spark's StreamingQuery). Two classes implement it: the
 * micro-batch loop in this process (exec/microBatch.ts), and a proxy for a query running on Spark through
 * Spark Connect (connect/query.ts). Code written against this interface runs on either.
 */
import type { DiagnosisSnapshot, Finding } from './diagnose.js';
import type { StreamingQueryProgress, StreamingQueryStatus } from './progress.js';

export interface StreamingQuery {
  /** Stays the same across restarts from the same checkpoint. */
  readonly id: string;
  /** New for every start. */
  readonly runId: string;
  readonly name: string | null;
  /** Progress of the last batches, oldest first. */
  readonly recentProgress: readonly StreamingQueryProgress[];
  readonly lastProgress: StreamingQueryProgress | null;
  readonly status: StreamingQueryStatus;
  readonly isActive: boolean;
  /** The error that stopped the query, if one did. */
  readonly exception: Error | null;
  /** Resolves when the query stops; rejects with the query's error if it failed. With a timeout, resolves to whether it stopped. */
  awaitTermination(timeoutMs?: number): Promise<boolean>;
  /** Waits until every record available in the sources now has been processed and committed. For tests and lessons. */
  processAllAvailable(): Promise<void>;
  /** Stops the query after the batch in progress. */
  stop(): Promise<void>;
  /** The plan and how it runs. */
  explain(): string;
  /** "Why is there no output?": findings, most likely first. */
  diagnose(): Promise<Finding[]>;
  /** What diagnose() looks at. */
  diagnosisSnapshot(): Promise<DiagnosisSnapshot>;
  /** Records available in the sources beyond the last batch's end, when the sources can say. */
  lag(): Promise<number | undefined>;
  /** @internal Called by the manager to learn when this query ends. */
  whenTerminated(cb: () => void): void;
}
