/**
 * Arbitrary state per key: Spark's FlatMapGroupsWithStateExec and GroupStateImpl, for
 * `groupByKey(…).mapGroupsWithState(…)` and `.flatMapGroupsWithState(…)`.
 *
 * A batch: the rows of each key are gathered (all chunks), then the user's function is called once per key
 * with them, in key order; then, with a timeout configured, once per key whose timeout has passed (no rows,
 * `state.hasTimedOut`). After each call the state is written if it was updated or removed, or its timeout
 * changed — Spark's rule. As in Spark, a timeout holds for one call: the function sets it again each time it
 * runs for the key, or the key has none.
 *  - Processing-time timeout: a key times out when a batch starts (its batch timestamp, fixed in offsets/N so
 *    a re-run sees the same time) after `setTimeoutDuration`'s deadline.
 *  - Event-time timeout: when the watermark for eviction passes `setTimeoutTimestamp`'s time. Input rows
 *    behind the watermark for late events are dropped (and counted) only with this timeout, as in Spark.
 * State records are `{ v: value | null, t: timeout ms | -1 }` in the operator's versioned store (memory or
 * LMDB), so the state survives restarts like any other operator's.
 */
import type { GroupStateStage } from '../../plan/analyzer.js';
import type { GroupStateSpec, GroupStateTimeoutKind } from '../../plan/groupState.js';
import type { StateSchema } from '../../state/schema.js';
import { decodeState, encodeState } from '../../state/codec.js';
import { ArrayType, BinaryType, BooleanType, DataType, DateType, Decimal, MapType, Row, StringType, StructType, TimestampType, isNumeric } from '../../types/index.js';
import { eventTimeMs } from '../../types/timestamp.js';
import { parseDuration } from '../../util/duration.js';
import { OperatorState, type StateLayout } from './operatorState.js';
import type { OperatorBatch, StateOperatorProgress, StatefulOperator } from './statefulOperator.js';

/**
 * A copy of a state value as the state files keep it: through the state codec, so a value reads back the
 * same from memory, delta files and LMDB (Buffers, decimals, µs timestamps included) and later changes to
 * the caller's object never change state without an update.
 */
export function copyState<T>(v: T): T {
  return decodeState(encodeState(v)) as T;
}

/** No timeout set (Spark's GroupStateImpl.NO_TIMESTAMP). */
const NO_TIMESTAMP = -1;

/**
 * A key's state, as the function sees it (Spark's GroupState; the same names as the Scala API and PySpark's
 * GroupState). Read with `exists` / `get()` / `getOption()`, change with `update()` / `remove()`.
 */
export interface GroupState<S = unknown> {
  /** Whether the key has state (Spark: `exists`). */
  readonly exists: boolean;
  /** The state; throws when there is none (use `getOption()` or check `exists`). */
  get(): S;
  /** The state, or undefined. */
  getOption(): S | undefined;
  /** Replaces the state (null and undefined are refused: use `remove()`). */
  update(newState: S): void;
  /** Removes the state (and, as in Spark, keeps a timeout set in this call). */
  remove(): void;
  /** True when the function is called because the key's timeout passed (then with no rows). */
  readonly hasTimedOut: boolean;
  /** ProcessingTimeTimeout: the key times out this long after the current batch's time ("10 minutes" or ms). */
  setTimeoutDuration(duration: number | string): void;
  /** EventTimeTimeout: the key times out once the watermark passes this time (+ an optional duration). */
  setTimeoutTimestamp(timestamp: number | Date, additionalDuration?: number | string): void;
  /** The watermark for eviction of this batch, in ms (needs withWatermark before the operator). */
  getCurrentWatermarkMs(): number;
  /** The batch's processing time, in ms: the same on a re-run of the batch. */
  getCurrentProcessingTimeMs(): number;
}

/** One call's view of a key's state, and what the call did to it. */
class GroupStateImpl<S> implements GroupState<S> {
  private value: S | undefined;
  private defined: boolean;
  updated = false;
  removed = false;
  /** Reset for every call (Spark): the function sets it again or the key has none. */
  timeoutMs = NO_TIMESTAMP;

