/**
 * The per-batch planning step (Spark's IncrementalExecution + WatermarkPropagator): it turns the analyzed
 * plan's stateful stages into operators once, and for each batch gives every operator its state version
 * and its two watermarks, propagated through the plan:
 *  - the watermark for eviction: this batch's global watermark, as it reaches the operator;
 *  - the watermark for late events: the previous batch's, as it reaches the operator.
 * Propagation (Spark 3.4+, PropagateWatermarkSimulator): a withWatermark node outputs the global watermark;
 * a stateless node passes its input on (a union: the minimum of its inputs that have one); a stateful
 * operator's input is the minimum of what reaches it, and its output is `produceOutputWatermark(input)`
 * (aggregation and dedupe pass it on; a join will lower it; user state may drop it). An operator that no
 * watermark reaches gets 0, as in Spark.
 *
 * It also answers the loop's question between batches, "run a no-data batch?", operator by operator.
 */
import { join } from 'node:path';
import type { Analyzed } from '../plan/analyzer.js';
import { isStatefulStage, leafInputs, statefulStages } from '../plan/analyzer.js';
import type { OutputMode } from '../sinks/sink.js';
import { checkStateSchema, writeStateSchema } from '../state/schema.js';
import type { StateStoreProviderKind } from '../state/store.js';
import { AggregationOperator, LocalAggregationState } from './operators/aggregation.js';
import { DedupeOperator } from './operators/dedupe.js';
import { GroupStateOperator } from './operators/groupState.js';
import { TransformWithStateOperator } from './operators/transformWithState.js';
import { ParallelAggregationState, notParallel } from './operators/parallelState.js';
import { SessionWindowOperator } from './operators/sessionWindow.js';
import { StreamingJoinOperator } from './operators/streamingJoin.js';
import type { LateRow, OperatorBatch, StatefulOperator } from './operators/statefulOperator.js';
import type { StateLayout } from './operators/operatorState.js';

/** Where operators keep state and how it runs. */
export interface OperatorEnv {
  /** The checkpoint folder (state goes to `state/<id>/<partition>/`); undefined: in memory only (batch DataFrames). */
  checkpointRoot?: string;
  partitions: number;
  provider: StateStoreProviderKind;
  /** Worker threads for aggregation state; 1 = none. */
  workers: number;
  log: (line: string) => void;
  /** State versions kept for recovery (`sluice.sql.streaming.minBatchesToRetain`). */
  minBatchesToRetain?: number;
}

/** Builds the stateful operators of an analyzed plan, by operator id. */
export function createOperators(plan: Analyzed, env: OperatorEnv): Map<number, StatefulOperator> {
  const ops = new Map<number, StatefulOperator>();
  for (const st of statefulStages(plan)) {
    const root = env.checkpointRoot;
    const layout: StateLayout = {
      dirOf: (p) => (root ? join(root, 'state', String(st.id), String(p)) : undefined),
      partitions: env.partitions,
      kind: env.provider,
      ...(env.minBatchesToRetain !== undefined ? { minBatchesToRetain: env.minBatchesToRetain } : {}),
    };
    if (st.kind === 'dedupe') {
      ops.set(st.id, new DedupeOperator(st, layout));
      continue;
    }
    if (st.kind === 'groupState') {
      ops.set(st.id, st.spec.api === 'transformWithState' ? new TransformWithStateOperator(st, layout) : new GroupStateOperator(st, layout));
      continue;
    }
    if (st.kind === 'join') {
      const unbounded = [st.leftEviction ? '' : 'left', st.rightEviction ? '' : 'right'].filter(Boolean);
      if (unbounded.length) {
        env.log(
          `WARN Stream-stream join ${st.id} keeps every ${unbounded.join(' and ')} row in state forever: no watermark with a time ` +
            'range bounds it. Add withWatermark() on both sides and a condition such as p.ts BETWEEN o.ts AND o.ts + INTERVAL 10 MINUTES.',
        );
      }
      ops.set(st.id, new StreamingJoinOperator(st, layout));
      continue;
    }
    if (st.sessionKey) {
      ops.set(st.id, new SessionWindowOperator(st, st.keySchema, layout));
      continue;
    }
    const why = notParallel(st);
    let backend;
    if (env.workers > 1 && !why && root) backend = new ParallelAggregationState(st, layout, env.workers);
    else {
      if (env.workers > 1) env.log(`INFO Stateful operator ${st.id} runs in the query's thread, not in worker threads: ${why ?? 'no checkpoint'}.`);
      backend = new LocalAggregationState(st.aggs, st.eventTimeKey, layout);
    }
    ops.set(st.id, new AggregationOperator(st, st.keySchema, backend));
  }
  return ops;
}

/**
 * The input watermark of every stateful operator when the global watermark is `origin` (undefined where no
 * watermark reaches the operator).
 */
