/**
 * Streaming aggregation over session windows (Spark's MergingSessionsExec + SessionWindowStateStore*Exec).
 * State holds, per group (the grouping keys other than the session), that group's open sessions, sorted
 * by start and never overlapping: `[{ s: startMs, e: endMs, b: aggregate buffers }]`.
 *
 * Per row with event time t: the row's own session is [t, t + gap). It is late when t + gap <= the
 * watermark for late events (the session it could open is already over; Spark judges an input row by its
 * own session end the same way). Otherwise every stored session that overlaps or touches it
 * (start <= other end, as Spark's MergingSessionsIterator) merges with it into one session.
 *
 * Output modes: append emits a session once, when the watermark for eviction passes its end, and forgets
 * it; complete emits every session every batch and forgets nothing. Update is refused before start
 * (plan/unsupported.ts) — as in Spark, since a merged session replaces two earlier rows that an upsert
 * could not retract.
 */
import { decodeState, encodeState } from '../../state/codec.js';
import type { StateStore } from '../../state/store.js';
import type { AggregateStage } from '../../plan/analyzer.js';
import type { StateSchema } from '../../state/schema.js';
import type { Row, StructType } from '../../types/index.js';
import { aggregateBufferType } from './aggregation.js';
import { OperatorState, type StateLayout } from './operatorState.js';
import { eventTimeMs, fromEpochMicros } from '../../types/timestamp.js';
import { sortByKeyValues } from './order.js';
import { watermarkMoved, type OperatorBatch, type StateOperatorProgress, type StatefulOperator, type PendingOutput } from './statefulOperator.js';

interface Session {
  s: number;
  e: number;
  b: unknown[];
}

export class SessionWindowOperator implements StatefulOperator {
  readonly id: number;
  readonly partitions: number;
  readonly name = 'sessionWindowStateStoreSaveExec'; // Spark's short name
  private readonly state: OperatorState;
  private readonly session: NonNullable<AggregateStage['sessionKey']>;
  private readonly watermarked: boolean;
  private readonly others: Array<{ name: string; eval: (r: Row) => unknown }>;
  private batch: OperatorBatch | undefined;
  private dropped = 0;
  private nullTimes = 0;
  private badGaps = 0;

  constructor(
    private readonly stage: AggregateStage,
    private readonly keySchema: StructType,
    layout: StateLayout,
  ) {
    this.partitions = layout.partitions;
    this.id = stage.id;
    this.session = stage.sessionKey!;
    this.watermarked = stage.eventTimeKey?.index === this.session.index;
    this.others = stage.keys.filter((_, i) => i !== this.session.index) as Array<{ name: string; eval: (r: Row) => unknown }>;
    this.state = new OperatorState(layout);
  }

  describe(): string {
    return `${this.partitions} partitions in the query's thread`;
  }

  stateSchema(): StateSchema {
    return {
      operator: this.name,
      keySchema: this.keySchema.fields.filter((_, i) => i !== this.session.index).map((f) => ({ name: f.name, type: f.dataType.simpleString() })),
      valueSchema: this.stage.aggs.map((a) => ({ name: a.name, type: `sessions of ${aggregateBufferType(a)}` })),
    };
  }

  async begin(batch: OperatorBatch): Promise<void> {
    this.batch = batch;
    this.dropped = this.nullTimes = this.badGaps = 0;
    this.state.load(batch.batchId);
  }

  async process(rows: Row[]): Promise<Row[]> {
    const b = this.batch!;
    const W = b.lateEventsMs;
    const session = this.session;
    // Sessions of the groups this chunk touched, read once from the store and written back once.
    const touched = new Map<string, { store: StateStore; sessions: Session[] }>();
    for (const row of rows) {
      const d = session.time(row) as Date | null;
      const t = d == null ? undefined : eventTimeMs(d);
      if (t == null) {
        this.nullTimes++; // no event time, no session: left out (Spark filters these rows too), counted
        continue;
      }
      const gap = typeof session.gapMs === 'number' ? session.gapMs : session.gapMs(row);
      if (gap === null) {
        this.badGaps++; // Spark filters rows whose gap is not a positive duration out too
        continue;
      }
      const end = t + gap;
      if (this.watermarked && end <= W && b.outputMode !== 'complete') {
        this.dropped++;
        b.onLate?.({ row, operator: `${this.name} ${this.id}`, watermarkMs: W });
        continue;
      }
      const key = encodeState(this.others.map((k) => k.eval(row)));
      let group = touched.get(key);
      if (!group) {
        const store = this.state.store(key);
        group = { store, sessions: ((store.get(key) as Session[] | undefined) ?? []).map((x) => ({ ...x })) };
        touched.set(key, group);
      }
      const buffers = this.stage.aggs.map((a) => a.update(a.init(), row));
      group.sessions = this.insertSession(group.sessions, { s: t, e: end, b: buffers });
    }
    for (const [key, { store, sessions }] of touched) store.put(key, sessions);
    return [];
  }

