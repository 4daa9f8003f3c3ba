/**
 * The state side of a streaming aggregation (Spark's StateStoreRestoreExec + StateStoreSaveExec): group
 * buffers in versioned stores, updated chunk by chunk, then one pass at the end of the batch that evicts
 * groups behind the watermark and emits what the output mode wants. It runs in the query's thread, or in
 * the worker threads that own the partitions (exec/operators/parallelState.ts, stateWorker.ts): what it
 * receives is plain data (keys, event times, argument rows), so it crosses threads.
 */
import { decodeState } from '../../state/codec.js';
import type { StateStore } from '../../state/store.js';
import type { AggregateImpl } from '../../expr/aggregates.js';
import type { AggregateStage } from '../../plan/analyzer.js';
import type { OutputMode } from '../../sinks/sink.js';
import type { Row } from '../../types/index.js';
import type { OperatorState } from './operatorState.js';
import { eventTimeMs } from '../../types/timestamp.js';

/** The event time of a group's key values: the watermarked key part (a timestamp, or a window's end). */
export function keyTime(eventTimeKey: AggregateStage['eventTimeKey'], keyValues: unknown[]): number | undefined {
  if (!eventTimeKey) return undefined;
  const v = keyValues[eventTimeKey.index];
  if (v == null) return undefined;
  return eventTimeMs(eventTimeKey.isWindow ? (v as { end: Date }).end : (v as Date));
}

/** How a stored key's event time is read back: decode the key, take its watermarked part. */
export function timeOfKeyFn(eventTimeKey: AggregateStage['eventTimeKey']): ((key: string) => number | null) | undefined {
  return eventTimeKey && ((key) => keyTime(eventTimeKey, decodeState(key) as unknown[]) ?? null);
}

/**
 * Rows' contributions to groups, as parallel arrays (no object per row; cheap to hand to a worker): the
 * group key, the key's event time, and what the aggregates read.
 */
export interface KeyedRows {
  keys: string[];
  times: Array<number | null>;
  rows: Row[];
}

/** What the end of a batch emits: finished aggregate values per group key. */
export interface StateOutput {
  /** Update mode: the groups this batch changed. */
  updated: Array<[string, unknown[]]>;
  /** Complete mode: every group; append mode: the groups that became final (and were removed). */
  scanned: Array<[string, unknown[]]>;
}

/** Adds a chunk's rows to their groups' buffers. No eviction here: that is the end of the batch's. */
export function updateState(state: OperatorState, aggs: AggregateImpl[], keyed: KeyedRows): void {
  const times = state.keyTimes;
  const { keys, times: keyedTimes, rows } = keyed;
  for (let j = 0; j < keys.length; j++) {
    const key = keys[j]!;
    const row = rows[j]!;
    const store = state.store(key);
    let buffers = store.get(key) as unknown[] | undefined;
    if (!buffers) {
      buffers = aggs.map((a) => a.init());
      times.add(key, keyedTimes[j]!);
    }
    for (let i = 0; i < aggs.length; i++) buffers[i] = aggs[i]!.update(buffers[i], row);
    store.put(key, buffers);
  }
}

/**
 * A chunk aggregated on its own (by a task worker, exec/tasks/worker.ts): per group its key, key values, event
 * time and partial buffers; and what the chunk dropped — its late rows (for the late-events destination) and
 * how many rows had no event time.
 */
export interface PartialAggregate {
  keys: string[];
  keyValues: unknown[][];
  times: Array<number | null>;
  buffers: unknown[][];
  late: Row[];
  noTime: number;
}

/** Merges a chunk's partial buffers into state: the state's rows came before the chunk's (merge(a, b) keeps that order). */
export function mergeState(state: OperatorState, aggs: AggregateImpl[], p: PartialAggregate): void {
  const times = state.keyTimes;
  for (let j = 0; j < p.keys.length; j++) {
    const key = p.keys[j]!;
    const store = state.store(key);
    const partial = p.buffers[j]!;
    let buffers = store.get(key) as unknown[] | undefined;
    if (!buffers) {
      buffers = partial;
      times.add(key, p.times[j]!);
    } else for (let i = 0; i < aggs.length; i++) buffers[i] = aggs[i]!.merge(buffers[i], partial[i]);
    store.put(key, buffers);
  }
}

/**
 * The end of a batch (Spark's StateStoreSaveExec): one lazy pass over the state (it may be on disk) that
 * emits what the output mode wants and removes the groups at or behind `evictionMs`. `changed` are the
 * groups the batch updated (update mode emits them, before eviction, as Spark does). `timeOfKey` gives a
 * stored key's event time; without it nothing is evicted.
 */
export function emitAndEvict(
  state: OperatorState,
  aggs: AggregateImpl[],
  opts: { evictionMs: number; outputMode: OutputMode; timeOfKey?: (key: string) => number | null; changed: Iterable<string> },
): StateOutput {
  const times = state.keyTimes;
  const finish = (buffers: unknown[]): unknown[] => aggs.map((a, i) => a.finish(buffers[i]));
  const out: StateOutput = { updated: [], scanned: [] };
  if (opts.outputMode === 'update') for (const key of opts.changed) out.updated.push([key, finish(state.store(key).get(key) as unknown[])]);
  const expired: Array<[string, number, StateStore]> = [];
  const evict = (key: string, t: number, buffers: unknown[], store: StateStore): void => {
    if (opts.outputMode === 'append') out.scanned.push([key, finish(buffers)]);
    expired.push([key, t, store]);
  };
  if (opts.outputMode !== 'complete' && opts.timeOfKey && times.complete) {
    // Only the keys behind the watermark, from the index: no pass over all state.
    for (const [key, t] of times.through(opts.evictionMs)) {
      const store = state.store(key);
      const buffers = store.get(key) as unknown[] | undefined;
      if (buffers === undefined) times.delete(key, t);
      else evict(key, t, buffers, store);
    }
  } else if (opts.outputMode === 'complete' || opts.timeOfKey) {
    // One lazy pass over the state (it may be on disk), indexing key times as it goes.
    // Complete mode never evicts: it needs no key times.
    const timed = opts.timeOfKey !== undefined && opts.outputMode !== 'complete';
    const indexing = timed && !times.complete;
    for (const [key, buffers, store] of state.entries()) {
      let t: number | null | undefined;
      if (timed) {
        t = times.get(key);
        if (t === undefined) {
          t = opts.timeOfKey!(key);
          if (indexing) times.add(key, t);
        }
      }
      if (opts.outputMode === 'complete') out.scanned.push([key, finish(buffers as unknown[])]);
      else if (t != null && t <= opts.evictionMs) evict(key, t, buffers as unknown[], store);
    }
    if (indexing) times.complete = true;
  }
  for (const [key, t, store] of expired) {
    store.remove(key);
    times.delete(key, t);
  }
  return out;
}
