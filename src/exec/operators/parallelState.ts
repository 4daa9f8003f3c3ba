/**
 * Stateful partitions in worker threads, for aggregations (`sluice.sql.streaming.aggregation.workers`).
 *
 * The query's thread keeps the row side — evaluating grouping keys and aggregate arguments, dropping late
 * rows (`routeRows`) — because expressions are closures that do not cross threads. Each worker owns the
 * partitions p with p mod workers = its index: their stores, files and key-time cache, and runs the state side
 * (`updateState`, `emitAndEvict`) for them, all workers at once. What crosses threads per batch is one structured clone of
 * the keys, event times and argument values, and the finished values of the groups emitted. The checkpoint
 * layout is the same as in one thread, so the number of workers may change between runs.
 *
 * It pays when the state side dominates (many keys, large state) and cores are free; with small state the
 * copies cost about what they save (docs/benchmarks.md). Session windows and deduplication stay in the
 * query's thread.
 */
import type { Row } from '../../types/index.js';
import { startWorkerScript } from '../../util/worker.js';
import type { AggregateStage } from '../../plan/analyzer.js';
import type { OutputMode } from '../../sinks/sink.js';
import { parseDataType } from '../../types/index.js';
import type { AggregationStateBackend } from './aggregation.js';
import type { KeyedRows, StateOutput } from './aggregationState.js';
import { decodeState, encodeState } from '../../state/codec.js';
import { partitionOf, type OperatorStateMetrics, type StateLayout } from './operatorState.js';
import type { WorkerRequest, WorkerSpec } from './stateWorker.js';

type Metrics = OperatorStateMetrics;

/** Why an aggregation cannot run in workers, or undefined when it can. */
export function notParallel(stage: AggregateStage): string | undefined {
  if (stage.sessionKey) return 'session windows merge sessions across partitions of a group in one pass';
  for (const a of stage.aggs) {
    // Values cross as the state codec's text (Buffers, decimals and µs timestamps keep their types).
    if (!a.call.argType) continue;
    const type = a.call.argType.simpleString();
    // The worker rebinds the aggregate from the type's name.
    try {
      if (parseDataType(type).simpleString() !== type) return `${a.name}'s argument type ${type} does not survive the trip to a worker`;
    } catch {
      return `${a.name}'s argument type ${type} does not survive the trip to a worker`;
    }
  }
  return undefined;
}

class StateWorker {
  private readonly worker = startWorkerScript(new URL('./stateWorker.js', import.meta.url));
  private readonly pending: Array<{ resolve: (v: unknown) => void; reject: (e: Error) => void }> = [];
  private failure: Error | undefined;

  constructor() {
    this.worker.on('message', (m: { ok: boolean; result?: unknown; message?: string }) => {
      const p = this.pending.shift();
      if (!p) return;
      if (m.ok) p.resolve(m.result);
      else p.reject(new Error(`State worker: ${m.message}`));
    });
    const fail = (e: Error): void => {
      this.failure = e;
      for (const p of this.pending.splice(0)) p.reject(e);
    };
    this.worker.on('error', (e) => fail(new Error(`State worker failed: ${e.message}`)));
    this.worker.on('exit', (code) => fail(new Error(`State worker exited (code ${code}).`)));
  }

  call<T>(m: WorkerRequest): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage(m);
    });
  }

  async close(): Promise<void> {
    if (!this.failure) await this.call({ type: 'close' }).catch(() => {});
    this.worker.removeAllListeners('exit');
    await this.worker.terminate();
  }
}

/** An aggregation's state, spread over worker threads by partition. Same role as LocalAggregationState. */
export class ParallelAggregationState implements AggregationStateBackend {
  private readonly workers: StateWorker[];
  private readonly ready: Promise<unknown>;
  private lastMetrics: Metrics | undefined;
  readonly partitions: number;