  constructor(
    initial: S | undefined,
    private readonly ctx: { api: string; timeout: GroupStateTimeoutKind; batchTimestampMs: number; watermarkMs: number | undefined; check: (v: unknown) => void },
    readonly hasTimedOut: boolean,
  ) {
    this.value = initial;
    this.defined = initial !== undefined;
  }

  get exists(): boolean {
    return this.defined;
  }
  get(): S {
    if (!this.defined) {
      throw new Error(
        'State is either not defined or has already been removed (GroupState.get). Check state.exists first, or use state.getOption(), ' +
          'which gives undefined for a key seen for the first time.',
      );
    }
    return this.value as S;
  }
  getOption(): S | undefined {
    return this.defined ? this.value : undefined;
  }
  update(newState: S): void {
    if (newState === null || newState === undefined) {
      throw new Error(`'${String(newState)}' is not a valid state value (GroupState.update). To drop the key's state, call state.remove().`);
    }
    this.ctx.check(newState);
    // A copy: later changes to the caller's object must not change the state without an update().
    this.value = copyState(newState);
    this.defined = true;
    this.updated = true;
    this.removed = false;
  }
  remove(): void {
    this.value = undefined;
    this.defined = false;
    this.removed = true;
    this.updated = false;
  }
  setTimeoutDuration(duration: number | string): void {
    if (this.ctx.timeout !== 'ProcessingTimeTimeout') {
      throw new Error(
        `Cannot set timeout duration without enabling processing time timeout in ${this.ctx.api} (Spark's rule): pass ` +
          `GroupStateTimeout.ProcessingTimeTimeout, not ${this.ctx.timeout}.`,
      );
    }
    const ms = typeof duration === 'number' ? duration : parseDuration(duration, 'setTimeoutDuration');
    if (!(Number.isFinite(ms) && ms > 0)) throw new Error(`Timeout duration must be positive, got ${String(duration)} (GroupState.setTimeoutDuration).`);
    this.timeoutMs = this.ctx.batchTimestampMs + ms;
  }
  setTimeoutTimestamp(timestamp: number | Date, additionalDuration?: number | string): void {
    if (this.ctx.timeout !== 'EventTimeTimeout') {
      throw new Error(
        `Cannot set timeout timestamp without enabling event time timeout in ${this.ctx.api} (Spark's rule): pass ` +
          `GroupStateTimeout.EventTimeTimeout (with withWatermark() before it), not ${this.ctx.timeout}.`,
      );
    }
    let ms = typeof timestamp === 'number' ? timestamp : eventTimeMs(timestamp);
    if (additionalDuration !== undefined) ms += typeof additionalDuration === 'number' ? additionalDuration : parseDuration(additionalDuration, 'setTimeoutTimestamp');
    if (!Number.isFinite(ms) || ms <= 0) throw new Error(`Timeout timestamp must be positive, got ${String(timestamp)} (GroupState.setTimeoutTimestamp).`);
    const w = this.ctx.watermarkMs;
    if (w !== undefined && ms < w) {
      throw new Error(
        `Timeout timestamp (${ms}, ${new Date(ms).toISOString()}) cannot be earlier than the current watermark (${w}, ${new Date(w).toISOString()}): ` +
          'it would time out at once. Set it from the event time of the key\'s rows, e.g. their latest event time + the session gap.',
      );
    }
    this.timeoutMs = ms;
  }
  getCurrentWatermarkMs(): number {
    if (this.ctx.watermarkMs === undefined) {
      throw new Error(`Cannot get event time watermark timestamp without setting watermark before ${this.ctx.api}: call withWatermark(eventTime, delay) before groupByKey.`);
    }
    return this.ctx.watermarkMs;
  }
  getCurrentProcessingTimeMs(): number {
    return this.ctx.batchTimestampMs;
  }
}

