/**
 * Runs one batch of an analyzed plan as a push pipeline, chunk by chunk, so that a batch's memory is
 * bounded by its chunk size and its state, not by its number of rows: each source's rows arrive in chunks
 * (a Kafka range is read a few thousand records at a time), flow through the per-row steps, the watermark
 * observer and the stateful operators' `process`, and reach the sink's writer as they come. When every
 * input is read, `flush` runs each stateful operator's `finish` (eviction and emission by output mode) in
 * plan order, and what it emits flows on through the rest of the plan, into the next operator.
 *
 * A union fans in: it flushes downstream once every branch has flushed. A sort (complete mode only)
 * buffers, as it must.
 */
import type { Analyzed, Stage } from '../plan/analyzer.js';
import { observeEventTimes, type EventTimeStats } from './eventTime.js';
import { keepsUnmatched, type JoinStage } from '../plan/join.js';
import { AnalysisError } from '../expr/compile.js';
import type { RecordError } from '../expr/values.js';
import { createOperators } from './incremental.js';
import type { Row } from '../types/index.js';
import type { StatefulOperator } from './operators/statefulOperator.js';
import { applyRows } from './rows.js';
import type { TaskPool } from './tasks/pool.js';
import { AggregationOperator } from './operators/aggregation.js';
import type { PartialAggregate } from './operators/aggregationState.js';

export type { EventTimeStats } from './eventTime.js';

/** One stage of the pipeline: rows are pushed in chunks, then flushed once at the end of the batch. */
export interface Pipe {
  push(rows: Row[]): Promise<void>;
  flush(): Promise<void>;
  /** The batch failed elsewhere: stop work still queued here and wait for what is running (task pipes). */
  abandon?(): Promise<void>;
}

export interface BatchPipelineContext {
  /** The stateful operators, by id, begun for this batch. */
  operators: Map<number, StatefulOperator>;
  onBad: (row: Row, e: RecordError) => void;
  /** Filled in: event-time statistics per watermark stage id (for the next watermark and progress). */
  eventTime: Map<number, EventTimeStats>;
  /** Worker threads for the source's first per-row stages (exec/tasks/pool.ts), and the batch's timestamp they evaluate with. */
  tasks?: { pool: TaskPool; batchTimestampMs: number };
}

/**
 * The entry points of a built pipeline: one per streaming source (by index); the static inputs (local rows,
 * batch sources, static sub-plans), read before the streams; and what must be ready before any row flows
 * (the static side of a stream-static join, read and indexed once per batch).
 */
export interface BatchPipeline {
  sources: Map<number, Pipe>;
  statics: Array<{ read: () => AsyncIterable<Row[]>; pipe: Pipe }>;
  prepare: Array<() => Promise<void>>;
}

