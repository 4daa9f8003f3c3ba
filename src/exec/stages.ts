/**
 * Runs the stages of an analyzed plan over one batch: per-row steps (with dead letters and I/O retries),
 * the watermark observer, and the stateful operators — aggregation and deduplication — with Spark's
 * output-mode semantics:
 *  - rows whose event time (or window end) is at or below the batch's watermark are late: dropped and
 *    counted (`numRowsDroppedByWatermark`), or handed to `onLate`;
 *  - append: a group is emitted once, when the watermark passes its event time / window end, then removed;
 *  - update: groups changed by this batch are emitted; groups behind the watermark are removed silently;
 *  - complete: every group is emitted, every batch; nothing is removed.
 */
import { decodeState, encodeState } from '../state/codec.js';
import { StateStore, StateStoreProvider, type StateStoreProviderKind } from '../state/store.js';
import { windowsOf } from '../expr/window.js';
import { RecordError } from '../expr/values.js';
import { compareValues } from '../expr/values.js';
import type { AggregateStage, Analyzed, DedupeStage, Stage, StatefulStage } from '../plan/analyzer.js';
import type { AggregateImpl } from '../expr/aggregates.js';
import type { OutputMode } from '../sinks/sink.js';
import type { Row } from '../types/index.js';
import { applyRows } from './rows.js';
import { sessionAggregate } from './sessionWindows.js';
import type { ParallelOperatorState } from './parallel.js';

export interface EventTimeStats {
  min: number;
  max: number;
  sum: number;
  count: number;
}

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

/** The state partition of a key (Spark's hash partitioning by grouping key). */
export function partitionOf(key: string, partitions: number): number {
  let h = 0;
  for (let i = 0; i < key.length; i++) h = (Math.imul(h, 31) + key.charCodeAt(i)) | 0;
  return (h >>> 0) % partitions;
}

/**
 * Each state key's event time (its window end, or its timestamp), indexed so that eviction visits the keys
 * behind the watermark instead of all state. A key's time never changes, so an entry stays right until its
 * key is evicted. `complete` says every key in the state is indexed; until then eviction scans the state
 * (and indexes what it sees), then marks it complete.
 */
export interface KeyTimes {
  complete: boolean;
  /** The indexed time of a key, where the index can answer without I/O (memory); else undefined. */
  get(key: string): number | null | undefined;
  add(key: string, t: number | null): void;
  delete(key: string, t: number | null): void;
  /** The indexed keys whose time is at or before `ms`, with their times. */
  through(ms: number): Array<[string, number]>;
}

/** Memory provider: the index in the heap, next to the state it indexes. */
export class KeyTimeIndex implements KeyTimes {
  private readonly timeOf = new Map<string, number | null>();
  private readonly byTime = new Map<number, Set<string>>();
  complete = true;

  get(key: string): number | null | undefined {
    return this.timeOf.get(key);
  }
  add(key: string, t: number | null): void {
    if (this.timeOf.has(key)) return;
    this.timeOf.set(key, t);
    if (t === null) return;
    let keys = this.byTime.get(t);
    if (!keys) this.byTime.set(t, (keys = new Set()));
    keys.add(key);
  }
  delete(key: string): void {
    const t = this.timeOf.get(key);
    if (t === undefined) return;
    this.timeOf.delete(key);
    if (t === null) return;
    const keys = this.byTime.get(t);
    keys?.delete(key);
    if (keys?.size === 0) this.byTime.delete(t);
  }
  through(ms: number): Array<[string, number]> {
    const out: Array<[string, number]> = [];
    for (const [t, keys] of this.byTime) if (t <= ms) for (const k of keys) out.push([k, t]);
    return out;
  }
  reset(complete: boolean): void {
    this.timeOf.clear();
    this.byTime.clear();
    this.complete = complete;
  }
}

/**
 * LMDB provider: the index on disk, one per partition, written in the same transaction as the state
 * (state/store.ts), so it survives restarts; it is rebuilt, by one scan, only after the state was.
 */
