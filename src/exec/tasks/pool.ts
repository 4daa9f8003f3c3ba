/**
 * Tasks: a query's per-row steps in worker threads (`sluice.sql.streaming.tasks`).
 *
 * Spark splits a batch into tasks, one per Kafka partition, and runs them on executor cores. Sluice's query
 * thread reads a batch in chunks (a few thousand records of one partition at a time, sources/source.ts) and
 * hands each chunk to a worker, which runs the steps between the source and the first stateful operator (or
 * the sink): Avro/JSON decoding, expressions, filters, encoding, the watermark's event-time statistics. While
 * the workers compute, the query's thread reads the next chunks and writes finished ones to the sink.
 *
 * Results are taken back **in the order the chunks were read**, so everything after the tasks — stateful
 * operators, the sink, dead letters — sees exactly the rows, in exactly the order, that running the steps in
 * the query's thread would give (tests/unit/tasks.test.ts checks it). That is stricter than Spark, which
 * keeps order only within a partition; it costs little because a chunk is the unit of work.
 *
 * The query's thread keeps everything else: offsets and the logs, Kafka reads and writes (librdkafka
 * clients live in one thread), state, commits. A chunk smaller than `sluice.sql.streaming.tasks.minRows`
 * runs in the query's thread: a worker's round trip costs more than a few rows' work, and small batches are
 * about latency. Workers start in the background; until they are ready, chunks run in the query's thread.
 */
import { availableParallelism } from 'node:os';
import { startWorkerScript } from '../../util/worker.js';
import { analyze, type Analyzed } from '../../plan/analyzer.js';
import type { LogicalPlan } from '../../plan/logical.js';
import { NotPortable, planToData, statelessPrefix, typeToData, valueFromData, type Portable } from '../../plan/portable.js';
import { canPreAggregate, type RowRouting } from '../operators/aggregationRows.js';
import type { PartialAggregate } from '../operators/aggregationState.js';
import type { EvalContext } from '../../expr/compile.js';
import { RecordError } from '../../expr/values.js';
import { sourceSchema } from '../../sources/schema.js';
import { StructType, type Row } from '../../types/index.js';
import type { BatchPipelineContext, EventTimeStats, Pipe } from '../planRunner.js';
import { packer, unpacker, type PackedRows } from './wire.js';
import type { TaskReply, TaskRequest } from './worker.js';

export const TASKS_CONF = 'sluice.sql.streaming.tasks';
export const TASKS_MIN_ROWS_CONF = 'sluice.sql.streaming.tasks.minRows';
const DEFAULT_MIN_ROWS = 1000;
/** Of the chunk that starts the workers, how many rows run in the query's thread while they start. */
const FIRST_ROWS_HERE = 1000;

/** The number of task workers `conf` asks for: a whole number ≥ 0 (0 = none), or `auto` (the default): one per core. */
export function taskWorkers(conf: Record<string, string | undefined>): number {
  const v = conf[TASKS_CONF] ?? 'auto';
  if (v === 'auto') return availableParallelism() > 1 ? availableParallelism() : 0;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    throw new Error(`${TASKS_CONF} must be "auto" (one worker per core) or a whole number of worker threads (0 = none), got "${v}".`);
  }
  return n;
}


type Done = Extract<TaskReply, { type: 'done' }>;
type PartialReply = Extract<TaskReply, { type: 'partial' }>;

class TaskWorker {
  private readonly worker = startWorkerScript(new URL('./worker.js', import.meta.url));
  private readonly waiting: Array<{ resolve: (r: TaskReply) => void; reject: (e: Error) => void }> = [];
  private failure: Error | undefined;
  /** Chunks sent and not answered yet. */
  inFlight = 0;