/** Builds the pipeline of `plan` ending in `sink`. */
export function buildPipeline(plan: Analyzed, sink: Pipe, ctx: BatchPipelineContext): BatchPipeline {
  const out: BatchPipeline = { sources: new Map(), statics: [], prepare: [] };
  const build = (a: Analyzed, downstream: Pipe): void => {
    const chain = (from: number, to: number, end: Pipe): Pipe => {
      let head = end;
      for (let i = to - 1; i >= from; i--) head = stagePipe(a.stages[i]!, head, ctx);
      return head;
    };
    const head = chain(0, a.stages.length, downstream);
    const leaf = a.leaf;
    switch (leaf.kind) {
      case 'source': {
        const tasks = ctx.tasks;
        if (!tasks) {
          out.sources.set(leaf.index, head);
          break;
        }
        // The first stages run as tasks (in workers, or here for a small chunk); the rest after them, in order.
        const k = tasks.pool.stageCount;
        const done = collector();
        const steps = chain(0, k, done);
        const inline = {
          async push(rows: Row[]): Promise<Row[]> {
            await steps.push(rows);
            return done.rows.splice(0);
          },
        };
        // The aggregation after the steps, when the workers may pre-aggregate for it in this batch.
        const agg = tasks.pool.aggregateId !== undefined ? ctx.operators.get(tasks.pool.aggregateId) : undefined;
        const routing = agg instanceof AggregationOperator ? agg.partialRouting() : undefined;
        const partial = routing && { routing, absorb: (p: PartialAggregate) => (agg as AggregationOperator).absorb(p) };
        out.sources.set(leaf.index, tasks.pool.pipe(inline, chain(k, a.stages.length, downstream), ctx, tasks.batchTimestampMs, partial));
        break;
      }
      case 'local':
        out.statics.push({ read: () => once(leaf.rows), pipe: head });
        break;
      case 'batch':
        out.statics.push({ read: () => leaf.reader.read(leaf.schema), pipe: head });
        break;
      case 'static':
        out.statics.push({ read: () => once(staticRows(leaf.plan, leaf.holder)), pipe: head });
        break;
      case 'union': {
        const fanIn = unionPipe(head, leaf.branches.length);
        for (const b of leaf.branches) build(b, fanIn);
        break;
      }
      case 'join': {
        const j = leaf.join;
        if (j.id >= 0) {
          // Stream-stream: the stateful operator takes both inputs.
          const op = ctx.operators.get(j.id);
          if (!op) throw new Error(`Join operator ${j.id} has no state here (internal error).`);
          const [l, r] = operatorInputs(op, head);
          build(leaf.left, l);
          build(leaf.right, r);
        } else if (j.streaming.left !== j.streaming.right) {
          // Stream-static: the static side is read (or taken from the cache) and indexed before each batch.
          const staticIsLeft = leaf.left.leaf.kind === 'static';
          const lookup = new StaticSide(j, staticIsLeft ? 'left' : 'right');
          out.prepare.push(async () => lookup.load(await collectRows(staticIsLeft ? leaf.left : leaf.right)));
          build(staticIsLeft ? leaf.right : leaf.left, lookup.probePipe(head));
        } else {
          // Two batch sides (a static DataFrame's join): both buffered, joined once both are read.
          const [l, r] = batchJoinInputs(j, head);
          build(leaf.left, l);
          build(leaf.right, r);
        }
        break;
      }
    }
  };
  build(plan, sink);
  return out;
}

/**
 * Runs a whole batch through a pipeline: the static inputs first (so a batch join has both sides before the
 * streams flow), then each source's chunks (in source order), then the flush.
 */
export async function runPipeline(
  pipeline: BatchPipeline,
  inputs: Map<number, AsyncIterable<Row[]>>,
  /** Called after each chunk has gone through (e.g. to write out dead letters that piled up). */
  afterChunk?: () => Promise<void>,
): Promise<void> {
  for (const prepare of pipeline.prepare) await prepare();
  for (const { read, pipe } of pipeline.statics) {
    for await (const rows of read()) if (rows.length) await pipe.push(rows);
    await pipe.flush();
  }
  try {
    for (const [index, pipe] of pipeline.sources) {
      const chunks = inputs.get(index);
      if (!chunks) continue;
      for await (const rows of chunks) {
        if (rows.length) await pipe.push(rows);
        await afterChunk?.();
      }
    }
    for (const pipe of pipeline.sources.values()) await pipe.flush();
  } catch (e) {
    // A source or side output failed with chunks still queued in task pipes: nothing more may reach the
    // sink, which the caller aborts next.
    await Promise.allSettled([...pipeline.sources.values()].map((p) => p.abandon?.()));
    throw e;
  }
}

/**
 * Runs a batch (static) plan to its rows, as `collect()` does: its stateful operators live for this run
 * only, in memory, and emit everything (complete mode, no watermark).
 */
