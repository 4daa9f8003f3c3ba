/**
 * Streaming deduplication (Spark's StreamingDeduplicateExec and StreamingDeduplicateWithinWatermarkExec):
 * the first row of each key passes, later ones are dropped.
 *  - Late rows: when the input has a watermarked column (anywhere, key or not), a row whose event time is
 *    at or behind the watermark for late events is dropped and counted, as Spark does.
 *  - State: dropDuplicates keeps a key until the watermark for eviction passes its event time, which it
 *    can know only when the event time is one of the keys (else forever); dropDuplicatesWithinWatermark
 *    keeps it until the watermark passes its first event time + the delay.
 */
import type { DedupeStage } from '../../plan/analyzer.js';
import type { StateSchema } from '../../state/schema.js';
import type { StateStore } from '../../state/store.js';
import type { Row } from '../../types/index.js';
import { OperatorState, type StateLayout } from './operatorState.js';
import { eventTimeMs } from '../../types/timestamp.js';
import { type OperatorBatch, type StateOperatorProgress, type StatefulOperator } from './statefulOperator.js';

export class DedupeOperator implements StatefulOperator {
  readonly id: number;
  readonly partitions: number;
  readonly name: string;
  private readonly state: OperatorState;
  private batch: OperatorBatch | undefined;
  private dropped = 0;

  constructor(
    private readonly stage: DedupeStage,
    layout: StateLayout,
  ) {
    this.partitions = layout.partitions;
    this.id = stage.id;
    this.name = stage.withinWatermark ? 'dedupeWithinWatermark' : 'dedupe';
    this.state = new OperatorState(layout);
  }

  describe(): string {
    return `${this.partitions} partitions in the query's thread`;
  }

  stateSchema(): StateSchema {
    return {
      operator: this.name,
      keySchema: this.stage.keySchema.fields.map((f) => ({ name: f.name, type: f.dataType.simpleString() })),
      // When a key may be forgotten: its event time, its event time + delay, or never (null).
      valueSchema: [{ name: 'expiresAt', type: this.stage.expiry ? (this.stage.withinWatermark ? 'eventTime+delay' : 'eventTime') : 'never' }],
    };
  }

  async begin(batch: OperatorBatch): Promise<void> {
    this.batch = batch;
    this.dropped = 0;
    this.state.load(batch.batchId);
  }

  async process(rows: Row[]): Promise<Row[]> {
    const b = this.batch!;
    const W = b.lateEventsMs;
    const { lateTime, expiry } = this.stage;
    const out: Row[] = [];
    for (const row of rows) {
      if (lateTime) {
        const d = lateTime(row) as Date | null;
        const t = d == null ? undefined : eventTimeMs(d);
        if (t !== undefined && t <= W) {
          this.dropped++;
          b.onLate?.({ row, operator: `${this.name} ${this.id}`, watermarkMs: W });
          continue;
        }
      }
      const key = this.stage.key(row);
      const store = this.state.store(key);
      if (store.has(key)) continue;
      let expiresAt: number | null = null;
      if (expiry) {
        const d = expiry.eventTime(row) as Date | null;
        const t = d == null ? undefined : eventTimeMs(d);
        if (t !== undefined) expiresAt = t + expiry.addMs;
      }
      store.put(key, expiresAt);
      out.push(row);
    }
    return out;
  }

  async finish(): Promise<Row[]> {
    const b = this.batch!;
    // Spark's StreamingDeduplicateExec evicts whatever the output mode (complete mode included).
    if (this.stage.expiry) {
      const expired: Array<[string, StateStore]> = [];
      for (const [key, expiresAt, store] of this.state.entries()) if (expiresAt != null && (expiresAt as number) <= b.evictionMs) expired.push([key, store]);
      for (const [key, store] of expired) store.remove(key);
    }
    return [];
  }

  async commit(): Promise<void> {
    this.state.commit();
  }

  progress(): StateOperatorProgress {
    return { operatorName: this.name, ...this.state.metrics(), numRowsDroppedByWatermark: this.dropped };
  }

  produceOutputWatermark(inputWatermarkMs: number): number {
    return inputWatermarkMs;
  }

  shouldRunAnotherBatch(last: OperatorBatch, newInputWatermarkMs: number): boolean {
    // Spark's StreamingDeduplicateExec asks in every output mode, complete included.
    return newInputWatermarkMs > last.evictionMs;
  }

  async close(): Promise<void> {
    this.state.close();
  }
}
