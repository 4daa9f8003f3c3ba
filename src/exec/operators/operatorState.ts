/**
 * The state of one stateful operator: one versioned store per shuffle partition (keys spread by hash), and
 * an index of keys by event time so that eviction visits only the keys behind the watermark.
 */
import { StateStore, StateStoreProvider, type StateStoreMetrics, type StateStoreProviderKind } from '../../state/store.js';

/** Where and how an operator's state is kept: one folder per partition, the provider, how many versions to keep. */
export interface StateLayout {
  /** The folder of a partition's files; undefined: in memory only (batch DataFrames). */
  dirOf(partition: number): string | undefined;
  partitions: number;
  kind: StateStoreProviderKind;
  /** `sluice.sql.streaming.minBatchesToRetain`: state versions kept for recovery (default 100). */
  minBatchesToRetain?: number;
}

/** A store's metrics summed over an operator's partitions, with the partition counts Spark reports. */
export type OperatorStateMetrics = StateStoreMetrics & { numShufflePartitions: number; numStateStoreInstances: number };

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
  /** The earliest indexed time (of the committed state, for LMDB), or undefined when nothing is indexed. */
  earliest(): number | undefined;
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
  earliest(): number | undefined {
    let min: number | undefined;
    for (const t of this.byTime.keys()) if (min === undefined || t < min) min = t;
    return min;
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
  earliest(): number | undefined {
    const firsts = this.state.loadedStores().flatMap((s) => s.timeIndex()?.firstTime() ?? []);
    return firsts.length ? Math.min(...firsts) : undefined;
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
  readonly partitions: number;
  constructor(layout: StateLayout, owned?: number[]) {
    const { partitions, kind } = layout;
    this.partitions = partitions;
    this.owned = owned ?? Array.from({ length: partitions }, (_, p) => p);
    this.providers = Array.from({ length: partitions }, (_, p) => (this.owned.includes(p) ? new StateStoreProvider(layout.dirOf(p), 10, kind, layout.minBatchesToRetain) : undefined));
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
  /**
   * The earliest event time (window end, or timestamp) of a key in this state, when the index knows every
   * key (after a restart it knows them from the first eviction on); else undefined.
   */
  oldestKeyTime(): number | undefined {
    return this.keyTimes.complete ? this.keyTimes.earliest() : undefined;
  }
  metrics(): OperatorStateMetrics {
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