export async function collectRows(plan: Analyzed): Promise<Row[]> {
  const operators = createOperators(plan, { partitions: 1, provider: 'memory', workers: 1, log: () => {} });
  try {
    for (const op of operators.values()) await op.begin({ batchId: 0, outputMode: 'complete', lateEventsMs: -Infinity, evictionMs: -Infinity });
    const out = collector();
    const pipeline = buildPipeline(plan, out, {
      operators,
      eventTime: new Map(),
      onBad: (_row, e) => {
        throw new AnalysisError(`A row could not be processed: ${e.message}`);
      },
    });
    await runPipeline(pipeline, new Map());
    return out.rows;
  } finally {
    for (const op of operators.values()) await op.close();
  }
}

/** A static sub-plan's rows: computed each time, or once when cached (`holder`). */
async function staticRows(plan: Analyzed, holder: { rows?: Row[] } | undefined): Promise<Row[]> {
  if (holder?.rows) return holder.rows;
  const rows = await collectRows(plan);
  if (holder) holder.rows = rows;
  return rows;
}

async function* once(rows: Row[] | Promise<Row[]>): AsyncGenerator<Row[]> {
  yield await rows;
}

/** A two-input operator's input pipes: rows go to `process(rows, 0|1)`; after both flush, `finish()`. */
function operatorInputs(op: StatefulOperator, next: Pipe): [Pipe, Pipe] {
  let flushed = 0;
  const input = (i: number): Pipe => ({
    async push(rows) {
      const out = await op.process(rows, i);
      if (out.length) await next.push(out);
    },
    async flush() {
      if (++flushed < 2) return;
      const out = await op.finish();
      if (out.length) await next.push(out);
      await next.flush();
    },
  });
  return [input(0), input(1)];
}

/**
 * The static side of a stream-stream join, indexed by join key, probed by the stream's rows (stateless:
 * Spark's stream-static join). Outer with the stream as the outer side, semi and anti keep nothing between
 * rows either: each stream row's result is known when it is probed.
 */
class StaticSide {
  private byKey = new Map<string, Row[]>();
  constructor(
    private readonly j: JoinStage,
    private readonly side: 'left' | 'right',
  ) {}
  load(rows: Row[]): void {
    this.byKey = indexByKey(rows, this.side === 'left' ? this.j.leftKey : this.j.rightKey);
  }
  probePipe(next: Pipe): Pipe {
    const j = this.j;
    const streamIsLeft = this.side === 'right';
    const streamKey = streamIsLeft ? j.leftKey : j.rightKey;
    return {
      push: async (rows) => {
        const out: Row[] = [];
        for (const row of rows) {
          probe(j, row, streamIsLeft, candidates(this.byKey, streamKey, row), out);
        }
        if (out.length) await next.push(out);
      },
      flush: () => next.flush(),
    };
  }
}

/** Rows by join key (all under '' when the join has no equi-key); a row with a null key is left out: it matches nothing. */
function indexByKey(rows: Row[], keyOf: ((row: Row) => string | null) | undefined): Map<string, Row[]> {
  const byKey = new Map<string, Row[]>();
  for (const r of rows) {
    const k = keyOf ? keyOf(r) : '';
    if (k === null) continue;
    let list = byKey.get(k);
    if (!list) byKey.set(k, (list = []));
    list.push(r);
  }
  return byKey;
}

/** The indexed rows a probing row may match: those with its key (none for a null key). */
function candidates(byKey: Map<string, Row[]>, keyOf: ((row: Row) => string | null) | undefined, row: Row): Row[] {
  const k = keyOf ? keyOf(row) : '';
  return k === null ? [] : (byKey.get(k) ?? []);
}

/**
 * One row of a join's probing side against its candidates (the other side's rows with its key): what it
 * contributes by join type — its pairs, or itself for a semi/anti join, or itself null-padded when it matched
 * nothing and its side is an outer side. `onMatch` hears each candidate it matched.
 */