/** What a key's state record holds in the store. */
interface StateRecord {
  v: unknown;
  t: number;
}

/** How a state value is checked at update: against the declared schema, or as plain data. */
export function stateValueChecker(schema: StructType | undefined): (v: unknown) => void {
  return schema ? (v) => checkTyped(v, schema, 'state') : (v) => checkPlain(v, 'state');
}

function checkTyped(v: unknown, t: DataType, path: string): void {
  if (v === null || v === undefined) return; // a null field is allowed; a null state is refused by update()
  const fail = (what: string): never => {
    throw new Error(`${path} is ${what}, but the declared state schema says ${t.simpleString()} (GroupState.update).`);
  };
  if (t instanceof StructType) {
    if (typeof v !== 'object' || Array.isArray(v) || v instanceof Date) fail(describe(v));
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!t.field(k)) throw new Error(`${path}.${k} is not in the declared state schema (${t.simpleString()}) (GroupState.update).`);
    for (const f of t.fields) checkTyped(o[f.name], f.dataType, `${path}.${f.name}`);
  } else if (t instanceof ArrayType) {
    if (!Array.isArray(v)) fail(describe(v));
    (v as unknown[]).forEach((x, i) => checkTyped(x, t.elementType, `${path}[${i}]`));
  } else if (t instanceof MapType) {
    if (typeof v !== 'object' || Array.isArray(v)) fail(describe(v));
  } else if (t === StringType) {
    if (typeof v !== 'string') fail(describe(v));
  } else if (t === BooleanType) {
    if (typeof v !== 'boolean') fail(describe(v));
  } else if (t === TimestampType || t === DateType) {
    if (!(v instanceof Date)) fail(describe(v));
  } else if (t === BinaryType) {
    if (!Buffer.isBuffer(v)) fail(describe(v));
  } else if (isNumeric(t)) {
    if (typeof v !== 'number' && !(typeof v === 'object' && v !== null && 'toFixed' in v)) fail(describe(v));
  }
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Date) return 'a Date';
  return `a ${typeof v} (${String(v).slice(0, 40)})`;
}

/** Plain data: what the state files can keep and give back the same (no functions, class instances, Maps). */
function checkPlain(v: unknown, path: string): void {
  const t = typeof v;
  if (v === null || t === 'string' || t === 'number' || t === 'boolean') return;
  if (v instanceof Date || Buffer.isBuffer(v) || v instanceof Decimal) return;
  if (Array.isArray(v)) {
    v.forEach((x, i) => checkPlain(x, `${path}[${i}]`));
    return;
  }
  if (t === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if (x === undefined) throw new Error(`${path}.${k} is undefined: state values must be plain data; use null, or leave the field out (GroupState.update).`);
      checkPlain(x, `${path}.${k}`);
    }
    return;
  }
  const what = t === 'function' ? 'a function' : t === 'bigint' ? 'a bigint (JSON has none: use a number, or a string)' : t === 'object' ? `an instance of ${(v as object).constructor?.name ?? 'a class'}` : `a ${t}`;
  throw new Error(
    `${path} is ${what}: state values must be plain data — objects, arrays, strings, numbers, booleans, Dates, Buffers — because they are ` +
      'written to the checkpoint and read back after a restart. Convert it (a Map to an object, a Set to an array), or declare a stateSchema (GroupState.update).',
  );
}

/**
 * A row a user function returned, as the output schema's columns (a missing one is null). `who` names the
 * function in the error for anything that is not a row.
 */
export function outputRow(r: unknown, schema: StructType, who: string): Row {
  if (r === null || typeof r !== 'object' || Array.isArray(r) || r instanceof Date) {
    throw new Error(`${who} returned ${r === null ? 'null' : describe(r)} as a row; a row is an object with the output schema's fields (${schema.fieldNames.join(', ')}).`);
  }
  const row: Row = {};
  for (const f of schema.fields) row[f.name] = (r as Row)[f.name] ?? null;
  return row;
}