class LmdbKeyTimes implements KeyTimes {
  constructor(private readonly state: OperatorState) {}
  get complete(): boolean {
    return this.state.loadedStores().every((s) => s.timeIndex()?.timesComplete === true);
  }
  set complete(v: boolean) {
    if (v) for (const s of this.state.loadedStores()) s.timeIndex()?.markTimesComplete();
  }
  get(): undefined {
    return undefined;
  }
  add(key: string, t: number | null): void {
    if (t !== null) this.state.store(key).timeIndex()?.timeAdd(t, key);
  }
  delete(key: string, t: number | null): void {
    if (t !== null) this.state.store(key).timeIndex()?.timeDel(t, key);
  }
  through(ms: number): Array<[string, number]> {
    return this.state.loadedStores().flatMap((s) => s.timeIndex()?.keysThrough(ms) ?? []);
  }
}

/**
 * The state stores of one stateful operator: one per shuffle partition, keys spread by hash. `owned`
 * limits it to some partitions (a worker thread's share, exec/parallel.ts); by default it has them all.
 */
export class OperatorState {
  private readonly providers: Array<StateStoreProvider | undefined>;
  readonly owned: number[];
  /** Each key's event time and the keys by time, so that eviction visits the expired keys only. */
  readonly keyTimes: KeyTimes;
  private stores: Array<StateStore | undefined> = [];
  /** Set by an operator whose state rows are not its keys (session windows: sessions per group), for this batch. */
  rowCount: number | undefined;
  constructor(dirOf: (partition: number) => string | undefined, readonly partitions: number, kind: StateStoreProviderKind = 'memory', owned?: number[]) {
    this.owned = owned ?? Array.from({ length: partitions }, (_, p) => p);
    this.providers = Array.from({ length: partitions }, (_, p) => (this.owned.includes(p) ? new StateStoreProvider(dirOf(p), 10, kind) : undefined));
    this.keyTimes = kind === 'memory' ? new KeyTimeIndex() : new LmdbKeyTimes(this);
  }
  close(): void {
    for (const p of this.providers) p?.close();
  }
  load(version: number): void {
    this.stores = this.providers.map((p) => p?.load(version));
    this.rowCount = undefined;
    // State rebuilt from files (a restart, a re-run) may hold keys the heap index has not seen: index them again.
    if (this.keyTimes instanceof KeyTimeIndex && this.stores.some((s) => s?.rebuilt)) this.keyTimes.reset(this.stores.every((s) => !s || s.size === 0));
  }
  store(key: string): StateStore {
    const p = partitionOf(key, this.partitions);
    const s = this.stores[p];
    if (!s) throw new Error(`State partition ${p} is not loaded here (owned: ${this.owned.join(', ')}).`);
    return s;
  }
  /** This batch's stores of the partitions held here. */
  loadedStores(): StateStore[] {
    return this.stores.filter((s): s is StateStore => s !== undefined);
  }
  *entries(): Generator<[string, unknown, StateStore]> {
    for (const s of this.stores) if (s) for (const [k, v] of s.entries()) yield [k, v, s];
  }
  commit(): void {
    for (const s of this.stores) s?.commit();
  }
  metrics(): Omit<StateOperatorProgress, 'operatorName' | 'numRowsDroppedByWatermark'> {
    const ms = this.stores.flatMap((s) => (s ? [s.metrics()] : []));
    const total = (f: (m: (typeof ms)[0]) => number): number => ms.reduce((n, m) => n + f(m), 0);
    return {
      numRowsTotal: this.rowCount ?? total((m) => m.numRowsTotal),
      numRowsUpdated: total((m) => m.numRowsUpdated),
      numRowsRemoved: total((m) => m.numRowsRemoved),
      memoryUsedBytes: total((m) => m.memoryUsedBytes),
      commitTimeMs: total((m) => m.commitTimeMs),
      numShufflePartitions: this.partitions,
      numStateStoreInstances: this.owned.length,
    };
  }
}

export interface LateRow {
  row: Row;
  operator: string;
  watermarkMs: number;
}