function probe(j: JoinStage, row: Row, rowIsLeft: boolean, candidates: Iterable<Row>, out: Row[], onMatch?: (other: Row) => void): void {
  const semiOrAnti = j.how === 'left_semi' || j.how === 'left_anti';
  let matched = false;
  for (const other of candidates) {
    const [l, r] = rowIsLeft ? [row, other] : [other, row];
    if (j.matches && !j.matches(l, r)) continue;
    matched = true;
    onMatch?.(other);
    if (semiOrAnti) break;
    out.push(j.combine(l, r));
  }
  if (j.how === 'left_semi' ? matched : j.how === 'left_anti' ? !matched : !matched && keepsUnmatched(j.how, rowIsLeft ? 'left' : 'right')) {
    out.push(rowIsLeft ? j.combine(row, null) : j.combine(null, row));
  }
}

/** A join of two batch inputs: both buffered, then joined (every join type) once both are complete. */
function batchJoinInputs(j: JoinStage, next: Pipe): [Pipe, Pipe] {
  const sides: [Row[], Row[]] = [[], []];
  let flushed = 0;
  const input = (i: 0 | 1): Pipe => ({
    async push(rows) {
      for (const r of rows) sides[i].push(r);
    },
    async flush() {
      if (++flushed < 2) return;
      const out = joinBatches(j, sides[0], sides[1]);
      if (out.length) await next.push(out);
      await next.flush();
    },
  });
  return [input(0), input(1)];
}

function joinBatches(j: JoinStage, left: Row[], right: Row[]): Row[] {
  const byKey = indexByKey(right, j.rightKey);
  const rightMatched = new Set<Row>();
  const out: Row[] = [];
  for (const l of left) probe(j, l, true, candidates(byKey, j.leftKey, l), out, (r) => rightMatched.add(r));
  if (keepsUnmatched(j.how, 'right')) for (const r of right) if (!rightMatched.has(r)) out.push(j.combine(null, r));
  return out;
}

/** A pipe that collects what reaches it (a batch DataFrame's result, or a sink that takes a whole batch). */
export function collector(): Pipe & { rows: Row[] } {
  const rows: Row[] = [];
  return {
    rows,
    async push(chunk) {
      for (const r of chunk) rows.push(r);
    },
    async flush() {},
  };
}

function stagePipe(stage: Stage, next: Pipe, ctx: BatchPipelineContext): Pipe {
  switch (stage.kind) {
    case 'map':
      return {
        async push(rows) {
          const out = await applyRows(rows, stage.fn, ctx.onBad);
          if (out.length) await next.push(out);
        },
        flush: () => next.flush(),
      };
    case 'batch': {
      // Sorting needs every row (complete mode only: the plan checker refuses it elsewhere).
      let buffered: Row[] = [];
      return {
        async push(rows) {
          for (const r of rows) buffered.push(r);
        },
        async flush() {
          const all = buffered;
          buffered = [];
          const out = stage.fn(all);
          if (out.length) await next.push(out);
          await next.flush();
        },
      };
    }
    case 'watermark':
      return {
        async push(rows) {
          ctx.eventTime.set(stage.id, observeEventTimes(stage, rows, ctx.eventTime.get(stage.id)));
          await next.push(rows);
        },
        flush: () => next.flush(),
      };
    case 'join':
      throw new Error('A join is a leaf of the plan, not a stage (internal error).');
    case 'aggregate':
    case 'dedupe':
    case 'groupState': {
      const op = ctx.operators.get(stage.id);
      if (!op) throw new Error(`Stateful operator ${stage.id} has no state here (internal error).`);
      return {
        async push(rows) {
          const out = await op.process(rows);
          if (out.length) await next.push(out);
        },
        async flush() {
          const out = await op.finish();
          if (out.length) await next.push(out);
          await next.flush();
        },
      };
    }
  }
}

/** Fan-in of a union's branches: rows pass through; the flush goes on once every branch has flushed. */
function unionPipe(next: Pipe, branches: number): Pipe {
  let flushed = 0;
  return {
    push: (rows) => next.push(rows),
    async flush() {
      if (++flushed === branches) await next.flush();
    },
  };
}