/** The rows a user function returned — any iterable; null or undefined: none — appended to `out` as output rows. */
export function appendOutputRows(result: unknown, schema: StructType, who: string, out: Row[]): void {
  if (result === undefined || result === null) return;
  if (typeof (result as Iterable<unknown>)[Symbol.iterator] !== 'function' || typeof result === 'string') {
    throw new Error(`${who} returned ${describe(result)}; it must return an iterable of rows (an array, or a generator): return [] for no output, or [row] for one.`);
  }
  for (const r of result as Iterable<unknown>) out.push(outputRow(r, schema, who));
}

/**
 * A batch's rows by key, from every chunk — the user's function sees all of a key's rows at once — with
 * rows behind the watermark for late events dropped and counted (when the stage judges lateness).
 */
export class RowsByKey {
  private groups = new Map<string, { key: unknown; rows: Row[] }>();
  dropped = 0;
  constructor(
    private readonly stage: GroupStateStage,
    private readonly batch: OperatorBatch,
    private readonly operator: string,
  ) {}
  add(rows: Row[]): void {
    const b = this.batch;
    const late = this.stage.lateTime;
    for (const row of rows) {
      if (late) {
        const d = late(row) as Date | null;
        if (d != null && eventTimeMs(d) <= b.lateEventsMs) {
          this.dropped++;
          b.onLate?.({ row, operator: this.operator, watermarkMs: b.lateEventsMs });
          continue;
        }
      }
      const key = this.stage.key(row);
      const text = this.stage.keyText(key);
      const g = this.groups.get(text);
      if (g) g.rows.push(row);
      else this.groups.set(text, { key, rows: [row] });
    }
  }
  /** The keys with rows, in key order (Spark sorts a partition's rows by key before grouping); empties the groups. */
  take(): Array<{ text: string; key: unknown; rows: Row[] }> {
    const out = [...this.groups].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([text, g]) => ({ text, ...g }));
    this.groups = new Map();
    return out;
  }
}

export class GroupStateOperator implements StatefulOperator {
  readonly id: number;
  readonly name = 'flatMapGroupsWithState';
  readonly partitions: number;
  private readonly state: OperatorState;
  private batch: OperatorBatch | undefined;
  private groups: RowsByKey | undefined;
  private timedOut = 0;
  /**
   * The earliest timeout in state after the last batch (processing time): when a no-data batch has work.
   * Unknown (-Infinity) until a batch has scanned the state — after a restart the first check runs one.
   */
  private nextTimeoutMs = -Infinity;
  private readonly check: (v: unknown) => void;
  private readonly spec: GroupStateSpec;

  constructor(
    private readonly stage: GroupStateStage,
    layout: StateLayout,
  ) {
    this.id = stage.id;
    this.spec = stage.spec as GroupStateSpec;
    this.partitions = layout.partitions;
    this.state = new OperatorState(layout);
    this.check = stateValueChecker(this.spec.stateSchema);
  }

  describe(): string {
    return `${this.partitions} partitions in the query's thread, ${this.spec.timeout}`;
  }

  stateSchema(): StateSchema {
    const s = this.spec;
    return {
      operator: this.name,
      keySchema: this.stage.keySchema,
      valueSchema: [
        s.stateSchema ? { name: 'state', type: s.stateSchema.simpleString() } : { name: 'state', type: 'plain data' },
        { name: 'timeoutTimestamp', type: s.timeout },
      ],
    };
  }

  async begin(batch: OperatorBatch): Promise<void> {
    this.batch = batch;
    this.timedOut = 0;
    this.groups = new RowsByKey(this.stage, batch, `${this.name} ${this.id}`);
    this.state.load(batch.batchId);
  }

  async process(rows: Row[]): Promise<Row[]> {
    this.groups!.add(rows);
    return [];
  }

