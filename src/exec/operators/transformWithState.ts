/**
 * transformWithState (Spark 4.0's TransformWithStateExec): a StatefulProcessor with several named state
 * variables per key — ValueState, ListState, MapState, each with an optional TTL — and timers.
 *
 * A batch, as in Spark: the processor's `handleInputRows(key, rows, timerValues)` runs once per key with
 * new rows, in key order; then `handleExpiredTimer` once per timer strictly before the threshold (the batch's
 * processing time, or the watermark for eviction with TimeMode.EventTime), in time order, the timer deleted
 * before the call; then values whose TTL has passed are removed. State variables act on the key of the
 * call in progress (Spark's implicit grouping key), so they are created once, in `init`.
 *
 * Layout: the variables in the operator's store (`state/<id>/<p>/`), one record per key and variable —
 * a value, a list or a map, each entry with its expiry when the variable has a TTL — and the timers per key
 * in `state/<id>/<p>/timers/`, so that firing timers scans the timers, not all state.
 */
import type { GroupStateStage } from '../../plan/analyzer.js';
import type { TimeModeKind, TransformWithStateSpec } from '../../plan/groupState.js';
import type { StateSchema } from '../../state/schema.js';
import { decodeState, encodeState } from '../../state/codec.js';
import { DataType, Row, StructType, parseDataType } from '../../types/index.js';
import { eventTimeMs } from '../../types/timestamp.js';
import { parseDuration } from '../../util/duration.js';
import { join } from 'node:path';
import { RowsByKey, appendOutputRows, copyState, stateValueChecker } from './groupState.js';
import { OperatorState, type StateLayout } from './operatorState.js';
import type { OperatorBatch, StateOperatorProgress, StatefulOperator } from './statefulOperator.js';

/** The time of the call in progress (Spark's TimerValues). */
export interface TimerValues {
  getCurrentProcessingTimeInMs(): number;
  /** The watermark for eviction; -1 without a watermark (Spark's value when there is none). */
  getCurrentWatermarkInMs(): number;
}

/** The timer that fired (Spark's ExpiredTimerInfo). */
export interface ExpiredTimerInfo {
  getExpiryTimeInMs(): number;
}

/** Options of a state variable: its value type (DDL, e.g. 'count LONG' or 'bigint'), and a TTL. */
export interface StateVariableOptions {
  /** The value type; without it values must be plain data (checked at write). */
  type?: string | DataType;
  /** Time to live, in processing time from the value's last write (Spark's TTLConfig(ttlDuration)). */
  ttl?: string | number | { ttlDuration: string | number };
}

/** One value per key (Spark's ValueState). */
export interface ValueState<T> {
  exists(): boolean;
  /** The value, or undefined when there is none (Spark returns null). */
  get(): T | undefined;
  update(value: T): void;
  clear(): void;
}

/** A list per key (Spark's ListState). */
export interface ListState<T> {
  exists(): boolean;
  get(): T[];
  put(values: T[]): void;
  appendValue(value: T): void;
  appendList(values: T[]): void;
  clear(): void;
}

/** A map per key (Spark's MapState). */
export interface MapState<K, V> {
  exists(): boolean;
  getValue(key: K): V | undefined;
  containsKey(key: K): boolean;
  updateValue(key: K, value: V): void;
  iterator(): Array<[K, V]>;
  keys(): K[];
  values(): V[];
  removeKey(key: K): void;
  clear(): void;
}

/** What `init` receives: creates state variables, and (inside a call) registers timers for the current key. */
export interface StatefulProcessorHandle {
  getValueState<T = unknown>(name: string, options?: StateVariableOptions): ValueState<T>;
  getListState<T = unknown>(name: string, options?: StateVariableOptions): ListState<T>;
  getMapState<K = unknown, V = unknown>(name: string, options?: StateVariableOptions): MapState<K, V>;
  /** A timer for the current key at this time (processing time or event time, by the query's TimeMode). */
  registerTimer(expiryTimestampMs: number | Date): void;
  deleteTimer(expiryTimestampMs: number | Date): void;
  listTimers(): number[];
  /** Removes a state variable's data for the current key. */
  deleteIfExists(name: string): void;
}

/**
 * Spark 4.0's StatefulProcessor. `init(handle)` runs once when the query starts (create the state
 * variables there); `handleInputRows` per key with new rows; `handleExpiredTimer` per fired timer; `close`
 * when the query stops. The two handlers return the output rows (any iterable), or a promise of them.
 */
