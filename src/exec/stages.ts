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
import type { OutputMode } from '../sinks/sink.js';
import type { Row } from '../types/index.js';
import { applyRows } from './rows.js';
import { sessionAggregate } from './sessionWindows.js';

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

/** The state stores of one stateful operator: one per shuffle partition, keys spread by hash. */
export class OperatorState {
  private readonly providers: StateStoreProvider[];
  /**
   * Memory provider only: each key's event time (window end), derived from the key once instead of at every
   * batch's eviction scan. A key's time never changes, so entries stay valid; evicted keys are deleted. The
   * LMDB provider has none: it keeps keys out of the heap.
   */
  readonly keyTimes: Map<string, number | null> | undefined;
  private stores: StateStore[] = [];
  constructor(dirOf: (partition: number) => string | undefined, readonly partitions: number, kind: StateStoreProviderKind = 'memory') {
    this.providers = Array.from({ length: partitions }, (_, p) => new StateStoreProvider(dirOf(p), 10, kind));
    this.keyTimes = kind === 'memory' ? new Map() : undefined;
  }
  close(): void {
    for (const p of this.providers) p.close();
  }
  load(version: number): void {
    this.stores = this.providers.map((p) => p.load(version));
  }
  store(key: string): StateStore {
    let h = 0;
    for (let i = 0; i < key.length; i++) h = (Math.imul(h, 31) + key.charCodeAt(i)) | 0;
    return this.stores[(h >>> 0) % this.partitions]!;
  }
  *entries(): Generator<[string, unknown, StateStore]> {
    for (const s of this.stores) for (const [k, v] of s.entries()) yield [k, v, s];
  }
  commit(): void {
    for (const s of this.stores) s.commit();
  }
  metrics(): Omit<StateOperatorProgress, 'operatorName' | 'numRowsDroppedByWatermark'> {
    const ms = this.stores.map((s) => s.metrics());
    const total = (f: (m: (typeof ms)[0]) => number): number => ms.reduce((n, m) => n + f(m), 0);
    return {
      numRowsTotal: total((m) => m.numRowsTotal),
      numRowsUpdated: total((m) => m.numRowsUpdated),
      numRowsRemoved: total((m) => m.numRowsRemoved),
      memoryUsedBytes: total((m) => m.memoryUsedBytes),
      commitTimeMs: total((m) => m.commitTimeMs),
      numShufflePartitions: this.partitions,
      numStateStoreInstances: this.partitions,
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
      case 'aggregate':
        rows = aggregate(stage, rows, ctx);
        break;
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

function keyTime(stage: AggregateStage, keyValues: unknown[]): number | undefined {
  const k = stage.eventTimeKey;
  if (!k) return undefined;
  const v = keyValues[k.index];
  if (v == null) return undefined;
  return k.isWindow ? (v as { end: Date }).end.getTime() : (v as Date).getTime();
}

function aggregate(stage: AggregateStage, rows: Row[], ctx: BatchContext): Row[] {
  if (stage.sessionKey) return sessionAggregate(stage, rows, ctx);
  const state = ctx.state(stage.id);
  const W = ctx.watermarkMs;
  let dropped = 0;
  // Groups this batch changed, with their key values (so update mode need not decode its keys).
  const updated = new Map<string, unknown[]>();
  let nullTimes = 0;
  const windowed = stage.keys.some((k) => 'window' in k);
  const n = stage.keys.length;
  const times = state.keyTimes;
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
    if (!combos.length) nullTimes++;
    for (const keyValues of combos) {
      const t = keyTime(stage, keyValues);
      // Complete mode keeps every group forever, so the watermark drops nothing there (as in Spark).
      if (t !== undefined && t <= W && ctx.outputMode !== 'complete') {
        dropped++;
        ctx.onLate?.({ row, operator: `${operatorName(stage)} ${stage.id}`, watermarkMs: W });
        continue;
      }
      const key = encodeState(keyValues);
      const store = state.store(key);
      let buffers = store.get(key) as unknown[] | undefined;
      if (!buffers) {
        buffers = stage.aggs.map((a) => a.init());
        times?.set(key, t ?? null);
      }
      for (let i = 0; i < stage.aggs.length; i++) buffers[i] = stage.aggs[i]!.update(buffers[i], row);
      store.put(key, buffers);
      if (!updated.has(key)) updated.set(key, keyValues);
    }
  }
  const emit = (keyValues: unknown[], buffers: unknown[]): [unknown[], Row] => {
    const out: Row = {};
    for (let i = 0; i < n; i++) out[stage.keys[i]!.name] = keyValues[i];
    stage.aggs.forEach((a, i) => (out[a.name] = a.finish(buffers[i])));
    return [keyValues, out];
  };
  const out: Array<[unknown[], Row]> = [];
  if (ctx.outputMode === 'update') {
    for (const [key, keyValues] of updated) out.push(emit(keyValues, state.store(key).get(key) as unknown[]));
  }
  // One lazy pass over the state (it may be on disk): emit what the mode wants, note what has expired.
  const expired: Array<[string, StateStore]> = [];
  if (ctx.outputMode === 'complete' || stage.eventTimeKey) {
    for (const [key, buffers, store] of state.entries()) {
      let t: number | null | undefined;
      if (stage.eventTimeKey) {
        // A key's event time never changes: decode it once per key (memory provider), not once per batch.
        t = times?.get(key);
        if (t === undefined) {
          t = keyTime(stage, decodeState(key) as unknown[]) ?? null;
          times?.set(key, t);
        }
      }
      const isExpired = t != null && t <= W;
      if (ctx.outputMode === 'complete') out.push(emit(decodeState(key) as unknown[], buffers as unknown[]));
      else if (isExpired) {
        if (ctx.outputMode === 'append') out.push(emit(decodeState(key) as unknown[], buffers as unknown[]));
        expired.push([key, store]);
      }
    }
  }
  for (const [key, store] of expired) {
    store.remove(key);
    times?.delete(key);
  }
  ctx.operators.set(stage.id, {
    operatorName: operatorName(stage),
    ...state.metrics(),
    numRowsDroppedByWatermark: dropped,
    ...(windowed ? { customMetrics: { numRowsWithNullEventTime: nullTimes } } : {}),
  });
  return sortByKeyValues(out);
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