  constructor() {
    this.worker.on('message', (m: TaskReply) => {
      this.inFlight = Math.max(0, this.inFlight - 1);
      this.waiting.shift()?.resolve(m);
    });
    const fail = (e: Error): void => {
      this.failure ??= e;
      for (const w of this.waiting.splice(0)) w.reject(this.failure);
    };
    this.worker.on('error', (e) => fail(new Error(`A task worker failed: ${e.message}`)));
    this.worker.on('exit', (code) => fail(new Error(`A task worker exited (code ${code}).`)));
  }

  request(m: TaskRequest, transfer: ArrayBuffer[] = []): Promise<TaskReply> {
    if (this.failure) return Promise.reject(this.failure);
    this.inFlight++;
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.worker.postMessage(m, transfer);
    });
  }

  stop(): Promise<number> {
    return this.worker.terminate();
  }
}

/**
 * The task workers of one query: started when the query starts, stopped when it stops. `pipe()` gives each
 * batch the pipe its source's rows go into.
 */
export class TaskPool {
  private workers: TaskWorker[] = [];
  private next = 0;
  private ready: Promise<void> | undefined;
  private stopped = false;
  private refused: string | undefined;
  /** The aggregation (operator id) the workers can pre-aggregate for, if any. */
  aggregateId: number | undefined;
  /** Chunks run so far: in workers, and in the query's thread. */
  private chunks = { workers: 0, here: 0, partial: 0 };

  private constructor(
    private readonly stages: number,
    /** The full plan's ids of the watermark stages among those steps, in order. */
    private readonly watermarkIds: number[],
    private readonly minRows: number,
    private readonly toWorker: ReturnType<typeof packer>,
    private readonly fromWorker: (p: PackedRows) => Row[],
    private readonly requested: number,
    private readonly init: TaskRequest,
    private readonly log: (line: string) => void,
  ) {}

  /**
   * Starts the workers, once: when the first chunk large enough for them comes (a query of small batches
   * never pays for threads). Until they are ready, chunks run in the query's thread.
   */
  private start(): Promise<void> {
    if (this.ready) return this.ready;
    let starting: TaskWorker[];
    try {
      starting = Array.from({ length: this.requested }, () => new TaskWorker());
    } catch (e) {
      // No worker script (a bundled application, say): the steps run in the query's thread.
      this.refused = `no worker thread could start (${(e as Error).message})`;
      this.log(`WARN Task workers did not start; the query's per-row steps run in its own thread: ${(e as Error).message}`);
      return (this.ready = Promise.resolve());
    }
    const drop = (): void => void Promise.allSettled(starting.map((w) => w.stop()));
    this.ready = Promise.all(starting.map((w) => w.request(this.init))).then(
      (replies) => {
        const refused = replies.find((r): r is Extract<TaskReply, { type: 'refused' }> => r.type === 'refused');
        if (refused) {
          this.refused = refused.reason;
          this.log(`WARN Task workers refused this query's per-row steps, which run in the query's thread instead: ${refused.reason}.`);
          drop();
        } else if (this.stopped) drop();
        else this.workers = starting;
      },
      (e: Error) => {
        this.refused = e.message;
        this.log(`WARN Task workers did not start; the query's per-row steps run in its own thread: ${e.message}`);
        drop();
      },
    );
    return this.ready;
  }