  constructor(
    private readonly stage: AggregateStage,
    layout: StateLayout,
    workers: number,
  ) {
    const { partitions, kind } = layout;
    this.partitions = partitions;
    const n = Math.min(workers, partitions);
    this.workers = Array.from({ length: n }, () => new StateWorker());
    this.ready = Promise.all(
      this.workers.map((w, i) => {
        const owned = Array.from({ length: partitions }, (_, p) => p).filter((p) => p % n === i);
        const spec: WorkerSpec = {
          partitions,
          owned,
          dirs: Object.fromEntries(owned.map((p) => [p, layout.dirOf(p)!])),
          ...(layout.minBatchesToRetain !== undefined ? { minBatchesToRetain: layout.minBatchesToRetain } : {}),
          kind,
          aggs: stage.aggs.map((a) => ({ fn: a.call.fn, options: a.call.options, name: a.name, ...(a.call.argType ? { argType: a.call.argType.simpleString() } : {}) })),
          ...(stage.eventTimeKey ? { eventTimeKey: stage.eventTimeKey } : {}),
        };
        return w.call({ type: 'init', spec });
      }),
    );
    // A failed start surfaces at the first load(); until then it must not count as an unhandled rejection.
    this.ready.catch(() => {});
  }

  get workerCount(): number {
    return this.workers.length;
  }

  async load(version: number): Promise<void> {
    await this.ready;
    await Promise.all(this.workers.map((w) => w.call({ type: 'load', version })));
  }

  describe(): string {
    return `${this.partitions} partitions in ${this.workers.length} worker threads`;
  }

  /** A chunk's rows, split by the worker that owns their partition; the aggregates' arguments evaluated here. */
  async update(keyed: KeyedRows): Promise<void> {
    const n = this.workers.length;
    const parts = this.workers.map(() => ({ keys: [] as string[], times: [] as Array<number | null>, args: [] as unknown[][] }));
    const argEvals = this.stage.aggs.map((a) => a.call.arg);
    const { keys, times, rows: keyedRows } = keyed;
    let lastRow: Row | undefined;
    let lastArgs: unknown[] = [];
    for (let j = 0; j < keys.length; j++) {
      const row = keyedRows[j]!;
      // A row in several sliding windows is evaluated once.
      if (row !== lastRow) {
        lastArgs = argEvals.map((ev) => (ev ? ev(row) : undefined));
        lastRow = row;
      }
      const part = parts[partitionOf(keys[j]!, this.partitions) % n]!;
      part.keys.push(keys[j]!);
      part.times.push(times[j]!);
      part.args.push(lastArgs);
    }
    // Argument values cross as the state codec's text: a structured clone would turn decimals, µs timestamps
    // and Buffers into plain objects.
    await Promise.all(
      this.workers.map((w, i) => {
        const { keys: k, times: t, args } = parts[i]!;
        return k.length ? w.call({ type: 'update', keys: k, times: t, args: encodeState(args) }) : undefined;
      }),
    );
  }

  /** The end of the batch, in every worker at once. */
  async finish(opts: { evictionMs: number; outputMode: OutputMode; changed: string[] }): Promise<StateOutput> {
    const n = this.workers.length;
    const changed = this.workers.map(() => [] as string[]);
    for (const key of opts.changed) changed[partitionOf(key, this.partitions) % n]!.push(key);
    const outs = await Promise.all(
      this.workers.map(async (w, i) =>
        decodeState(await w.call<string>({ type: 'finish', evictionMs: opts.evictionMs, outputMode: opts.outputMode, changed: changed[i]! })) as StateOutput,
      ),
    );
    return { updated: outs.flatMap((o) => o.updated), scanned: outs.flatMap((o) => o.scanned) };
  }

  async commit(): Promise<void> {
    const ms = await Promise.all(this.workers.map((w) => w.call<Metrics>({ type: 'commit' })));
    const total = (f: (m: Metrics) => number): number => ms.reduce((n, m) => n + f(m), 0);
    this.lastMetrics = {
      numRowsTotal: total((m) => m.numRowsTotal),
      numRowsUpdated: total((m) => m.numRowsUpdated),
      numRowsRemoved: total((m) => m.numRowsRemoved),
      memoryUsedBytes: total((m) => m.memoryUsedBytes),
      // The workers commit at once: the operator waited for the slowest.
      commitTimeMs: Math.max(...ms.map((m) => m.commitTimeMs)),
      numShufflePartitions: this.partitions,
      numStateStoreInstances: total((m) => m.numStateStoreInstances),
    };
  }

  metrics(): Metrics {
    return (
      this.lastMetrics ?? {
        numRowsTotal: 0, numRowsUpdated: 0, numRowsRemoved: 0, memoryUsedBytes: 0, commitTimeMs: 0,
        numShufflePartitions: this.partitions, numStateStoreInstances: this.partitions,
      }
    );
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.close()));
  }
}
