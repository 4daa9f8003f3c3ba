/**
 * Arbitrary per-key state in the plan (Spark's FlatMapGroupsWithState node): what `groupByKey(…)
 * .mapGroupsWithState(…)` / `.flatMapGroupsWithState(…)` asked for. Run by exec/operators/groupState.ts.
 */
import type { Row, StructType } from '../types/index.js';
import type { GroupState } from '../exec/operators/groupState.js';
import type { StatefulProcessor } from '../exec/operators/transformWithState.js';

/**
 * When a key's function is called without new rows. Spark's names: `GroupStateTimeout.NoTimeout()`,
 * `.ProcessingTimeTimeout()`, `.EventTimeTimeout()` in Scala; PySpark passes the same names as strings.
 */
export const GroupStateTimeout = {
  /** Never: state stays until the function removes it. */
  NoTimeout: 'NoTimeout',
  /** `state.setTimeoutDuration(d)`: the key times out once a batch starts d after the batch that set it. */
  ProcessingTimeTimeout: 'ProcessingTimeTimeout',
  /** `state.setTimeoutTimestamp(t)`: the key times out once the watermark passes t (needs withWatermark). */
  EventTimeTimeout: 'EventTimeTimeout',
} as const;
export type GroupStateTimeoutKind = (typeof GroupStateTimeout)[keyof typeof GroupStateTimeout];

/**
 * The function called per key and batch: the key, the key's new rows in this batch (none when it timed out),
 * and its state. mapGroupsWithState returns one output row; flatMapGroupsWithState any number (an iterable).
 * It may be async.
 */
export type GroupStateFunction<K = unknown, S = unknown, R = unknown> = (key: K, rows: Row[], state: GroupState<S>) => R | Promise<R>;

/** Spark 4.0's TimeMode for transformWithState: which clock its timers (and late-row filtering) follow. */
export const TimeMode = {
  None: 'None',
  ProcessingTime: 'ProcessingTime',
  EventTime: 'EventTime',
} as const;
export type TimeModeKind = (typeof TimeMode)[keyof typeof TimeMode];

/** The timeout kind a time mode acts like (the rules for watermarks and no-data batches are the same). */
export const TIMEOUT_OF_TIME_MODE: Record<TimeModeKind, GroupStateTimeoutKind> = {
  None: 'NoTimeout',
  ProcessingTime: 'ProcessingTimeTimeout',
  EventTime: 'EventTimeTimeout',
};

/** User state per key in the plan: the GroupState APIs, or transformWithState. */
export type UserStateSpec = GroupStateSpec | TransformWithStateSpec;

/** `groupByKey(…).transformWithState(processor, timeMode, outputMode, { outputSchema })` (Spark 4.0). */
export interface TransformWithStateSpec {
  api: 'transformWithState';
  operatorMode: 'append' | 'update';
  timeMode: TimeModeKind;
  /** The GroupStateTimeout it acts like, for the rules shared with flatMapGroupsWithState. */
  timeout: GroupStateTimeoutKind;
  key: GroupStateSpec['key'];
  processor: StatefulProcessor;
  outputSchema: StructType;
}

export interface GroupStateSpec {
  /** Which API built it: mapGroupsWithState emits exactly one row per call. */
  api: 'mapGroupsWithState' | 'flatMapGroupsWithState';
  /** The operator's own output mode (mapGroupsWithState: update). */
  operatorMode: 'append' | 'update';
  timeout: GroupStateTimeoutKind;
  /** The grouping: columns (the key is the value, or an array of values for several), or a function of the row. */
  key: { columns: string[] } | { fn: (row: Row) => unknown };
  fn: GroupStateFunction;
  outputSchema: StructType;
  /** The declared state type; without it, state values must be plain data (checked at update). */
  stateSchema?: StructType;
}
