/**
 * Stream-stream join (Spark's StreamingSymmetricHashJoinExec): each side's rows are buffered in state, by
 * join key, so that a row of one side meets the rows of the other that came in earlier batches, and those
 * that come later.
 *
 * A batch, as Spark runs it:
 *  1. rows of either side at or behind the watermark for late events (by that side's event time) are
 *     dropped and counted — not joined, not stored, never null-padded;
 *  2. each left row joins the right rows in state (earlier batches), then is stored;
 *  3. each right row joins the left rows in state (this batch's included, so a pair that arrives in one
 *     batch is emitted once), then is stored;
 *  4. at the end, each side's rows that no future row of the other side can match are evicted: by a
 *     watermarked join key (key time <= the watermark), or by a time-range condition (event time <= the
 *     side's state watermark, plan/join.ts). An outer join emits an evicted row that never matched, padded
 *     with nulls — so a null row appears only once the watermark has passed its bound, never while the
 *     inputs are idle.
 * Left semi: a left row is emitted once, at its first match, and is not kept after it.
 *
 * State: per side, per key, the rows with their event time and whether they matched:
 * `state/<id>/<partition>/left` and `…/right`.
 */
import { join } from 'node:path';
import { keepsUnmatched, type JoinStage } from '../../plan/join.js';
import type { StateSchema } from '../../state/schema.js';
import type { Row } from '../../types/index.js';
import { OperatorState, type StateLayout } from './operatorState.js';
import type { OperatorBatch, StateOperatorProgress, StatefulOperator } from './statefulOperator.js';

/** One buffered row: the row, whether it matched a row of the other side, and its eviction time. */
interface Entry {
  r: Row;
  m: boolean;
  t: number | null;
}

type Side = 'left' | 'right';

export class StreamingJoinOperator implements StatefulOperator {
  readonly id: number;
  readonly name = 'symmetricHashJoin'; // Spark's short name
  readonly partitions: number;
  private readonly state: Record<Side, OperatorState>;
  private batch: OperatorBatch | undefined;
  private dropped = 0;
  private updated = 0;
  private removed = 0;
  private rowsKept = 0;
  private readonly kept: Record<Side, number> = { left: 0, right: 0 };

  constructor(
    private readonly stage: JoinStage,
    layout: StateLayout,
  ) {
    this.id = stage.id;
    this.partitions = layout.partitions;
    const sideLayout = (side: Side): StateLayout => ({ ...layout, dirOf: (p) => (layout.dirOf(p) ? join(layout.dirOf(p)!, side) : undefined) });
    this.state = { left: new OperatorState(sideLayout('left')), right: new OperatorState(sideLayout('right')) };
  }

  describe(): string {
    const kept = (e: JoinStage['leftEviction']): string => (e ? (e.kind === 'key' ? 'until the watermark passes its key' : 'until the watermark passes its time bound') : 'forever (no watermark and time constraint bounds it)');
    return `${this.partitions} partitions per side in the query's thread; left rows kept ${kept(this.stage.leftEviction)}, right rows kept ${kept(this.stage.rightEviction)}`;
  }

  stateSchema(): StateSchema {
    const fields = (side: Side): StateSchema['keySchema'] =>
      (side === 'left' ? this.stage.leftSchema : this.stage.rightSchema).fields.map((f) => ({ name: f.name, type: f.dataType.simpleString() }));
    // The state holds both sides' rows: a change of either side's columns changes what was stored.
    return { operator: this.name, keySchema: fields('left'), valueSchema: fields('right') };
  }

  async begin(batch: OperatorBatch): Promise<void> {
    this.batch = batch;
    this.dropped = this.updated = this.removed = 0;
    this.state.left.load(batch.batchId);
    this.state.right.load(batch.batchId);
  }

  async process(rows: Row[], input = 0): Promise<Row[]> {
    return input === 0 ? this.processSide('left', rows) : this.processSide('right', rows);
  }