  async finish(): Promise<Row[]> {
    const b = this.batch!;
    const spec = this.spec;
    const out: Row[] = [];
    const batchTimestampMs = b.batchTimestampMs ?? Date.now();
    const watermarkMs = this.stage.watermarkPresent ? b.evictionMs : undefined;
    const ctx = { api: spec.api, timeout: spec.timeout, batchTimestampMs, watermarkMs, check: this.check };
    const call = async (text: string, key: unknown, rows: Row[], rec: StateRecord | undefined, timedOut: boolean): Promise<void> => {
      // The call's own copy: changing what get() returned, without update(), must not change the state.
      const gs = new GroupStateImpl(rec && rec.v !== null ? copyState(rec.v) : undefined, ctx, timedOut);
      const result = await spec.fn(key, rows, gs);
      this.emit(result, out);
      const store = this.state.store(text);
      const oldTimeout = rec?.t ?? NO_TIMESTAMP;
      if (gs.removed && gs.timeoutMs === NO_TIMESTAMP) {
        if (rec) store.remove(text);
      } else if (gs.updated || gs.removed || gs.timeoutMs !== oldTimeout) {
        store.put(text, { v: gs.exists ? gs.getOption() : null, t: gs.timeoutMs } satisfies StateRecord);
      }
    };
    for (const g of this.groups!.take()) await call(g.text, g.key, g.rows, this.read(g.text), false);
    this.nextTimeoutMs = Infinity;
    if (spec.timeout !== 'NoTimeout') {
      // Spark: after the keys with data, every key whose timeout is before the threshold (a scan of the state).
      const threshold = spec.timeout === 'ProcessingTimeTimeout' ? batchTimestampMs : b.evictionMs;
      const due: Array<[string, StateRecord]> = [];
      for (const [text, rec] of this.state.entries()) {
        const r = rec as StateRecord;
        if (r.t === NO_TIMESTAMP) continue;
        if (r.t < threshold) due.push([text, r]);
        else if (r.t < this.nextTimeoutMs) this.nextTimeoutMs = r.t;
      }
      due.sort(([a], [b2]) => (a < b2 ? -1 : a > b2 ? 1 : 0));
      for (const [text, rec] of due) {
        this.timedOut++;
        await call(text, this.stage.keyOf(text), [], rec, true);
        const after = this.read(text);
        if (after && after.t !== NO_TIMESTAMP && after.t < this.nextTimeoutMs) this.nextTimeoutMs = after.t;
      }
    }
    return out;
  }

  private read(text: string): StateRecord | undefined {
    return this.state.store(text).get(text) as StateRecord | undefined;
  }

  /** The function's result as output rows: one row (mapGroupsWithState), or an iterable of rows. */
  private emit(result: unknown, out: Row[]): void {
    const { api, outputSchema } = this.spec;
    if (api === 'mapGroupsWithState') out.push(outputRow(result, outputSchema, `${api}'s function`));
    else appendOutputRows(result, outputSchema, `${api}'s function`, out);
  }

  async commit(): Promise<void> {
    this.state.commit();
  }

  progress(): StateOperatorProgress {
    return {
      operatorName: this.name,
      ...this.state.metrics(),
      numRowsDroppedByWatermark: this.groups?.dropped ?? 0,
      customMetrics: { numTimedOutKeys: this.timedOut },
    };
  }

  produceOutputWatermark(inputWatermarkMs: number): number {
    return inputWatermarkMs;
  }

  /**
   * Spark runs a no-data batch on every trigger with a processing-time timeout, and when the watermark moved
   * with an event-time one. Sluice runs the processing-time one only when a key's timeout is due by now: the
   * same calls, without an empty batch per trigger (docs/decisions.md).
   */
  shouldRunAnotherBatch(last: OperatorBatch, newInputWatermarkMs: number, nextBatchTimestampMs: number): boolean {
    switch (this.spec.timeout) {
      case 'ProcessingTimeTimeout':
        return this.nextTimeoutMs < nextBatchTimestampMs; // the batch's own time, as the timeout is judged by it
      case 'EventTimeTimeout':
        return newInputWatermarkMs > last.evictionMs;
      default:
        return false;
    }
  }

  async close(): Promise<void> {
    this.state.close();
  }
}