  /**
   * A pool for the query `plan` (analyzed as `analyzed`), or undefined with nothing started when it has no
   * steps that can run in workers; `why` hears the reason.
   */
  static async create(
    plan: LogicalPlan,
    analyzed: Analyzed,
    ctx: EvalContext,
    /** `prune`: send back only the columns the next operator reads (not when late rows are kept whole). */
    settings: { workers: number; minRows?: number; prune?: boolean },
    log: (line: string) => void,
    why: (reason: string) => void = () => {},
  ): Promise<TaskPool | undefined> {
    if (settings.workers < 1) return undefined;
    const prefix = statelessPrefix(plan);
    if ('reason' in prefix) return void why(prefix.reason);
    let data;
    try {
      data = planToData(prefix.plan);
    } catch (e) {
      if (e instanceof NotPortable) return void why(e.message);
      throw e;
    }
    // The steps as this thread compiles them on their own: they must be the first stages of the query's source.
    const own = await analyze(prefix.plan, ctx);
    if (analyzed.leaf.kind !== 'source' || own.leaf.kind !== 'source') return void why('the plan does not read one stream');
    const first = analyzed.stages.slice(0, own.stages.length);
    if (first.map((s) => s.kind).join() !== own.stages.map((s) => s.kind).join() || first.some((s) => s.kind !== 'map' && s.kind !== 'watermark')) {
      return void why('the per-row steps do not line up with the query plan (internal)');
    }
    const watermarkIds = first.flatMap((s) => (s.kind === 'watermark' ? [s.id] : []));
    // Only the columns the aggregation reads come back from the workers (Spark's column pruning, at the one
    // place it pays here: what crosses threads). Rows run in this thread keep all theirs, which is harmless.
    const wanted = settings.prune !== false && prefix.needed && new Set(prefix.needed.map((n) => n.toLowerCase()));
    const back = wanted ? new StructType(own.schema.fields.filter((f) => wanted.has(f.name.toLowerCase()))) : own.schema;
    // The aggregation right after the steps, pre-aggregated by the workers chunk by chunk when its buffers
    // are plain data (Spark's partial aggregation before the shuffle).
    const next = analyzed.stages[own.stages.length];
    let aggregate: { id: number; data: Portable } | undefined;
    if (prefix.aggregate && next?.kind === 'aggregate' && canPreAggregate(next)) {
      try {
        aggregate = { id: next.id, data: planToData(prefix.aggregate) };
      } catch (e) {
        if (!(e instanceof NotPortable)) throw e;
      }
    }
    const init: TaskRequest = {
      type: 'init',
      plan: data,
      expect: { schema: typeToData(own.schema), stages: own.stages.map((s) => s.kind) },
      ...(wanted ? { keep: back.fieldNames } : {}),
      ...(aggregate ? { aggregate: aggregate.data } : {}),
      batchTimestampMs: ctx.batchTimestampMs,
    };
    const pool = new TaskPool(own.stages.length, watermarkIds, settings.minRows ?? DEFAULT_MIN_ROWS, packer(sourceSchema(own.leaf.spec)), unpacker(back), settings.workers, init, log);
    pool.aggregateId = aggregate?.id;
    return pool;
  }

  /** For explain(). */
  describe(): string {
    if (this.refused) return `per-row steps in the query's thread (task workers: ${this.refused})`;
    const state = this.workers.length ? 'running' : this.ready ? 'starting' : 'started by the first chunk that size';
    return (
      `${this.requested} worker thread(s) (${state}) run the source's first ${this.stages} stage(s) on chunks of ${this.minRows}+ rows; ` +
      `chunks so far: ${this.chunks.workers} in workers (${this.chunks.partial} pre-aggregated), ${this.chunks.here} in the query's thread`
    );
  }

  /** How many of the source's first stages the tasks run. */
  get stageCount(): number {
    return this.stages;
  }

  /** Starts the workers now and waits until they are up (or known not to be): for tests and benchmarks. */
  async whenReady(): Promise<number> {
    await this.start();
    return this.workers.length;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const ws = this.workers;
    this.workers = [];
    await Promise.allSettled(ws.map((w) => w.stop()));
  }

  private pick(): TaskWorker | undefined {
    const ws = this.workers;
    if (!ws.length) return undefined;
    let best = ws[this.next++ % ws.length]!;
    for (const w of ws) if (w.inFlight < best.inFlight) best = w;
    return best;
  }

