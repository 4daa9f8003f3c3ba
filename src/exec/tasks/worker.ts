/**
 * A task worker (exec/tasks/pool.ts): a thread that runs a query's per-row steps — decoding, expressions,
 * encoding, the watermark's event-time statistics — on the chunks the query's thread sends it.
 *
 * It gets the stateless part of the plan as data, analyzes it itself (expressions compile to closures, which
 * cannot be sent), and checks that it came to the same stages and the same output schema as the query's
 * thread; if not (a schema registered in between, say), it refuses and the query runs those steps itself.
 * Requests are handled one after another, in the order they came, and answered in that order.
 */
import { parentPort } from 'node:worker_threads';
// The modules that register functions (from_avro, window, …), as the query's thread has them.
import '../../expr/functions.js';
import '../../expr/window.js';
import '../../serde/avro.js';
import { analyze, type AggregateStage, type Analyzed } from '../../plan/analyzer.js';
import { routeRow, type RowRouting } from '../operators/aggregationRows.js';
import type { PartialAggregate } from '../operators/aggregationState.js';
import { planFromData, typeFromData, typeToData, valueToData, type Portable } from '../../plan/portable.js';
import { sourceSchema } from '../../sources/schema.js';
import type { EvalContext } from '../../expr/compile.js';
import type { RecordError } from '../../expr/values.js';
import { StructType, type Row } from '../../types/index.js';
import { observeEventTimes, type EventTimeStats } from '../eventTime.js';
import { applyRows } from '../rows.js';
import { packer, unpacker, type PackedRows } from './wire.js';

export type TaskRequest =
  /**
   * `keep`: the only columns to send back (those the next operator reads); all when absent. `aggregate`: the
   * plan through the aggregation that follows the steps, for chunks to be pre-aggregated (`run.agg`).
   */
  | { type: 'init'; plan: Portable; expect: { schema: Portable; stages: string[] }; keep?: string[]; aggregate?: Portable; batchTimestampMs: number }
  /** `agg`: pre-aggregate the chunk with this batch's routing, and send back partial buffers instead of rows. */
  | { type: 'run'; seq: number; rows: PackedRows; batchTimestampMs: number; agg?: RowRouting };

/** A row a step refused: by its index in the chunk (first step), or the row itself as data (later steps). */
export interface BadRow {
  stage: number;
  index?: number;
  row?: Portable;
  message: string;
  reason: string;
}

export type TaskReply =
  | { type: 'ready' }
  | { type: 'refused'; reason: string }
  | { type: 'done'; seq: number; rows: PackedRows; bad: BadRow[]; eventTime: Array<EventTimeStats | null> }
  /** A pre-aggregated chunk: PartialAggregate with its values as plan data (valueToData). */
  | { type: 'partial'; seq: number; partial: Portable; bad: BadRow[]; eventTime: Array<EventTimeStats | null> }
  | { type: 'failed'; seq: number; message: string };

const port = parentPort!;
const ctx: EvalContext = { batchTimestampMs: 0 };
let analyzed: Analyzed | undefined;
let aggregate: AggregateStage | undefined;
let input: (p: PackedRows) => Row[] = () => [];
let output: ReturnType<typeof packer> = () => ({ packed: { n: 0, cols: [] }, transfer: [] });
let transfer: ArrayBuffer[] = [];

async function init(m: Extract<TaskRequest, { type: 'init' }>): Promise<TaskReply> {
  ctx.batchTimestampMs = m.batchTimestampMs;
  const a = await analyze(planFromData(m.plan), ctx);
  if (a.leaf.kind !== 'source') return { type: 'refused', reason: `its plan reads a ${a.leaf.kind}, not a stream (internal error)` };
  const kinds = a.stages.map((s) => s.kind);
  if (kinds.join() !== m.expect.stages.join()) {
    return { type: 'refused', reason: `it compiled the steps to [${kinds.join(', ')}], the query's thread to [${m.expect.stages.join(', ')}]` };
  }
  const mine = JSON.stringify(typeToData(a.schema));
  if (mine !== JSON.stringify(m.expect.schema)) {
    return {
      type: 'refused',
      reason: `its output schema ${a.schema.simpleString()} differs from the query's ${typeFromData(m.expect.schema).simpleString()} (a schema changed in the registry since the query started?)`,
    };
  }
  analyzed = a;
  if (m.aggregate !== undefined) {
    const withAgg = await analyze(planFromData(m.aggregate), ctx);
    const last = withAgg.stages[withAgg.stages.length - 1];
    if (withAgg.stages.length !== a.stages.length + 1 || last?.kind !== 'aggregate') {
      return { type: 'refused', reason: `the aggregation compiled to [${withAgg.stages.map((s) => s.kind).join(', ')}]` };
    }
    aggregate = last;
  }
  input = unpacker(sourceSchema(a.leaf.spec));
  const keep = m.keep && new Set(m.keep);
  output = packer(keep ? new StructType(a.schema.fields.filter((f) => keep.has(f.name))) : a.schema);
  return { type: 'ready' };
}