export interface BatchContext {
  /** The watermark this batch runs with (computed at the end of the previous batch). */
  watermarkMs: number;
  outputMode: OutputMode;
  /** Stateful operator id → its state, loaded at this batch's version. */
  state: (id: number) => OperatorState;
  /** Aggregations whose state runs in worker threads (exec/parallel.ts), by operator id. */
  parallel?: (id: number) => ParallelOperatorState | undefined;
  onBad: (row: Row, e: RecordError) => void;
  /** Rows dropped as late, for a late-events destination. */
  onLate?: (late: LateRow) => void;
  /** Filled in: event-time statistics per watermark id, and metrics per stateful operator. */
  eventTime: Map<number, EventTimeStats>;
  operators: Map<number, StateOperatorProgress>;
}

/**
 * Runs an analyzed plan over one batch: `inputs[i]` are the rows read from source i (unused for local
 * relations). A union runs each branch on its own rows (its own watermark observer included), then the
 * stages after the union on all of them.
 */
export async function runPlan(plan: Analyzed, inputs: Row[][], ctx: BatchContext): Promise<Row[]> {
  const leaf = plan.leaf;
  let rows: Row[];
  if (leaf.kind === 'source') rows = inputs[leaf.index] ?? [];
  else if (leaf.kind === 'local') rows = leaf.rows;
  else rows = (await Promise.all(leaf.branches.map((b) => runPlan(b, inputs, ctx)))).flat();
  return runStages(rows, plan.stages, ctx);
}

export async function runStages(input: Row[], stages: Stage[], ctx: BatchContext): Promise<Row[]> {
  let rows = input;
  for (const stage of stages) {
    switch (stage.kind) {
      case 'map':
        rows = await applyRows(rows, stage.fn, ctx.onBad);
        break;
      case 'batch':
        rows = stage.fn(rows);
        break;
      case 'watermark': {
        const s = ctx.eventTime.get(stage.id) ?? { min: Infinity, max: -Infinity, sum: 0, count: 0 };
        for (const r of rows) {
          const t = stage.eventTime(r) as Date | null;
          if (t == null) continue;
          const ms = t.getTime();
          if (ms < s.min) s.min = ms;
          if (ms > s.max) s.max = ms;
          s.sum += ms;
          s.count++;
        }
        ctx.eventTime.set(stage.id, s);
        break;
      }
      case 'aggregate': {
        const parallel = ctx.parallel?.(stage.id);
        rows = parallel ? await parallel.aggregate(rows, ctx) : aggregate(stage, rows, ctx);
        break;
      }
      case 'dedupe':
        rows = dedupe(stage, rows, ctx);
        break;
    }
  }
  return rows;
}

export function operatorName(s: StatefulStage): string {
  if (s.kind === 'aggregate' && s.sessionKey) return 'sessionWindowStateStoreSaveExec'; // Spark's short names
  return s.kind === 'aggregate' ? 'stateStoreSave' : s.withinWatermark ? 'dedupeWithinWatermark' : 'dedupe';
}