export interface StatefulProcessor<K = unknown, R extends Row = Row> {
  init(handle: StatefulProcessorHandle, outputMode: 'append' | 'update', timeMode: TimeModeKind): void;
  handleInputRows(key: K, rows: Row[], timerValues: TimerValues): Iterable<R> | Promise<Iterable<R>>;
  handleExpiredTimer?(key: K, timerValues: TimerValues, expiredTimerInfo: ExpiredTimerInfo): Iterable<R> | Promise<Iterable<R>>;
  close?(): void;
}

type Kind = 'value' | 'list' | 'map';
interface Variable {
  name: string;
  kind: Kind;
  type?: DataType;
  ttlMs?: number;
  check: (v: unknown) => void;
}
/** An entry of a value, list or map, with its expiry when the variable has a TTL. */
interface Entry {
  v: unknown;
  e?: number;
}

const SEP = '\u0000';
const recordKey = (name: string, keyText: string): string => `${name}${SEP}${keyText}`;

function ttlOf(o: StateVariableOptions['ttl'], name: string): number | undefined {
  if (o === undefined) return undefined;
  const d = typeof o === 'object' ? o.ttlDuration : o;
  const ms = typeof d === 'number' ? d : parseDuration(d, `the TTL of state variable "${name}"`);
  if (!(Number.isFinite(ms) && ms > 0)) throw new Error(`The TTL of state variable "${name}" must be a positive duration, got ${String(d)}.`);
  return ms;
}

export class TransformWithStateOperator implements StatefulOperator {
  readonly id: number;
  readonly name = 'transformWithStateExec';
  readonly partitions: number;
  private readonly state: OperatorState;
  private readonly timers: OperatorState;
  private readonly spec: TransformWithStateSpec;
  private readonly vars = new Map<string, Variable>();
  /** Variables deleteIfExists() retires: their records are removed at the first batch (state is loaded then). */
  private readonly retired = new Set<string>();
  private batch: OperatorBatch | undefined;
  private groups: RowsByKey | undefined;
  /** The key of the call in progress: what the state variables and timers act on. */
  private current: string | undefined;
  private phase: 'init' | 'idle' | 'call' = 'init';
  private now = 0;
  private watermark = -1;
  private metrics = { registered: 0, deleted: 0, expired: 0, ttlRemoved: 0 };
  /** The earliest timer after the last batch; unknown (-Infinity) until a batch has looked, e.g. after a restart. */
  private nextTimerMs = -Infinity;

  constructor(
    private readonly stage: GroupStateStage,
    layout: StateLayout,
  ) {
    this.id = stage.id;
    this.spec = stage.spec as TransformWithStateSpec;
    this.partitions = layout.partitions;
    this.state = new OperatorState(layout);
    this.timers = new OperatorState({ ...layout, dirOf: (p) => (layout.dirOf(p) ? join(layout.dirOf(p)!, 'timers') : undefined) });
    // State variables are declared now, so that the state schema (checked before the first batch) lists them.
    this.spec.processor.init(this.handle(), this.spec.operatorMode, this.spec.timeMode);
    this.phase = 'idle';
  }

  describe(): string {
    return `${this.partitions} partitions in the query's thread, TimeMode.${this.spec.timeMode}`;
  }

  stateSchema(): StateSchema {
    return {
      operator: 'transformWithState',
      // Variables are matched by name: one added or retired (deleteIfExists) is allowed, a changed one is not.
      valuesByName: true,
      keySchema: this.stage.keySchema,
      valueSchema: [...this.vars.values()].map((v) => ({
        name: v.name,
        type: `${v.kind}<${v.type ? v.type.simpleString() : 'plain data'}>${v.ttlMs !== undefined ? ' with TTL' : ''}`,
      })),
    };
  }

  // ------------------------------------------------------------------ the handle and the state variables

