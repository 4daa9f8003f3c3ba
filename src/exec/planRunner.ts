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
import type { RecordError } from '../expr/values.js';
import type { Row } from '../types/index.js';
import type { StatefulOperator } from './operators/statefulOperator.js';
import { applyRows } from './rows.js';

export interface EventTimeStats {
  min: number;
  max: number;
  sum: number;
  count: number;
}

/** One stage of the pipeline: rows are pushed in chunks, then flushed once at the end of the batch. */
export interface Pipe {
  push(rows: Row[]): Promise<void>;
  flush(): Promise<void>;
}

export interface BatchPipelineContext {
  /** The stateful operators, by id, begun for this batch. */
  operators: Map<number, StatefulOperator>;
  onBad: (row: Row, e: RecordError) => void;
  /** Filled in: event-time statistics per watermark stage id (for the next watermark and progress). */
  eventTime: Map<number, EventTimeStats>;
}

/** The entry points of a built pipeline: one per streaming source (by index), and the local relations' rows. */
export interface BatchPipeline {
  sources: Map<number, Pipe>;
  locals: Array<{ rows: Row[]; pipe: Pipe }>;
}

/** Builds the pipeline of `plan` ending in `sink`. */
export function buildPipeline(plan: Analyzed, sink: Pipe, ctx: BatchPipelineContext): BatchPipeline {
  const out: BatchPipeline = { sources: new Map(), locals: [] };
  const build = (a: Analyzed, downstream: Pipe): void => {
    let head = downstream;
    for (let i = a.stages.length - 1; i >= 0; i--) head = stagePipe(a.stages[i]!, head, ctx);
    const leaf = a.leaf;
    if (leaf.kind === 'source') out.sources.set(leaf.index, head);
    else if (leaf.kind === 'local') out.locals.push({ rows: leaf.rows, pipe: head });
    else {
      const fanIn = unionPipe(head, leaf.branches.length);
      for (const b of leaf.branches) build(b, fanIn);
    }
  };
  build(plan, sink);
  return out;
}

/**
 * Runs a whole batch through a pipeline: each source's chunks (in source order), the local relations' rows,
 * then the flush. Sources not in the plan's leaves are not read.
 */
export async function runPipeline(
  pipeline: BatchPipeline,
  inputs: Map<number, AsyncIterable<Row[]>>,
  /** Called after each chunk has gone through (e.g. to write out dead letters that piled up). */
  afterChunk?: () => Promise<void>,
): Promise<void> {
  for (const [index, pipe] of pipeline.sources) {
    const chunks = inputs.get(index);
    if (!chunks) continue;
    for await (const rows of chunks) {
      if (rows.length) await pipe.push(rows);
      await afterChunk?.();
    }
  }
  for (const { rows, pipe } of pipeline.locals) if (rows.length) await pipe.push(rows);
  for (const pipe of pipeline.sources.values()) await pipe.flush();
  for (const { pipe } of pipeline.locals) await pipe.flush();
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
          await next.push(rows);
        },
        flush: () => next.flush(),
      };
    case 'aggregate':
    case 'dedupe': {
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
