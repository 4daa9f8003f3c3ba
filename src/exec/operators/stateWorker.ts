/**
 * A worker thread that owns some state partitions of one aggregation (parallelState.ts). It receives, per
 * chunk of a batch, the group keys, their event times and the aggregates' pre-evaluated arguments for its
 * partitions, and at the end of the batch the eviction watermark; it runs the same state side as the
 * query's thread (aggregationState.ts) on its own stores and files.
 * Requests are answered in order: `{ ok: true, result }` or `{ ok: false, message }`.
 */
import { parentPort } from 'node:worker_threads';
import { bindAggregate, type AggregateImpl } from '../../expr/aggregates.js';
import type { Expr } from '../../expr/column.js';
import type { StateStoreProviderKind } from '../../state/store.js';
import { StructType, parseDataType } from '../../types/index.js';
import type { OutputMode } from '../../sinks/sink.js';
import type { AggregateStage } from '../../plan/analyzer.js';
import { emitAndEvict, timeOfKeyFn, updateState } from './aggregationState.js';
import { decodeState, encodeState } from '../../state/codec.js';
import { OperatorState } from './operatorState.js';

/** How a worker rebuilds an aggregation: its aggregates by name, over arguments `_a0`, `_a1`, … */
export interface WorkerSpec {
  partitions: number;
  owned: number[];
  dirs: Record<number, string>;
  kind: StateStoreProviderKind;
  minBatchesToRetain?: number;
  aggs: Array<{ fn: string; options: Record<string, unknown>; name: string; argType?: string }>;
  eventTimeKey?: AggregateStage['eventTimeKey'];
}

export type WorkerRequest =
  | { type: 'init'; spec: WorkerSpec }
  | { type: 'load'; version: number }
  /** `args`: each keyed row's aggregate arguments, as the state codec's text (values keep their types). */
  | { type: 'update'; keys: string[]; times: Array<number | null>; args: string }
  | { type: 'finish'; evictionMs: number; outputMode: OutputMode; changed: string[] }
  | { type: 'commit' }
  | { type: 'close' };

let state: OperatorState | undefined;
let aggs: AggregateImpl[] = [];
let argNames: string[] = [];
let timeOfKey: ((key: string) => number | null) | undefined;

function init(spec: WorkerSpec): void {
  argNames = spec.aggs.map((_, i) => `_a${i}`);
  let schema = new StructType();
  spec.aggs.forEach((a, i) => {
    if (a.argType) schema = schema.add(argNames[i]!, parseDataType(a.argType));
  });
  aggs = spec.aggs.map((a, i) => {
    const call: Expr = { kind: 'fn', name: a.fn, args: a.argType ? [{ kind: 'col', name: argNames[i]! }] : [], options: a.options };
    return bindAggregate({ kind: 'alias', child: call, name: a.name }, schema, { batchTimestampMs: 0 });
  });
  timeOfKey = timeOfKeyFn(spec.eventTimeKey);
  state = new OperatorState(
    { dirOf: (p) => spec.dirs[p], partitions: spec.partitions, kind: spec.kind, ...(spec.minBatchesToRetain !== undefined ? { minBatchesToRetain: spec.minBatchesToRetain } : {}) },
    spec.owned,
  );
}

function handle(m: WorkerRequest): unknown {
  switch (m.type) {
    case 'init':
      init(m.spec);
      return null;
    case 'load':
      state!.load(m.version);
      return null;
    case 'update': {
      const rows = (decodeState(m.args) as unknown[][]).map((values) => {
        const row: Record<string, unknown> = {};
        for (let i = 0; i < argNames.length; i++) row[argNames[i]!] = values[i];
        return row;
      });
      updateState(state!, aggs, { keys: m.keys, times: m.times, rows });
      return null;
    }
    case 'finish':
      // Back as the codec's text too, so finished values (decimals, µs timestamps) keep their types.
      return encodeState(emitAndEvict(state!, aggs, { evictionMs: m.evictionMs, outputMode: m.outputMode, changed: m.changed, ...(timeOfKey ? { timeOfKey } : {}) }));
    case 'commit':
      state!.commit();
      return state!.metrics();
    case 'close':
      state?.close();
      return null;
  }
}

parentPort!.on('message', (m: WorkerRequest) => {
  try {
    parentPort!.postMessage({ ok: true, result: handle(m) });
  } catch (e) {
    parentPort!.postMessage({ ok: false, message: e instanceof Error ? e.message : String(e) });
  }
});