  private handle(): StatefulProcessorHandle {
    return {
      getValueState: <T>(name: string, o: StateVariableOptions = {}) => this.valueState<T>(this.declare(name, 'value', o)),
      getListState: <T>(name: string, o: StateVariableOptions = {}) => this.listState<T>(this.declare(name, 'list', o)),
      getMapState: <K, V>(name: string, o: StateVariableOptions = {}) => this.mapState<K, V>(this.declare(name, 'map', o)),
      registerTimer: (t) => this.timerOp('registerTimer', t, true),
      deleteTimer: (t) => this.timerOp('deleteTimer', t, false),
      listTimers: () => [...this.timerList(this.keyNow('listTimers'))],
      deleteIfExists: (name) => {
        // Spark 4.0: in init only, and for every key — it retires a variable the processor no longer declares.
        if (this.phase !== 'init') {
          throw new Error(`deleteIfExists("${name}") can only be called in init(): it removes the variable's state for every key, before any batch runs.`);
        }
        this.retired.add(name);
      },
    };
  }

  private declare(name: string, kind: Kind, o: StateVariableOptions): Variable {
    if (this.phase !== 'init') {
      throw new Error(
        `Cannot create state variable "${name}" outside init() (Spark 4.0: STATEFUL_PROCESSOR_CANNOT_PERFORM_OPERATION_WITH_INVALID_HANDLE_STATE). ` +
          'Create every state variable in init(handle) and keep it in a field of the processor.',
      );
    }
    if (!name || name.includes(SEP)) throw new Error(`A state variable needs a name without NUL characters, got "${name}".`);
    if (this.vars.has(name)) throw new Error(`State variable "${name}" is declared twice in init(): each name holds one variable.`);
    const type = o.type === undefined ? undefined : typeof o.type === 'string' ? parseDataType(o.type) : o.type;
    const ttlMs = ttlOf(o.ttl, name);
    if (ttlMs !== undefined && this.spec.timeMode !== 'ProcessingTime') {
      throw new Error(
        `Cannot provide TTL config for timeMode=${this.spec.timeMode} (state variable "${name}"; Spark 4.0's rule): a TTL counts processing time. ` +
          'Pass TimeMode.ProcessingTime to transformWithState, or drop the ttl option.',
      );
    }
    const check = type instanceof StructType ? stateValueChecker(type) : type ? stateValueChecker(new StructType().add('value', type)) : stateValueChecker(undefined);
    const v: Variable = { name, kind, ...(type ? { type } : {}), ...(ttlMs !== undefined ? { ttlMs } : {}), check: type && !(type instanceof StructType) ? (x) => check({ value: x }) : check };
    this.vars.set(name, v);
    return v;
  }

  /** The key of the call in progress; state variables and timers exist only for it. */
  private keyNow(op: string): string {
    if (this.phase !== 'call' || this.current === undefined) {
      throw new Error(`${op} can only be used inside handleInputRows or handleExpiredTimer: state variables and timers act on the key of the call in progress.`);
    }
    return this.current;
  }

  private read(v: Variable): unknown {
    const k = this.keyNow(v.name);
    return this.state.store(k).get(recordKey(v.name, k));
  }
  private write(v: Variable, record: unknown | undefined): void {
    const k = this.keyNow(v.name);
    const store = this.state.store(k);
    const rk = recordKey(v.name, k);
    if (record === undefined) {
      if (store.has(rk)) store.remove(rk);
    } else store.put(rk, record);
  }
  private live = (e: Entry): boolean => e.e === undefined || e.e > this.now;
  private entry(v: Variable, value: unknown): Entry {
    if (value === null || value === undefined) throw new Error(`State variable "${v.name}": ${String(value)} is not a valid value; use clear() to remove it.`);
    v.check(value);
    return { v: copyState(value), ...(v.ttlMs !== undefined ? { e: this.now + v.ttlMs } : {}) };
  }

  private valueState<T>(v: Variable): ValueState<T> {
    const get = (): T | undefined => {
      const e = this.read(v) as Entry | undefined;
      return e && this.live(e) ? (copyState(e.v) as T) : undefined;
    };
    return {
      exists: () => get() !== undefined,
      get,
      update: (value) => this.write(v, this.entry(v, value)),
      clear: () => this.write(v, undefined),
    };
  }

  private listState<T>(v: Variable): ListState<T> {
    const entries = (): Entry[] => ((this.read(v) as Entry[] | undefined) ?? []).filter(this.live);
    const set = (es: Entry[]): void => this.write(v, es.length ? es : undefined);
    return {
      exists: () => entries().length > 0,
      get: () => entries().map((e) => copyState(e.v) as T),
      put: (values) => set(values.map((x) => this.entry(v, x))),
      appendValue: (value) => set([...entries(), this.entry(v, value)]),
      appendList: (values) => set([...entries(), ...values.map((x) => this.entry(v, x))]),
      clear: () => set([]),
    };
  }

