import type { StateOperatorProgress } from './operators/statefulOperator.js';

/** Progress reports, with Spark's StreamingQueryProgress field names (so Spark's docs read across). */
export interface SourceProgress {
  description: string;
  startOffset: unknown;
  endOffset: unknown;
  latestOffset: unknown;
  numInputRows: number;
  inputRowsPerSecond: number;
  processedRowsPerSecond: number;
}

export interface StreamingQueryProgress {
  id: string;
  runId: string;
  name: string | null;
  /** When the trigger started (ISO 8601). */
  timestamp: string;
  batchId: number;
  batchDuration: number;
  numInputRows: number;
  inputRowsPerSecond: number;
  processedRowsPerSecond: number;
  durationMs: {
    latestOffset: number;
    walCommit: number;
    getBatch: number;
    queryPlanning: number;
    addBatch: number;
    commitOffsets: number;
    triggerExecution: number;
  };
  eventTime: Record<string, string>;
  stateOperators: StateOperatorProgress[];
  sources: SourceProgress[];
  sink: { description: string; numOutputRows: number };
  /** Sluice: records of this batch sent to the dead-letter destination instead of the sink. */
  numDeadLetterRows: number;
  /** Sluice: rows a filter dropped (input = output + filtered + dead letters for a stateless query). */
  numFilteredRows: number;
}

export interface StreamingQueryStatus {
  message: string;
  isDataAvailable: boolean;
  isTriggerActive: boolean;
}

export interface StreamingQueryListener {
  onQueryStarted?(event: { id: string; runId: string; name: string | null; timestamp: string }): void;
  onQueryProgress?(event: { progress: StreamingQueryProgress }): void;
  onQueryIdle?(event: { id: string; runId: string; timestamp: string }): void;
  onQueryTerminated?(event: { id: string; runId: string; exception: string | null }): void;
}
