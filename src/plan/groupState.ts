/**
 * Arbitrary per-key state in the plan (Spark's FlatMapGroupsWithState node): what `groupByKey(…)
 * .mapGroupsWithState(…)` / `.flatMapGroupsWithState(…)` asked for. Run by exec/operators/groupState.ts.
 */
import type { Row, StructType } from '../types/index.js';
import type { GroupState } from '../exec/operators/groupState.js';

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