  async finish(): Promise<Row[]> {
    const b = this.batch!;
    const W = b.evictionMs;
    const out: Array<[unknown[], Row]> = [];
    const emit = (key: string, x: Session): void => {
      const keyValues = [...(decodeState(key) as unknown[])];
      // Times are ms with µs as the fraction (eventTimeMs): back to timestamps that keep the µs.
      keyValues.splice(this.session.index, 0, { start: fromEpochMicros(Math.round(x.s * 1000)), end: fromEpochMicros(Math.round(x.e * 1000)) });
      const row: Row = {};
      this.stage.keys.forEach((k, i) => (row[k.name] = keyValues[i]));
      this.stage.aggs.forEach((a, i) => (row[a.name] = a.finish(x.b[i])));
      out.push([keyValues, row]);
    };
    const changes: Array<[string, StateStore, Session[]]> = [];
    // The state rows Spark reports for session windows are sessions, not groups: counted in this pass.
    let sessionsKept = 0;
    for (const [key, value, store] of this.state.entries()) {
      const sessions = value as Session[];
      if (b.outputMode === 'complete' || !this.watermarked) {
        if (b.outputMode === 'complete') for (const x of sessions) emit(key, x);
        sessionsKept += sessions.length;
        continue;
      }
      const open = sessions.filter((x) => x.e > W);
      sessionsKept += open.length;
      if (open.length === sessions.length) continue;
      for (const x of sessions) if (x.e <= W) emit(key, x);
      changes.push([key, store, open]);
    }
    this.state.rowCount = sessionsKept;
    for (const [key, store, open] of changes) (open.length ? store.put(key, open) : store.remove(key));
    return sortByKeyValues(out);
  }

  /** Sessions held until the watermark passes their end (append/update): how many, and the earliest end. */
  pendingOutput(): PendingOutput | undefined {
    if (!this.watermarked) return undefined;
    let rows = 0;
    let oldest = Infinity;
    for (const [, value] of this.state.entries()) {
      for (const x of value as Session[]) {
        rows++;
        oldest = Math.min(oldest, x.e);
      }
    }
    return { rows, ...(Number.isFinite(oldest) ? { oldestEventTimeMs: oldest } : {}) };
  }

  async commit(): Promise<void> {
    this.state.commit();
  }

  progress(): StateOperatorProgress {
    return {
      operatorName: this.name,
      ...this.state.metrics(),
      numRowsDroppedByWatermark: this.dropped,
      customMetrics: { numRowsWithNullEventTime: this.nullTimes, numRowsWithInvalidSessionGap: this.badGaps },
    };
  }

  produceOutputWatermark(inputWatermarkMs: number): number {
    return inputWatermarkMs;
  }

  shouldRunAnotherBatch(last: OperatorBatch, newInputWatermarkMs: number): boolean {
    return watermarkMoved(last, newInputWatermarkMs);
  }

  async close(): Promise<void> {
    this.state.close();
  }

  /** Inserts a one-row session into a group's sorted, disjoint sessions, merging every one it overlaps or touches. */
  private insertSession(sessions: Session[], add: Session): Session[] {
    const kept: Session[] = [];
    const merging: Session[] = [];
    for (const x of sessions) (x.s <= add.e && add.s <= x.e ? merging : kept).push(x);
    // Earlier sessions' rows come first in the merged buffers (first()/last()/collect_list order).
    let merged = add;
    if (merging.length) {
      const all = [...merging, add].sort((a, b) => a.s - b.s);
      merged = all.reduce((acc, x) => ({
        s: Math.min(acc.s, x.s),
        e: Math.max(acc.e, x.e),
        b: this.stage.aggs.map((a, i) => a.merge(acc.b[i], x.b[i])),
      }));
    }
    kept.push(merged);
    return kept.sort((a, b) => a.s - b.s);
  }
}
