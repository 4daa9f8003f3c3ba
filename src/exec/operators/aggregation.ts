/**
 * Streaming aggregation over tumbling/sliding windows or plain keys (Spark's StateStoreSaveExec), with
 * Spark's output-mode semantics:
 *  - a row whose group's event time (its window end, or its timestamp key) is at or behind the watermark
 *    for late events is dropped and counted (`numRowsDroppedByWatermark`), or handed to `onLate`;
 *  - append: a group is emitted once, when the watermark for eviction passes its event time, and removed;
 *  - update: the groups the batch changed are emitted; groups behind the watermark are removed silently;
 *  - complete: every group, every batch; nothing is dropped or removed.
 *
 * The row side (keys, windows, late rows) runs here, in the query's thread, because expressions are
 * closures; the state side (aggregationState.ts) runs here too, or in worker threads that own the state
 * partitions (parallelState.ts).
 */
import { decodeState } from '../../state/codec.js';
import { canPreAggregate, routeRow, type RouteTarget, type RowRouting } from './aggregationRows.js';
import type { AggregateImpl } from '../../expr/aggregates.js';
import type { AggregateStage } from '../../plan/analyzer.js';
import type { StateSchema } from '../../state/schema.js';
import type { StructType, Row } from '../../types/index.js';
import { emitAndEvict, mergeState, timeOfKeyFn, updateState, type KeyedRows, type PartialAggregate, type StateOutput } from './aggregationState.js';
import { OperatorState, type OperatorStateMetrics, type StateLayout } from './operatorState.js';
import { sortByKeyValues } from './order.js';
import { watermarkMoved, type OperatorBatch, type PendingOutput, type StateOperatorProgress, type StatefulOperator } from './statefulOperator.js';

/** Where an aggregation's state lives: here (OperatorState), or in worker threads (parallelState.ts). */
export interface AggregationStateBackend {
  readonly partitions: number;
  describe(): string;
  load(version: number): Promise<void>;
  update(keyed: KeyedRows): Promise<void>;
  /** Evicts and emits; `changed`: the groups this batch updated. */
  finish(opts: { evictionMs: number; outputMode: AggregationMode; changed: string[] }): Promise<StateOutput>;
  commit(): Promise<void>;
  metrics(): OperatorStateMetrics;
  /** The earliest event time of a group in state, where it is known without a scan (OperatorState.oldestKeyTime). */
  oldestKeyTime?(): number | undefined;
  close(): Promise<void>;
}

type AggregationMode = OperatorBatch['outputMode'];

/** The aggregation state in the query's thread. */
export class LocalAggregationState implements AggregationStateBackend {
  private readonly state: OperatorState;
  private readonly timeOfKey: ((key: string) => number | null) | undefined;
  readonly partitions: number;
  constructor(
    private readonly aggs: AggregateImpl[],
    eventTimeKey: AggregateStage['eventTimeKey'],
    layout: StateLayout,
  ) {
    this.partitions = layout.partitions;
    this.state = new OperatorState(layout);
    this.timeOfKey = timeOfKeyFn(eventTimeKey);
  }
  describe(): string {
    return `${this.partitions} partitions in the query's thread`;
  }
  async load(version: number): Promise<void> {
    this.state.load(version);
  }
  async update(keyed: KeyedRows): Promise<void> {
    updateState(this.state, this.aggs, keyed);
  }
  /** Partial buffers of a chunk's groups (task workers): merged into the groups' state. */
  merge(p: PartialAggregate): void {
    mergeState(this.state, this.aggs, p);
  }
  async finish(opts: { evictionMs: number; outputMode: AggregationMode; changed: string[] }): Promise<StateOutput> {
    return emitAndEvict(this.state, this.aggs, { ...opts, ...(this.timeOfKey ? { timeOfKey: this.timeOfKey } : {}) });
  }
  async commit(): Promise<void> {
    this.state.commit();
  }
  metrics(): OperatorStateMetrics {
    return this.state.metrics();
  }
  oldestKeyTime(): number | undefined {
    return this.state.oldestKeyTime();
  }
  async close(): Promise<void> {
    this.state.close();
  }
}

/** The state schema of an aggregation: its group keys, and its aggregates by function (their buffers). */
export function aggregationStateSchema(operator: string, keySchema: StructType, aggs: AggregateImpl[]): StateSchema {
  return {
    operator,
    keySchema: keySchema.fields.map((f) => ({ name: f.name, type: f.dataType.simpleString() })),
    valueSchema: aggs.map((a) => ({ name: a.name, type: aggregateBufferType(a) })),
  };
}

/** What an aggregate's buffer is: its function, argument type and options (e.g. approx_count_distinct's rsd). */
export function aggregateBufferType(a: AggregateImpl): string {
  const opts = Object.keys(a.call.options).length ? ` ${JSON.stringify(a.call.options)}` : '';
  return `${a.call.fn}(${a.call.argType?.simpleString() ?? ''})${opts}`;
}