/** The event time of a group's key values: the watermarked key part (a timestamp, or a window's end). */
export function keyTime(eventTimeKey: AggregateStage['eventTimeKey'], keyValues: unknown[]): number | undefined {
  if (!eventTimeKey) return undefined;
  const v = keyValues[eventTimeKey.index];
  if (v == null) return undefined;
  return eventTimeKey.isWindow ? (v as { end: Date }).end.getTime() : (v as Date).getTime();
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

/** The row side of an aggregation: what each row contributes to which group (late rows dropped here). */
export interface RoutedRows {
  keyed: KeyedRows;
  /** Update mode: the groups the batch changed, with their key values (emitted without decoding keys). */
  updated: Map<string, unknown[]>;
  dropped: number;
  nullTimes: number;
}

export function routeRows(stage: AggregateStage, rows: Row[], ctx: BatchContext): RoutedRows {
  const W = ctx.watermarkMs;
  const routed: RoutedRows = { keyed: { keys: [], times: [], rows: [] }, updated: new Map(), dropped: 0, nullTimes: 0 };
  for (const row of rows) {
    // A row's key combinations: several when a sliding window puts it in several windows.
    let combos: unknown[][] = [[]];
    for (const part of stage.keys) {
      if ('window' in part) {
        const t = part.window.time(row) as Date | null;
        if (t == null) {
          combos = []; // no event time, no window: left out, as Spark's TimeWindowing filters it
          break;
        }
        const ws = windowsOf(t.getTime(), part.window.spec);
        if (ws.length === 1) for (const c of combos) c.push(ws[0]);
        else combos = combos.flatMap((c) => ws.map((w) => [...c, w]));
      } else if ('eval' in part) {
        const v = part.eval(row);
        for (const c of combos) c.push(v);
      }
    }
    if (!combos.length) routed.nullTimes++;
    for (const keyValues of combos) {
      const t = keyTime(stage.eventTimeKey, keyValues);
      // Complete mode keeps every group forever, so the watermark drops nothing there (as in Spark).
      if (t !== undefined && t <= W && ctx.outputMode !== 'complete') {
        routed.dropped++;
        ctx.onLate?.({ row, operator: `${operatorName(stage)} ${stage.id}`, watermarkMs: W });
        continue;
      }
      const key = encodeState(keyValues);
      routed.keyed.keys.push(key);
      routed.keyed.times.push(t ?? null);
      routed.keyed.rows.push(row);
      if (ctx.outputMode === 'update' && !routed.updated.has(key)) routed.updated.set(key, keyValues);
    }
  }
  return routed;
}

/** What the state side of an aggregation emits: finished aggregate values per group key. */
export interface StateOutput {
  /** Update mode: the groups this batch changed. */
  updated: Array<[string, unknown[]]>;
  /** Complete mode: every group; append mode: the groups that became final (and were removed). */
  scanned: Array<[string, unknown[]]>;
}

/**
 * The state side of an aggregation (Spark's StateStoreSaveExec), in the query's thread or in a worker:
 * update each group's buffers, then one lazy pass over the state (it may be on disk) that emits what the
 * output mode wants and removes groups behind the watermark. `timeOfKey` gives a stored key's event time.
 */
export function applyToState(
  state: OperatorState,
  aggs: AggregateImpl[],
  keyed: KeyedRows,
  opts: {
    watermarkMs: number;
    outputMode: OutputMode;
    timeOfKey?: (key: string) => number | null;
    /** The distinct keys of `keyed`, when the caller has them already (update mode emits them). */
    changed?: Iterable<string>;
  },
): StateOutput {
  const times = state.keyTimes;
  const changed = opts.changed ?? (opts.outputMode === 'update' ? new Set(keyed.keys) : []);
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
  const finish = (buffers: unknown[]): unknown[] => aggs.map((a, i) => a.finish(buffers[i]));
  const out: StateOutput = { updated: [], scanned: [] };
  if (opts.outputMode === 'update') for (const key of changed) out.updated.push([key, finish(state.store(key).get(key) as unknown[])]);
  const expired: Array<[string, number, StateStore]> = [];
  const evict = (key: string, t: number, buffers: unknown[], store: StateStore): void => {
    if (opts.outputMode === 'append') out.scanned.push([key, finish(buffers)]);
    expired.push([key, t, store]);
  };
  if (opts.outputMode !== 'complete' && opts.timeOfKey && times.complete) {
    // Only the keys behind the watermark, from the index: no pass over all state.
    for (const [key, t] of times.through(opts.watermarkMs)) {
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
      else if (t != null && t <= opts.watermarkMs) evict(key, t, buffers as unknown[], store);
    }
    if (indexing) times.complete = true;
  }
  for (const [key, t, store] of expired) {
    store.remove(key);
    times.delete(key, t);
  }
  return out;
}

/** The output rows of an aggregation: key columns, then aggregate columns, ordered by key. */
export function aggregateRows(stage: AggregateStage, routed: RoutedRows, out: StateOutput): Row[] {
  const rows: Array<[unknown[], Row]> = [];
  const emit = (keyValues: unknown[], values: unknown[]): void => {
    const r: Row = {};
    stage.keys.forEach((k, i) => (r[k.name] = keyValues[i]));
    stage.aggs.forEach((a, i) => (r[a.name] = values[i]));
    rows.push([keyValues, r]);
  };
  for (const [key, values] of out.updated) emit(routed.updated.get(key)!, values);
  for (const [key, values] of out.scanned) emit(decodeState(key) as unknown[], values);
  return sortByKeyValues(rows);
}

/** The progress of an aggregation operator. */
export function aggregateProgress(
  stage: AggregateStage,
  routed: RoutedRows,
  metrics: Omit<StateOperatorProgress, 'operatorName' | 'numRowsDroppedByWatermark'>,
): StateOperatorProgress {
  return {
    operatorName: operatorName(stage),
    ...metrics,
    numRowsDroppedByWatermark: routed.dropped,
    ...(stage.keys.some((k) => 'window' in k) ? { customMetrics: { numRowsWithNullEventTime: routed.nullTimes } } : {}),
  };
}

function aggregate(stage: AggregateStage, rows: Row[], ctx: BatchContext): Row[] {
  if (stage.sessionKey) return sessionAggregate(stage, rows, ctx);
  const state = ctx.state(stage.id);
  const routed = routeRows(stage, rows, ctx);
  const timeOfKey = timeOfKeyFn(stage.eventTimeKey);
  const out = applyToState(state, stage.aggs, routed.keyed, {
    watermarkMs: ctx.watermarkMs,
    outputMode: ctx.outputMode,
    ...(timeOfKey ? { timeOfKey } : {}),
    changed: routed.updated.keys(),
  });
  ctx.operators.set(stage.id, aggregateProgress(stage, routed, state.metrics()));
  return aggregateRows(stage, routed, out);
}

/** Groups come out ordered by their key values (a window or session by its start), so outputs read and compare easily. */
export function sortByKeyValues(decoded: Array<[unknown[], Row]>): Row[] {
  // Sort keys computed once per row: instants as numbers, a window as its start; the comparator then
  // compares numbers and strings directly (it runs n·log n times).
  const sortable = decoded.map(([kv, row]) => ({ k: kv.map(sortKey), row }));
  sortable.sort((a, b) => {
    for (let i = 0; i < a.k.length; i++) {
      const x = a.k[i];
      const y = b.k[i];
      if (x === y) continue;
      if (x == null || y == null) return x == null ? -1 : 1;
      const c = typeof x === typeof y && typeof x !== 'object' ? (x < y ? -1 : x > y ? 1 : 0) : compareValues(x, y);
      if (c !== 0) return c;
    }
    return 0;
  });
  return sortable.map((x) => x.row);
}

function sortKey(v: unknown): unknown {
  if (v instanceof Date) return v.getTime();
  if (v !== null && typeof v === 'object' && (v as { start?: unknown }).start instanceof Date) return (v as { start: Date }).start.getTime();
  return v;
}

function dedupe(stage: DedupeStage, rows: Row[], ctx: BatchContext): Row[] {
  const state = ctx.state(stage.id);
  const W = ctx.watermarkMs;
  let dropped = 0;
  const out: Row[] = [];
  for (const row of rows) {
    const t = stage.eventTime ? ((stage.eventTime.eval(row) as Date | null)?.getTime() ?? undefined) : undefined;
    if (t !== undefined && t <= W) {
      dropped++;
      ctx.onLate?.({ row, operator: `${operatorName(stage)} ${stage.id}`, watermarkMs: W });
      continue;
    }
    const key = stage.key(row);
    const store = state.store(key);
    if (store.has(key)) continue;
    // State value: when the key may be forgotten (event time, or event time + delay within the watermark).
    store.put(key, t === undefined ? null : stage.withinWatermark ? t + stage.eventTime!.delayMs : t);
    out.push(row);
  }
  if (stage.eventTime && ctx.outputMode !== 'complete') {
    const expired: Array<[string, StateStore]> = [];
    for (const [key, expiresAt, store] of state.entries()) if (expiresAt != null && (expiresAt as number) <= W) expired.push([key, store]);
    for (const [key, store] of expired) store.remove(key);
  }
  ctx.operators.set(stage.id, { operatorName: operatorName(stage), ...state.metrics(), numRowsDroppedByWatermark: dropped });
  return out;
}