  private mapState<K, V>(v: Variable): MapState<K, V> {
    type MapEntry = [string, Entry];
    const entries = (): MapEntry[] => ((this.read(v) as MapEntry[] | undefined) ?? []).filter(([, e]) => this.live(e));
    const set = (es: MapEntry[]): void => this.write(v, es.length ? es : undefined);
    const find = (key: K): Entry | undefined => entries().find(([k]) => k === encodeState(key))?.[1];
    return {
      exists: () => entries().length > 0,
      getValue: (key) => {
        const e = find(key);
        return e ? (copyState(e.v) as V) : undefined;
      },
      containsKey: (key) => find(key) !== undefined,
      updateValue: (key, value) => {
        if (key === null || key === undefined) throw new Error(`State variable "${v.name}": a map key cannot be ${String(key)}.`);
        const text = encodeState(key);
        set([...entries().filter(([k]) => k !== text), [text, this.entry(v, value)]]);
      },
      iterator: () => entries().map(([k, e]) => [decodeState(k) as K, copyState(e.v) as V]),
      keys: () => entries().map(([k]) => decodeState(k) as K),
      values: () => entries().map(([, e]) => copyState(e.v) as V),
      removeKey: (key) => set(entries().filter(([k]) => k !== encodeState(key))),
      clear: () => set([]),
    };
  }

  // ------------------------------------------------------------------ timers

  private timerList(keyText: string): number[] {
    return (this.timers.store(keyText).get(keyText) as number[] | undefined) ?? [];
  }
  private setTimers(keyText: string, times: number[]): void {
    const store = this.timers.store(keyText);
    if (times.length) store.put(keyText, times);
    else if (store.has(keyText)) store.remove(keyText);
  }
  private timerOp(op: string, t: number | Date, add: boolean): void {
    const k = this.keyNow(op);
    if (this.spec.timeMode === 'None') {
      throw new Error(
        `Failed to perform stateful processor operation=${op} with invalid timeMode=None (Spark 4.0's rule): timers need a clock. ` +
          "Pass TimeMode.ProcessingTime or TimeMode.EventTime (with withWatermark before groupByKey) to transformWithState.",
      );
    }
    const ms = typeof t === 'number' ? t : eventTimeMs(t);
    if (!Number.isFinite(ms)) throw new Error(`${op}: ${String(t)} is not a time in ms.`);
    const times = this.timerList(k).filter((x) => x !== ms);
    if (add) {
      times.push(ms);
      times.sort((a, b) => a - b);
      this.metrics.registered++;
    } else this.metrics.deleted++;
    this.setTimers(k, times);
  }

  // ------------------------------------------------------------------ the batch

  async begin(batch: OperatorBatch): Promise<void> {
    this.batch = batch;
    this.metrics = { registered: 0, deleted: 0, expired: 0, ttlRemoved: 0 };
    this.groups = new RowsByKey(this.stage, batch, `transformWithState ${this.id}`);
    this.state.load(batch.batchId);
    this.timers.load(batch.batchId);
    this.now = batch.batchTimestampMs ?? Date.now();
    this.watermark = this.stage.watermarkPresent ? batch.evictionMs : -1;
    if (this.retired.size) {
      const gone: Array<[string, ReturnType<OperatorState['store']>]> = [];
      for (const [rk, , store] of this.state.entries()) if (this.retired.has(rk.slice(0, rk.indexOf(SEP))) && !this.vars.has(rk.slice(0, rk.indexOf(SEP)))) gone.push([rk, store]);
      for (const [rk, store] of gone) store.remove(rk);
      this.retired.clear();
    }
  }

  async process(rows: Row[]): Promise<Row[]> {
    this.groups!.add(rows);
    return [];
  }

  private async call(keyText: string, run: () => Iterable<Row> | Promise<Iterable<Row>> | undefined, out: Row[]): Promise<void> {
    this.current = keyText;
    this.phase = 'call';
    try {
      appendOutputRows(await run(), this.spec.outputSchema, 'A StatefulProcessor handler', out);
    } finally {
      this.phase = 'idle';
      this.current = undefined;
    }
  }