async function run(m: Extract<TaskRequest, { type: 'run' }>): Promise<TaskReply> {
  ctx.batchTimestampMs = m.batchTimestampMs;
  const chunk = input(m.rows);
  let rows = chunk;
  const bad: BadRow[] = [];
  const eventTime: Array<EventTimeStats | null> = [];
  for (let i = 0; i < analyzed!.stages.length; i++) {
    const stage = analyzed!.stages[i]!;
    if (stage.kind === 'map') {
      let indexOf: Map<Row, number> | undefined;
      rows = await applyRows(rows, stage.fn, (row: Row, e: RecordError) => {
        if (i === 0) {
          indexOf ??= new Map(chunk.map((r, j) => [r, j]));
          bad.push({ stage: i, index: indexOf.get(row)!, message: e.message, reason: e.reason });
        } else bad.push({ stage: i, row: valueToData(row, 'row'), message: e.message, reason: e.reason });
      });
    } else if (stage.kind === 'watermark') {
      // The same statistics as planRunner's watermark stage, per chunk; the query's thread adds them up.
      const s = observeEventTimes(stage, rows);
      eventTime.push(s.count ? s : null);
    } else throw new Error(`A task worker cannot run a ${stage.kind} stage (internal error).`);
  }
  if (m.agg && aggregate) return { type: 'partial', seq: m.seq, partial: preAggregate(aggregate, rows, m.agg), bad, eventTime };
  const out = output(rows);
  transfer = out.transfer;
  return { type: 'done', seq: m.seq, rows: out.packed, bad, eventTime };
}

/** A chunk aggregated on its own: per group, the aggregates' buffers over the chunk's rows (in row order). */
function preAggregate(stage: AggregateStage, rows: Row[], routing: RowRouting): Portable {
  const groups = new Map<string, { keyValues: unknown[]; time: number | null; buffers: unknown[] }>();
  const p: PartialAggregate = { keys: [], keyValues: [], times: [], buffers: [], late: [], noTime: 0 };
  const aggs = stage.aggs;
  for (const row of rows) {
    routeRow(stage, row, routing, {
      group(key, keyValues, time, r) {
        let g = groups.get(key);
        if (!g) groups.set(key, (g = { keyValues, time, buffers: aggs.map((a) => a.init()) }));
        for (let i = 0; i < aggs.length; i++) g.buffers[i] = aggs[i]!.update(g.buffers[i], r);
      },
      late: (r) => void p.late.push(r),
      noTime: () => void p.noTime++,
    });
  }
  for (const [key, g] of groups) {
    p.keys.push(key);
    p.keyValues.push(g.keyValues);
    p.times.push(g.time);
    p.buffers.push(g.buffers);
  }
  return valueToData(p, 'partial aggregate');
}

// One request at a time, in order: a chunk that waits for I/O (a schema fetch) must not be overtaken.
let queue: Promise<void> = Promise.resolve();
port.on('message', (m: TaskRequest) => {
  queue = queue.then(async () => {
    let reply: TaskReply;
    try {
      reply = m.type === 'init' ? await init(m) : await run(m);
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      reply = m.type === 'init' ? { type: 'refused', reason: `it could not analyze the steps: ${message}` } : { type: 'failed', seq: m.seq, message };
    }
    port.postMessage(reply, transfer);
    transfer = [];
  });
});