export class AggregationOperator implements StatefulOperator {
  readonly id: number;
  readonly name = 'stateStoreSave';
  private batch: OperatorBatch | undefined;
  /** Update mode: the groups this batch changed, with their key values (emitted without decoding keys). */
  private updated = new Map<string, unknown[]>();
  private dropped = 0;
  private nullTimes = 0;

  constructor(
    private readonly stage: AggregateStage,
    private readonly keySchema: StructType,
    private readonly backend: AggregationStateBackend,
  ) {
    this.id = stage.id;
  }

  get partitions(): number {
    return this.backend.partitions;
  }
  describe(): string {
    return this.backend.describe();
  }
  stateSchema(): StateSchema {
    return aggregationStateSchema(this.name, this.keySchema, this.stage.aggs);
  }

  async begin(batch: OperatorBatch): Promise<void> {
    this.batch = batch;
    this.updated = new Map();
    this.dropped = 0;
    this.nullTimes = 0;
    await this.backend.load(batch.batchId);
  }

  async process(rows: Row[]): Promise<Row[]> {
    const keyed = this.routeRows(rows);
    if (keyed.keys.length) await this.backend.update(keyed);
    return [];
  }

  async finish(): Promise<Row[]> {
    const b = this.batch!;
    const out = await this.backend.finish({ evictionMs: b.evictionMs, outputMode: b.outputMode, changed: [...this.updated.keys()] });
    return this.outputRows(out);
  }

  async commit(): Promise<void> {
    await this.backend.commit();
  }

  progress(): StateOperatorProgress {
    return {
      operatorName: this.name,
      ...this.backend.metrics(),
      numRowsDroppedByWatermark: this.dropped,
      ...(this.stage.keys.some((k) => 'window' in k) ? { customMetrics: { numRowsWithNullEventTime: this.nullTimes } } : {}),
    };
  }

  produceOutputWatermark(inputWatermarkMs: number): number {
    return inputWatermarkMs;
  }

  /** An event-time aggregation holds its groups until the watermark passes their window end (append mode). */
  pendingOutput(): PendingOutput | undefined {
    if (!this.stage.eventTimeKey) return undefined;
    const oldest = this.backend.oldestKeyTime?.();
    return { rows: this.backend.metrics().numRowsTotal, ...(oldest !== undefined ? { oldestEventTimeMs: oldest } : {}) };
  }

  shouldRunAnotherBatch(last: OperatorBatch, newInputWatermarkMs: number): boolean {
    return watermarkMoved(last, newInputWatermarkMs);
  }

  async close(): Promise<void> {
    await this.backend.close();
  }

  /** The row side: each row's groups (several for sliding windows), late rows dropped here. */
  private routeRows(rows: Row[]): KeyedRows {
    const b = this.batch!;
    const keyed: KeyedRows = { keys: [], times: [], rows: [] };
    const target: RouteTarget = {
      group: (key, keyValues, time, row) => {
        keyed.keys.push(key);
        keyed.times.push(time);
        keyed.rows.push(row);
        if (b.outputMode === 'update' && !this.updated.has(key)) this.updated.set(key, keyValues);
      },
      late: (row) => this.late(row),
      noTime: () => void this.nullTimes++,
    };
    for (const row of rows) routeRow(this.stage, row, b, target);
    return keyed;
  }

  private late(row: Row): void {
    const b = this.batch!;
    this.dropped++;
    b.onLate?.({ row, operator: `${this.name} ${this.id}`, watermarkMs: b.lateEventsMs });
  }

  /**
   * Whether task workers may pre-aggregate this batch's chunks (exec/tasks/): the state is in this thread,
   * no session window, every aggregate's buffer plain data. Their routing for this batch, when they may.
   */
  partialRouting(): RowRouting | undefined {
    if (!(this.backend instanceof LocalAggregationState) || !canPreAggregate(this.stage)) return undefined;
    return { lateEventsMs: this.batch!.lateEventsMs, outputMode: this.batch!.outputMode };
  }

  /**
   * A chunk pre-aggregated by a task worker: its groups' partial buffers, merged into state (one read and
   * write per group instead of per row), and its late rows and rows without event time, in their order.
   */
  absorb(p: PartialAggregate): void {
    for (const row of p.late) this.late(row);
    this.nullTimes += p.noTime;
    const b = this.batch!;
    if (b.outputMode === 'update') p.keys.forEach((key, i) => !this.updated.has(key) && this.updated.set(key, p.keyValues[i]!));
    (this.backend as LocalAggregationState).merge(p);
  }

  /** The output rows: key columns, then aggregate columns, ordered by key. */
  private outputRows(out: StateOutput): Row[] {
    const rows: Array<[unknown[], Row]> = [];
    const emit = (keyValues: unknown[], values: unknown[]): void => {
      const r: Row = {};
      this.stage.keys.forEach((k, i) => (r[k.name] = keyValues[i]));
      this.stage.aggs.forEach((a, i) => (r[a.name] = values[i]));
      rows.push([keyValues, r]);
    };
    for (const [key, values] of out.updated) emit(this.updated.get(key)!, values);
    for (const [key, values] of out.scanned) emit(decodeState(key) as unknown[], values);
    return sortByKeyValues(rows);
  }
}