  private processSide(side: Side, rows: Row[]): Row[] {
    const b = this.batch!;
    const s = this.stage;
    const other: Side = side === 'left' ? 'right' : 'left';
    const lateTime = side === 'left' ? s.leftLateTime : s.rightLateTime;
    const keyOf = (side === 'left' ? s.leftKey : s.rightKey)!;
    const eviction = side === 'left' ? s.leftEviction : s.rightEviction;
    const outer = keepsUnmatched(s.how, side);
    const semi = s.how === 'left_semi';
    const out: Row[] = [];
    for (const row of rows) {
      if (lateTime) {
        const t = lateTime(row);
        if (t !== null && t <= b.lateEventsMs) {
          this.dropped++;
          b.onLate?.({ row, operator: `${this.name} ${this.id} (${side})`, watermarkMs: b.lateEventsMs });
          continue;
        }
      }
      const key = keyOf(row);
      if (key === null) {
        // A null key matches nothing, now or later: an outer side's row comes out padded at once.
        if (outer) out.push(side === 'left' ? s.combine(row, null) : s.combine(null, row));
        continue;
      }
      const otherStore = this.state[other].store(key);
      const candidates = (otherStore.get(key) as Entry[] | undefined) ?? [];
      let matched = false;
      let otherChanged = false;
      for (const e of candidates) {
        const [l, r] = side === 'left' ? [row, e.r] : [e.r, row];
        if (s.matches && !s.matches(l, r)) continue;
        matched = true;
        if (semi) {
          // A right row emits each left row it matches for the first time; a left row only needs one match.
          if (side === 'right' && !e.m) out.push(s.combine(e.r, null));
          if (side === 'left') break;
        } else out.push(s.combine(l, r));
        if (!e.m) {
          e.m = true;
          otherChanged = true;
        }
      }
      if (otherChanged) otherStore.put(key, candidates);
      if (semi && side === 'left' && matched) {
        out.push(s.combine(row, null)); // emitted at its first match, and not kept
        continue;
      }
      const store = this.state[side].store(key);
      const own = (store.get(key) as Entry[] | undefined) ?? [];
      own.push({ r: row, m: matched, t: eviction ? eviction.time(row) : null });
      store.put(key, own);
      this.updated++;
    }
    return out;
  }

  /** Evicts what no future row can match (with the null-padded rows of outer sides), and counts what is kept. */
  async finish(): Promise<Row[]> {
    const s = this.stage;
    const W = this.batch!.evictionMs;
    const out: Row[] = [];
    this.rowsKept = 0;
    for (const side of ['left', 'right'] as const) {
      const before = this.rowsKept;
      const eviction = side === 'left' ? s.leftEviction : s.rightEviction;
      const outer = keepsUnmatched(s.how, side);
      const stateWatermark = eviction ? (eviction.kind === 'key' ? W : eviction.watermark(W)) : undefined;
      const changes: Array<[string, Entry[]]> = [];
      for (const [key, value] of this.state[side].entries()) {
        const entries = value as Entry[];
        if (stateWatermark === undefined) {
          this.rowsKept += entries.length;
          continue;
        }
        const kept = entries.filter((e) => e.t === null || e.t > stateWatermark);
        this.rowsKept += kept.length;
        if (kept.length === entries.length) continue;
        for (const e of entries) {
          if (e.t === null || e.t > stateWatermark) continue;
          this.removed++;
          if (outer && !e.m) out.push(side === 'left' ? s.combine(e.r, null) : s.combine(null, e.r));
        }
        changes.push([key, kept]);
      }
      for (const [key, kept] of changes) {
        const store = this.state[side].store(key);
        if (kept.length) store.put(key, kept);
        else store.remove(key);
      }
      this.kept[side] = this.rowsKept - before;
    }
    return out;
  }

  async commit(): Promise<void> {
    this.state.left.commit();
    this.state.right.commit();
  }

  progress(): StateOperatorProgress {
    const l = this.state.left.metrics();
    const r = this.state.right.metrics();
    return {
      operatorName: this.name,
      // Spark's numRowsTotal for a join: the rows buffered on both sides.
      numRowsTotal: this.rowsKept,
      numRowsUpdated: this.updated,
      numRowsRemoved: this.removed,
      numRowsDroppedByWatermark: this.dropped,
      memoryUsedBytes: l.memoryUsedBytes + r.memoryUsedBytes,
      commitTimeMs: l.commitTimeMs + r.commitTimeMs,
      numShufflePartitions: this.partitions,
      numStateStoreInstances: l.numStateStoreInstances + r.numStateStoreInstances,
      // Per side, and whether a side's rows are ever released: without a watermark and a time range (or a
      // watermarked key) a side keeps every row forever, which progress says here (Spark says it nowhere).
      customMetrics: {
        numLeftRows: this.kept.left,
        numRightRows: this.kept.right,
        leftRowsKeptForever: this.stage.leftEviction ? 0 : 1,
        rightRowsKeptForever: this.stage.rightEviction ? 0 : 1,
      },
    };
  }

  /** Spark: the lowest of the two sides' state watermarks and the input watermark. */
  produceOutputWatermark(inputWatermarkMs: number): number {
    const marks = [inputWatermarkMs];
    for (const e of [this.stage.leftEviction, this.stage.rightEviction]) if (e) marks.push(e.kind === 'key' ? inputWatermarkMs : e.watermark(inputWatermarkMs));
    return Math.min(...marks);
  }

  /**
   * Spark's rule (StreamingSymmetricHashJoinExec): another batch when either side can be evicted at all and the
   * watermark moved past the one the last batch evicted with — whatever is in state (so a restart runs the
   * catch-up batch too, and a join that never evicts runs none).
   */
  shouldRunAnotherBatch(last: OperatorBatch, newInputWatermarkMs: number): boolean {
    return (this.stage.leftEviction ?? this.stage.rightEviction) !== undefined && newInputWatermarkMs > last.evictionMs;
  }

  async close(): Promise<void> {
    this.state.left.close();
    this.state.right.close();
  }
}
