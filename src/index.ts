/**
 * Sluice: Structured Streaming for TypeScript. The public API, named as PySpark's.
 * @packageDocumentation
 */
export { SluiceSession, RuntimeConfig, Catalog, type TableInfo } from './api/session.js';
export { DataFrame, GroupedData } from './api/dataframe.js';
export { KeyValueGroupedDataFrame, type GroupStateSchemas } from './api/keyValueGrouped.js';
export { GroupStateTimeout, TimeMode, type GroupStateTimeoutKind, type GroupStateFunction, type TimeModeKind } from './plan/groupState.js';
export type { GroupState } from './exec/operators/groupState.js';
export type {
  StatefulProcessor, StatefulProcessorHandle, ValueState, ListState, MapState, TimerValues, ExpiredTimerInfo, StateVariableOptions,
} from './exec/operators/transformWithState.js';
export { DataFrameReader, DataStreamReader } from './api/reader.js';
export { BatchSourceError, registerBatchReader, type BatchReader, type BatchReaderFactory } from './sources/batch.js';
export { DataStreamWriter, type ForeachBatchFn, type ForeachWriter } from './api/writer.js';
export { DataFrameWriter, type SaveMode } from './api/batchWriter.js';
export { StreamingQueryManager } from './api/manager.js';
export { MicroBatchQuery, StreamingQueryException } from './exec/microBatch.js';
export type { StreamingQuery } from './exec/streamingQuery.js';
export type { StateOperatorProgress } from './exec/operators/statefulOperator.js';
export type { StreamingQueryProgress, StreamingQueryStatus, StreamingQueryListener, SourceProgress } from './exec/progress.js';
export { startMonitor, type Monitor, type MonitorOptions } from './ui/server.js';
export { doctor, type DoctorOptions, type DoctorReport } from './checkpoint/doctor.js';
export { readHistory, type RunEvent } from './checkpoint/history.js';
export { diagnose, formatFindings, type Finding, type DiagnosisCause, type DiagnosisSnapshot } from './exec/diagnose.js';
export type { TriggerOptions } from './exec/trigger.js';
export { DLQ_HEADERS } from './exec/deadLetter.js';
export { Column } from './expr/column.js';
export * from './expr/functions.js';
export {
  count, sum, avg, mean, min, max, first, last, collect_list, collectList, collect_set, collectSet,
  approx_count_distinct, approxCountDistinct, count_distinct, countDistinct,
} from './expr/aggregates.js';
export { window, session_window, sessionWindow, window_time, windowTime } from './expr/window.js';
export { interval, CalendarInterval, CalendarIntervalType } from './expr/interval.js';
export { expr, ParseException, SqlError, UnsupportedSqlError } from './sql/index.js';
export { AnalysisError } from './expr/compile.js';
export { RecordError } from './expr/values.js';
export { UnsupportedOperationError } from './plan/unsupported.js';
export { CheckpointError } from './checkpoint/checkpoint.js';
export { CheckpointDamageError, CheckpointLockError } from './checkpoint/errors.js';
export * from './types/index.js';
export { fromAvro, toAvro, from_avro, to_avro, type FromAvroOptions, type ToAvroOptions } from './serde/avro.js';
export { RegistryClient, registryClient, RegistryError, type RegistryConfig } from './serde/registry.js';
export { frame, unframe } from './serde/wireformat.js';
export { KafkaAdmin, KafkaError } from './kafka/client.js';
export { MemoryStream } from './sources/memory.js';
export type { OutputMode } from './sinks/sink.js';
export { connection, type Connection } from './config.js';
export { upsertBatch, redisUrl, storeKey, lastBatchKey, lastAppliedBatch, type UpsertBatch, type UpsertResult, type UpsertClient, type Entries } from './stores/redis.js';
export { runPipelineFile, redactRunLine, type PipelineRun } from './util/pipelineProcess.js';
export { explainCheckpoint, formatCheckpointReport, type CheckpointReport } from './checkpoint/explain.js';
export { readTopic, AckedProducer } from './kafka/client.js';
export { produceEvents, sampleEvents, userEventSchema, type ProduceOptions } from './demo/events.js';
// The local stack, for lessons and tests that start a server of their own (Redis) on a free 127.0.0.1 port.
export { startRedis, stopRedis, freePort } from './stack/stack.js';
export { ConnectUnsupportedError, SparkConnectError, SUPPORTED_SPARK, parseConnectUrl } from './connect/base.js';
export type { SparkConnectClient } from './connect/client.js';
export { RemoteStreamingQuery } from './connect/query.js';