  async finish(): Promise<Row[]> {
    const b = this.batch!;
    const out: Row[] = [];
    const timerValues: TimerValues = { getCurrentProcessingTimeInMs: () => this.now, getCurrentWatermarkInMs: () => this.watermark };
    const p = this.spec.processor;
    for (const g of this.groups!.take()) await this.call(g.text, () => p.handleInputRows(g.key, g.rows, timerValues), out);
    // Timers at or before the threshold, earliest first; each is deleted before its handler runs.
    this.nextTimerMs = Infinity;
    if (this.spec.timeMode !== 'None') {
      const threshold = this.spec.timeMode === 'ProcessingTime' ? this.now : b.evictionMs;
      const due: Array<[number, string]> = [];
      for (const [text, times] of this.timers.entries()) {
        for (const t of times as number[]) {
          if (t < threshold) due.push([t, text]); // Spark: timers strictly before the threshold
          else if (t < this.nextTimerMs) this.nextTimerMs = t;
        }
      }
      due.sort((x, y) => x[0] - y[0] || (x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0));
      for (const [t, text] of due) {
        this.metrics.expired++;
        // Spark deletes the timer after its handler (listTimers() there still shows it; registering the same
        // time again inside it does not keep it).
        if (p.handleExpiredTimer) await this.call(text, () => p.handleExpiredTimer!(this.stage.keyOf(text), timerValues, { getExpiryTimeInMs: () => t }), out);
        this.setTimers(text, this.timerList(text).filter((x) => x !== t));
        for (const x of this.timerList(text)) if (x >= threshold && x < this.nextTimerMs) this.nextTimerMs = x;
      }
    }
    this.removeExpired();
    return out;
  }

  /** TTL: values whose time has passed are removed (they already read as absent). */
  private removeExpired(): void {
    const ttlVars = new Set([...this.vars.values()].filter((v) => v.ttlMs !== undefined).map((v) => v.name));
    if (!ttlVars.size) return;
    const changes: Array<[string, string, unknown | undefined]> = [];
    for (const [rk, rec] of this.state.entries()) {
      const name = rk.slice(0, rk.indexOf(SEP));
      const v = this.vars.get(name);
      if (!v || v.ttlMs === undefined) continue;
      const keyText = rk.slice(name.length + 1);
      if (v.kind === 'value') {
        if (this.live(rec as Entry)) continue;
        changes.push([keyText, rk, undefined]);
        this.metrics.ttlRemoved++;
        continue;
      }
      const es = rec as Array<Entry | [string, Entry]>;
      const kept = es.filter((x) => this.live(Array.isArray(x) ? x[1] : x));
      if (kept.length === es.length) continue;
      this.metrics.ttlRemoved += es.length - kept.length;
      changes.push([keyText, rk, kept.length ? kept : undefined]);
    }
    for (const [keyText, rk, rec] of changes) {
      const store = this.state.store(keyText);
      if (rec === undefined) store.remove(rk);
      else store.put(rk, rec);
    }
  }

  async commit(): Promise<void> {
    this.state.commit();
    this.timers.commit();
  }

  progress(): StateOperatorProgress {
    const m = this.state.metrics();
    const kinds = [...this.vars.values()];
    return {
      operatorName: this.name,
      ...m,
      numRowsDroppedByWatermark: this.groups?.dropped ?? 0,
      customMetrics: {
        numValueStateVars: kinds.filter((v) => v.kind === 'value').length,
        numListStateVars: kinds.filter((v) => v.kind === 'list').length,
        numMapStateVars: kinds.filter((v) => v.kind === 'map').length,
        numRegisteredTimers: this.metrics.registered,
        numDeletedTimers: this.metrics.deleted,
        numExpiredTimers: this.metrics.expired,
        numValuesRemovedDueToTTLExpiry: this.metrics.ttlRemoved,
      },
    };
  }

  produceOutputWatermark(inputWatermarkMs: number): number {
    return inputWatermarkMs;
  }

  /** As flatMapGroupsWithState: a processing-time batch when a timer is due by now; event time when the watermark moved. */
  shouldRunAnotherBatch(last: OperatorBatch, newInputWatermarkMs: number, nextBatchTimestampMs: number): boolean {
    if (this.spec.timeMode === 'ProcessingTime') return this.nextTimerMs < nextBatchTimestampMs;
    if (this.spec.timeMode === 'EventTime') return newInputWatermarkMs > last.evictionMs;
    return false;
  }

  async close(): Promise<void> {
    try {
      this.spec.processor.close?.();
    } finally {
      this.state.close();
      this.timers.close();
    }
  }
}