  /**
   * The pipe a batch's source rows enter. `inline` runs the same steps in this thread (the query's own compiled
   * stages, ending in `next`'s collector); `next` takes the steps' output, in read order.
   */
  pipe(
    inline: { push(rows: Row[]): Promise<Row[]> },
    next: Pipe,
    ctx: BatchPipelineContext,
    batchTimestampMs: number,
    /** This batch's aggregation, when the workers pre-aggregate for it: its routing, and where partials go. */
    partial?: { routing: RowRouting; absorb(p: PartialAggregate): void },
  ): Pipe {
    let tail: Promise<void> = Promise.resolve();
    let failure: unknown;
    let seq = 0;
    const pending: Array<Promise<void>> = [];
    const limit = Math.max(2, this.requested * 2);
    const settle = (r: Done | PartialReply, rows: Row[]): void => {
      // Dead letters in the order the query's thread would have met them; the input row is still here.
      for (const b of r.bad) {
        const row = b.index !== undefined ? rows[b.index]! : (valueFromData(b.row) as Row);
        ctx.onBad(row, new RecordError(b.message, b.reason));
      }
      r.eventTime.forEach((s, i) => {
        const id = this.watermarkIds[i]!;
        const acc: EventTimeStats = ctx.eventTime.get(id) ?? { min: Infinity, max: -Infinity, sum: 0, count: 0 };
        if (s) {
          acc.min = Math.min(acc.min, s.min);
          acc.max = Math.max(acc.max, s.max);
          acc.sum += s.sum;
          acc.count += s.count;
        }
        ctx.eventTime.set(id, acc);
      });
    };
    const enqueue = (step: () => Promise<void>): void => {
      const p = (tail = tail.then(() => (failure === undefined ? step() : undefined)).catch((e: unknown) => void (failure ??= e)));
      pending.push(p);
      void p.then(() => pending.splice(pending.indexOf(p), 1));
    };
    return {
      push: async (rows) => {
        if (failure !== undefined) throw failure;
        let w: TaskWorker | undefined;
        if (rows.length >= this.minRows && rows.length > 0) {
          if (!this.ready) {
            // The first chunk large enough starts the workers. Its first rows run here at once (the query's first
            // output should not wait for threads to start); the rest waits for the workers, which is sooner
            // than running thousands of rows here.
            void this.start();
            const head = rows.slice(0, FIRST_ROWS_HERE);
            if (head.length < rows.length) {
              this.chunks.here++;
              enqueue(async () => {
                const out = await inline.push(head);
                if (out.length) await next.push(out);
              });
              rows = rows.slice(head.length);
              await this.ready;
            }
          }
          w = this.pick();
        }
        if (!w) {
          this.chunks.here++;
          enqueue(async () => {
            const out = await inline.push(rows);
            if (out.length) await next.push(out);
          });
        } else {
          const n = seq++;
          this.chunks.workers++;
          const { packed, transfer } = this.toWorker(rows);
          const result = w.request({ type: 'run', seq: n, rows: packed, batchTimestampMs, ...(partial ? { agg: partial.routing } : {}) }, transfer);
          result.catch(() => {}); // its failure is met in order, in the step below
          enqueue(async () => {
            const r = await result;
            if (r.type === 'failed') throw new Error(r.message);
            if (r.type === 'partial' && partial) {
              this.chunks.partial++;
              settle(r, rows);
              partial.absorb(valueFromData(r.partial) as PartialAggregate);
              return;
            }
            if (r.type !== 'done') throw new Error(`A task worker answered ${r.type} to a chunk (internal error).`);
            settle(r, rows);
            const out = this.fromWorker(r.rows);
            if (out.length) await next.push(out);
          });
        }
        // Bounded: at most `limit` chunks read ahead of what the sink has taken.
        while (pending.length >= limit) await Promise.race(pending);
        if (failure !== undefined) throw failure;
      },
      flush: async () => {
        await tail;
        if (failure !== undefined) throw failure;
        await next.flush();
      },
      abandon: async () => {
        failure ??= new Error('The batch was abandoned.'); // chunks not begun yet are skipped
        await tail;
      },
    };
  }
}
