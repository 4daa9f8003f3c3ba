/**
 * `df.groupByKey(…)`: rows grouped by a key, for arbitrary state per key (Spark's KeyValueGroupedDataset
 * with mapGroupsWithState / flatMapGroupsWithState; PySpark's `groupBy(…).applyInPandasWithState`).
 */
import { AnalysisError } from '../expr/compile.js';
import type { GroupState } from '../exec/operators/groupState.js';
import type { StatefulProcessor } from '../exec/operators/transformWithState.js';
import { GroupStateTimeout, TIMEOUT_OF_TIME_MODE, TimeMode, type GroupStateSpec, type GroupStateTimeoutKind, type TimeModeKind } from '../plan/groupState.js';
import { Row, StructType, parseDataType } from '../types/index.js';
import type { DataFrame } from './dataframe.js';

/** The output row type of a function, and the state's, as DDL strings ('user STRING, count LONG') or StructTypes. */
export interface GroupStateSchemas {
  /** The columns of the rows the function returns. */
  outputSchema: StructType | string;
  /**
   * The state's type: `update()` then checks values against it. Without it, state values must be plain
   * data (objects, arrays, strings, numbers, booleans, Dates, Buffers), checked at update.
   */
  stateSchema?: StructType | string;
}

const TIMEOUTS = Object.values(GroupStateTimeout) as string[];

function struct(s: StructType | string, what: string): StructType {
  const t = typeof s === 'string' ? parseDataType(s) : s;
  if (!(t instanceof StructType) || !t.fields.length) {
    throw new AnalysisError(`${what} must be a struct with at least one field, e.g. 'user STRING, count LONG'.`);
  }
  return t;
}

function timeoutOf(t: string, api: string): GroupStateTimeoutKind {
  if (!TIMEOUTS.includes(t)) {
    throw new AnalysisError(`${api}: unknown timeout "${t}". Use GroupStateTimeout.NoTimeout, .ProcessingTimeTimeout or .EventTimeTimeout.`);
  }
  return t as GroupStateTimeoutKind;
}

/** Rows grouped by key: call one of the *WithState methods to give each key state. */
export class KeyValueGroupedDataFrame<K = unknown> {
  constructor(
    private readonly df: DataFrame,
    private readonly key: GroupStateSpec['key'],
    private readonly make: (plan: DataFrame['plan']) => DataFrame,
  ) {}

  /**
   * Calls `fn(key, rows, state)` for each key with new rows in a batch — and for each key whose timeout
   * passed, with no rows — and emits the one row it returns. The state persists across batches in the
   * checkpoint. Only `outputMode('update')` (Spark's rule): each call's row replaces the key's previous one.
   */
  mapGroupsWithState<S = unknown>(
    timeout: GroupStateTimeoutKind | string,
    fn: (key: K, rows: Row[], state: GroupState<S>) => Row | Promise<Row>,
    schemas: GroupStateSchemas,
  ): DataFrame {
    return this.build('mapGroupsWithState', 'update', timeout, fn as GroupStateSpec['fn'], schemas);
  }

  /**
   * Like mapGroupsWithState, but `fn` returns any number of rows (an array or any iterable). `outputMode` is
   * the operator's: `'append'` (rows emitted once, for good — they may feed an aggregation) or `'update'`
   * (rows that replace earlier ones); without an aggregation after it, the query's output mode must match.
   */
  flatMapGroupsWithState<S = unknown>(
    outputMode: 'append' | 'update' | string,
    timeout: GroupStateTimeoutKind | string,
    fn: (key: K, rows: Row[], state: GroupState<S>) => Iterable<Row> | Promise<Iterable<Row>>,
    schemas: GroupStateSchemas,
  ): DataFrame {
    const m = outputMode.toLowerCase();
    if (m !== 'append' && m !== 'update') {
      throw new AnalysisError(`flatMapGroupsWithState's output mode must be "append" or "update", got "${outputMode}".`);
    }
    return this.build('flatMapGroupsWithState', m, timeout, fn as GroupStateSpec['fn'], schemas);
  }

  /**
   * Spark 4.0's transformWithState: `processor.init(handle, …)` declares named state variables (ValueState,
   * ListState, MapState, each with an optional TTL); `handleInputRows(key, rows, timerValues)` runs per key
   * with new rows and `handleExpiredTimer(key, timerValues, info)` per fired timer, both returning output
   * rows. `timeMode`: 'None' (no timers), 'ProcessingTime', or 'EventTime' (timers fire when the watermark
   * passes them; needs withWatermark). `outputMode` is the operator's, with flatMapGroupsWithState's rules.
   */
  transformWithState<R extends Row = Row>(
    processor: StatefulProcessor<K, R>,
    timeMode: TimeModeKind | string,
    outputMode: 'append' | 'update' | string,
    schemas: { outputSchema: StructType | string },
  ): DataFrame {
    const api = 'transformWithState';
    if (!processor || typeof processor.init !== 'function' || typeof processor.handleInputRows !== 'function') {
      throw new AnalysisError(`${api} needs a StatefulProcessor: an object with init(handle) and handleInputRows(key, rows, timerValues) (and optionally handleExpiredTimer, close).`);
    }
    if (!(Object.values(TimeMode) as string[]).includes(timeMode)) {
      throw new AnalysisError(`${api}: unknown time mode "${timeMode}". Use TimeMode.None, TimeMode.ProcessingTime or TimeMode.EventTime.`);
    }
    const m = outputMode.toLowerCase();
    if (m !== 'append' && m !== 'update') throw new AnalysisError(`${api}'s output mode must be "append" or "update", got "${outputMode}".`);
    if (!schemas?.outputSchema) throw new AnalysisError(`${api} needs { outputSchema }, the columns of the rows the processor returns.`);
    const tm = timeMode as TimeModeKind;
    return this.make({
      kind: 'groupState',
      child: this.df.plan,
      spec: {
        api,
        operatorMode: m,
        timeMode: tm,
        timeout: TIMEOUT_OF_TIME_MODE[tm],
        key: this.key,
        processor: processor as StatefulProcessor,
        outputSchema: struct(schemas.outputSchema, `${api}'s outputSchema`),
      },
    });
  }

  private build(api: GroupStateSpec['api'], operatorMode: 'append' | 'update', timeout: string, fn: GroupStateSpec['fn'], schemas: GroupStateSchemas): DataFrame {
    if (typeof fn !== 'function') throw new AnalysisError(`${api} needs a function (key, rows, state) => …`);
    if (!schemas?.outputSchema) throw new AnalysisError(`${api} needs { outputSchema }, the columns of the rows the function returns, e.g. 'user STRING, count LONG'.`);
    const spec: GroupStateSpec = {
      api,
      operatorMode,
      timeout: timeoutOf(timeout, api),
      key: this.key,
      fn,
      outputSchema: struct(schemas.outputSchema, `${api}'s outputSchema`),
      ...(schemas.stateSchema ? { stateSchema: struct(schemas.stateSchema, `${api}'s stateSchema`) } : {}),
    };
    return this.make({ kind: 'groupState', child: this.df.plan, spec });
  }
}