export function propagateWatermark(plan: Analyzed, origin: number, ops: Map<number, StatefulOperator>): Map<number, number | undefined> {
  const operatorInputs = new Map<number, number | undefined>();
  const walk = (a: Analyzed): number | undefined => {
    let wm: number | undefined;
    const ws = leafInputs(a.leaf).map(walk).filter((w): w is number => w !== undefined);
    if (ws.length) wm = Math.min(...ws);
    if (a.leaf.kind === 'join' && a.leaf.join.id >= 0) {
      // A stream-stream join is a stateful operator with two inputs.
      operatorInputs.set(a.leaf.join.id, wm);
      wm = wm === undefined ? undefined : ops.get(a.leaf.join.id)!.produceOutputWatermark(wm);
    }
    for (const st of a.stages) {
      if (st.kind === 'watermark') wm = origin;
      else if (isStatefulStage(st)) {
        operatorInputs.set(st.id, wm);
        wm = wm === undefined ? undefined : ops.get(st.id)!.produceOutputWatermark(wm);
      }
    }
    return wm;
  };
  walk(plan);
  return operatorInputs;
}

export class IncrementalExecution {
  /** The last batch each operator ran: what `shouldRunAnotherBatch` compares a new watermark with. */
  private last = new Map<number, OperatorBatch>();
  /** Schema files of operators whose state has none yet, written at the next commit. */
  private readonly schemasToWrite: Array<() => void> = [];

  constructor(
    readonly plan: Analyzed,
    readonly operators: Map<number, StatefulOperator>,
    private readonly outputMode: OutputMode,
  ) {}

  /**
   * Checks each operator's state against the schema its state was written with (`state/<id>/_metadata/schema`),
   * writing it for a new operator. Throws with what changed.
   */
  checkStateSchemas(checkpointRoot: string): void {
    for (const op of this.operators.values()) {
      const dir = join(checkpointRoot, 'state', String(op.id));
      if (!checkStateSchema(dir, op.id, op.stateSchema())) this.schemasToWrite.push(() => writeStateSchema(dir, op.stateSchema()));
    }
  }

  /** Every operator's watermarks for batch `batchId`, from the global watermark it runs with and the previous batch's. */
  planBatch(batchId: number, batchWatermarkMs: number, prevBatchWatermarkMs: number, onLate?: (l: LateRow) => void, batchTimestampMs?: number): Map<number, OperatorBatch> {
    const eviction = propagateWatermark(this.plan, batchWatermarkMs, this.operators);
    const late = propagateWatermark(this.plan, prevBatchWatermarkMs, this.operators);
    const out = new Map<number, OperatorBatch>();
    for (const id of this.operators.keys()) {
      out.set(id, {
        batchId,
        outputMode: this.outputMode,
        lateEventsMs: Math.max(late.get(id) ?? 0, 0),
        evictionMs: Math.max(eviction.get(id) ?? 0, 0),
        ...(batchTimestampMs !== undefined ? { batchTimestampMs } : {}),
        ...(onLate ? { onLate } : {}),
      });
    }
    return out;
  }

  /** Starts a batch: loads each operator's state at version `batchId` with its watermarks. */
  async begin(batches: Map<number, OperatorBatch>): Promise<void> {
    await Promise.all([...this.operators].map(([id, op]) => op.begin(batches.get(id)!)));
    this.last = batches;
  }

  /**
   * Remembers the last batch the operators ran without running it (a restart: the last committed batch's
   * watermarks), so a restarted query runs the no-data batch a moved watermark asks for.
   */
  restoreLast(batchId: number, batchWatermarkMs: number, prevBatchWatermarkMs: number): void {
    this.last = this.planBatch(batchId, batchWatermarkMs, prevBatchWatermarkMs);
  }

  /** Spark's no-data batch: does any operator have work to do if the next batch runs with `nextWatermarkMs`? */
  shouldRunAnotherBatch(nextWatermarkMs: number, nextBatchTimestampMs = Date.now()): boolean {
    const next = propagateWatermark(this.plan, nextWatermarkMs, this.operators);
    for (const [id, op] of this.operators) {
      const last = this.last.get(id);
      if (last && op.shouldRunAnotherBatch(last, Math.max(next.get(id) ?? 0, 0), nextBatchTimestampMs)) return true;
    }
    return false;
  }

  /** The operators from the sink down, pre-order (Spark's order of stateOperators in progress). */
  sinkOrder(): StatefulOperator[] {
    const out: StatefulOperator[] = [];
    const walk = (a: Analyzed): void => {
      for (let i = a.stages.length - 1; i >= 0; i--) {
        const st = a.stages[i]!;
        if (isStatefulStage(st)) out.push(this.operators.get(st.id)!);
      }
      if (a.leaf.kind === 'join' && a.leaf.join.id >= 0) out.push(this.operators.get(a.leaf.join.id)!);
      leafInputs(a.leaf).forEach(walk);
    };
    walk(this.plan);
    return out;
  }

  async commit(): Promise<void> {
    for (const op of this.operators.values()) await op.commit();
    // A new operator's schema is written with its first committed state, not before.
    for (const write of this.schemasToWrite.splice(0)) write();
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.operators.values()].map((op) => op.close()));
  }
}
