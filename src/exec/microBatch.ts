/**
 * The micro-batch loop (Spark's MicroBatchExecution), exactly the protocol of DESIGN §3:
 *  1. on start, read the checkpoint: a batch in offsets/ without its commits/ entry is re-run with the
 *     logged offsets and batch timestamp; otherwise the next batch is planned;
 *  2. plan: ask each source for its end offset; write offsets/N before reading any data (write-ahead);
 *  3. read, transform (per-row errors go to the dead-letter destination), hand the rows to the sink;
 *  4. write commits/N after the sink has accepted the batch.
 */
import type { StreamingQuery } from './streamingQuery.js';
import { randomUUID } from 'node:crypto';
import { Checkpoint, CheckpointError, MIN_BATCHES_TO_RETAIN_CONF, Offset, OffsetSeq, minBatchesToRetain } from '../checkpoint/checkpoint.js';
import type { EvalContext } from '../expr/compile.js';
import { RecordError } from '../expr/values.js';
import { LOCK_STALE_TIMEOUT_CONF, lockStaleTimeoutMs } from '../checkpoint/lock.js';
import { planRestart } from '../checkpoint/recovery.js';
import { allStages, sourceLeaves, statefulStages, type Analyzed } from '../plan/analyzer.js';
import { planString, type LogicalPlan } from '../plan/logical.js';
import { createSource } from '../sources/index.js';
import type { ReadLimit, Source } from '../sources/source.js';
import type { OutputMode, Sink } from '../sinks/sink.js';
import type { Row } from '../types/index.js';
import type { DeadLetter, DeadLetterWriter } from './deadLetter.js';
import type { StreamingQueryListener, StreamingQueryProgress, StreamingQueryStatus } from './progress.js';
import type { Trigger } from './trigger.js';
import { KafkaLateEventsWriter } from './lateEvents.js';
import { IncrementalExecution, createOperators } from './incremental.js';
import { parseDuration } from '../util/duration.js';
import { TASKS_CONF, TASKS_MIN_ROWS_CONF, TaskPool, taskWorkers } from './tasks/pool.js';
import type { LateRow, StateOperatorProgress } from './operators/statefulOperator.js';
import { buildPipeline, collector, runPipeline, type EventTimeStats, type Pipe } from './planRunner.js';
import { WatermarkTracker } from './watermarkTracker.js';
import { fault } from './faults.js';
import { ahead, diagnose, pendingFromProgress, type DiagnosisSnapshot, type Finding } from './diagnose.js';
import { QueryHistory, keptSourceOptions } from '../checkpoint/history.js';

export class StreamingQueryException extends Error {
  override name = 'StreamingQueryException';
}

export interface QuerySpec {
  name: string | null;
  plan: LogicalPlan;
  analyzed: Analyzed;
  ctx: EvalContext;
  checkpoint: Checkpoint;
  sink: Sink;
  outputMode: OutputMode;
  trigger: Trigger;
  deadLetters: (queryId: string) => DeadLetterWriter;
  /** `fail`: a bad record stops the query; `deadLetter` (default): it goes to the dead-letter destination. */
  onBadRecord: 'fail' | 'deadLetter';
  listeners: () => StreamingQueryListener[];
  log: (line: string) => void;
  /** Session settings at start (`sluice.sql.shuffle.partitions`, `sluice.sql.streaming.multipleWatermarkPolicy`). */
  conf: Record<string, string>;
  /** Where rows dropped by the watermark go, if anywhere (`lateEvents.topic`). */
  lateEvents?: (queryId: string) => KafkaLateEventsWriter;
}

const PARTITIONS_CONF = 'sluice.sql.shuffle.partitions';
const WATERMARK_POLICY_CONF = 'sluice.sql.streaming.multipleWatermarkPolicy';
const DEFAULT_PARTITIONS = '4';
/** `memory` (default) or `lmdb` (disk-backed, for state larger than memory); both read the same state files. */
const PROVIDER_CONF = 'sluice.sql.streaming.stateStore.provider';
/** Worker threads for aggregation state (exec/parallel.ts); 1 (default): the query's own thread. Not fixed by the checkpoint. */
const WORKERS_CONF = 'sluice.sql.streaming.aggregation.workers';

const PROGRESS_HISTORY = 100;
/** Spark's spark.sql.streaming.pollingDelay: how long a query with no new data waits before asking its sources again. */
const POLLING_DELAY_CONF = 'sluice.sql.streaming.pollingDelay';
const DEFAULT_POLLING_DELAY_MS = 10;
/** Spark's spark.sql.streaming.noDataProgressEventInterval (10 s): how often an idle query says so. */
const IDLE_EVENT_INTERVAL_MS = 10_000;

/** A running streaming query: its handle for the user (Spark's StreamingQuery). */
export class MicroBatchQuery implements StreamingQuery {
  readonly id: string;
  readonly runId = randomUUID();
  readonly name: string | null;
  readonly recentProgress: StreamingQueryProgress[] = [];
  /** The error that stopped the query, if one did. */
  exception: Error | null = null;
  status: StreamingQueryStatus = { message: 'Initializing sources', isDataAvailable: false, isTriggerActive: false };

  private stopping = false;
  private wake: (() => void) | undefined;
  private readonly done: Promise<void>;
  private readonly sources: Source[];
  private readonly deadLetterWriter: DeadLetterWriter;
  private readonly lateWriter: KafkaLateEventsWriter | undefined;
  /**
   * Resolvers of processAllAvailable() calls, with the number of triggers started before the call: only a
   * trigger started after it may resolve it (a clock would not do: a trigger that read the sources just
   * before the call can start in the same millisecond).
   */
  private readonly drainWaiters: Array<{ after: number; resolve: () => void; reject: (e: Error) => void }> = [];
  private triggers = 0;
  private lastTriggerStart = 0;
  /** The batch running now (diagnose(): a batch that has run too long). */
  private running: { batchId: number; startedAt: number } | undefined;
  /** The stateful operators and their per-batch watermarks; set when the loop starts. */
  private incremental: IncrementalExecution | undefined;
  /** Task workers for the per-row steps (exec/tasks/pool.ts), when the plan has steps they can run. */
  private tasks: TaskPool | undefined;
  /** Why the per-row steps run in the query's thread, if they do (explain()). */
  private tasksNote: string | undefined;
  private pollingDelayMs = DEFAULT_POLLING_DELAY_MS;
  private tracker!: WatermarkTracker;
  /** The watermark the last batch run by this process ran with: the next batch's watermark for late events. */
  private prevBatchWatermarkMs: number | undefined;
  /** The watermark the next batch runs with (diagnose()). */
  private nextWatermarkMs = 0;
  /** Each source's end offset of the last batch committed before this run started, when it resumed a checkpoint. */
  private resumedAt: Offset[] | undefined;
  private onTerminated: Array<() => void> = [];
  /** Runs and progress kept in the checkpoint (checkpoint/history.ts). */
  private readonly history: QueryHistory;
  /** When a listener last heard of this query (progress or idle): onQueryIdle comes at most every IDLE_EVENT_INTERVAL_MS. */
  private lastEventAt = Date.now();

  constructor(private readonly spec: QuerySpec) {
    this.id = spec.checkpoint.queryId();
    this.name = spec.name;
    const specs = sourceLeaves(spec.analyzed);
    if (!specs.length) throw new CheckpointError('A streaming query needs a streaming source.');
    this.sources = specs.map(createSource);
    this.deadLetterWriter = spec.deadLetters(this.id);
    this.lateWriter = spec.lateEvents?.(this.id);
    try {
      // One running query per checkpoint, across processes and hosts: a live holder fails this start now.
      spec.checkpoint.lock({ queryId: this.id, runId: this.runId, queryName: this.name }, { staleTimeoutMs: lockStaleTimeoutMs(spec.conf[LOCK_STALE_TIMEOUT_CONF]), log: spec.log });
    } catch (e) {
      void Promise.allSettled([...this.sources.map((s) => s.stop()), this.deadLetterWriter.stop(), this.lateWriter?.stop()]);
      throw e;
    }
    const startedAt = new Date().toISOString();
    this.history = new QueryHistory(spec.checkpoint.root);
    this.recordHistory(() =>
      this.history.runEvent({
        event: 'started',
        runId: this.runId,
        name: this.name,
        timestamp: startedAt,
        outputMode: spec.outputMode,
        trigger: spec.trigger,
        sources: specs.map((sp, i) => ({ description: this.sources[i]!.describe(), ...(sp.format === 'kafka' ? { options: keptSourceOptions(sp.options) } : {}) })),
        watermarkDelaysMs: allStages(spec.analyzed).flatMap((st) => (st.kind === 'watermark' ? [st.delayMs] : [])),
      }),
    );
    for (const l of spec.listeners()) l.onQueryStarted?.({ id: this.id, runId: this.runId, name: this.name, timestamp: startedAt });
    this.done = this.run();
  }

  get lastProgress(): StreamingQueryProgress | null {
    return this.recentProgress[this.recentProgress.length - 1] ?? null;
  }
  get isActive(): boolean {
    return !this.terminated;
  }
  private terminated = false;

  /** Resolves when the query stops; rejects with the query's error if it failed. With a timeout, resolves to whether it stopped. */
  async awaitTermination(timeoutMs?: number): Promise<boolean> {
    if (timeoutMs === undefined) {
      await this.done;
      if (this.exception) throw this.exception;
      return true;
    }
    const stopped = await Promise.race([this.done.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), timeoutMs).unref())]);
    if (stopped && this.exception) throw this.exception;
    return stopped;
  }

  /** Waits until every record available in the sources now has been processed and committed. For tests and lessons. */
  processAllAvailable(): Promise<void> {
    if (this.terminated) return this.exception ? Promise.reject(this.exception) : Promise.resolve();
    return new Promise((resolve, reject) => {
      this.drainWaiters.push({ after: this.triggers, resolve, reject });
      this.wake?.();
    });
  }

  /** Stops the query after the batch in progress (that batch completes and commits). */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.done;
  }

  /**
   * "Why is there no output?": findings, most likely first, each with its evidence and what to do — a failed
   * or stopped query, a missing topic or a pattern matching nothing, a checkpoint already past the data,
   * no new data, append mode waiting for the watermark (naming the window and the event time that closes
   * it), every row late, filtered or a dead letter, a long trigger interval (exec/diagnose.ts).
   */
  async diagnose(): Promise<Finding[]> {
    return diagnose(await this.diagnosisSnapshot());
  }

  /** What diagnose() looks at, gathered now; asks each source that can answer (Kafka) about its topics and offsets. */
  async diagnosisSnapshot(): Promise<DiagnosisSnapshot> {
    const cp = this.spec.checkpoint;
    const last = this.lastProgress;
    // A stopped query's sources are closed: ask fresh ones (closed again after).
    const asked = this.isActive ? this.sources : sourceLeaves(this.spec.analyzed).map(createSource);
    const sources = await Promise.all(
      this.sources.map(async (src, i) => {
        const inspection = await asked[i]!.inspect?.().catch(() => undefined);
        const position = (last?.sources[i]?.endOffset as Offset | undefined) ?? this.resumedAt?.[i] ?? cp.sourceStart(i);
        return {
          description: src.describe(),
          ...(inspection ? { inspection } : {}),
          ...(this.resumedAt ? { resumedAt: this.resumedAt[i] } : {}),
          ...(position !== undefined ? { position } : {}),
        };
      }),
    );
    if (asked !== this.sources) await Promise.allSettled(asked.map((src) => src.stop()));
    const delays = this.tracker?.delaysMs() ?? [];
    const policy = this.spec.conf[WATERMARK_POLICY_CONF] === 'max' ? 'max' : 'min';
    return {
      name: this.name ?? this.id,
      active: this.isActive,
      ...(this.exception ? { exception: this.exception.message } : {}),
      trigger: this.spec.trigger,
      outputMode: this.spec.outputMode,
      progress: [...this.recentProgress],
      sources,
      ...(delays.length ? { watermark: { nextMs: this.nextWatermarkMs, delaysMs: delays, policy } } : {}),
      ...(this.running && this.isActive ? { running: { batchId: this.running.batchId, sinceMs: Date.now() - this.running.startedAt, status: this.status.message } } : {}),
      // A stopped query's operators are closed (LMDB's environment with them): what they held is not asked.
      pending: this.isActive
        ? [...(this.incremental?.operators.values() ?? [])].flatMap((op) => op.pendingOutput?.() ?? [])
        : pendingFromProgress(this.lastProgress ?? undefined, delays.length > 0),
    };
  }

  /**
   * Records available in the sources beyond the last batch's end (Kafka: latest offset − position, summed over
   * partitions); undefined when no source can say. For status lines and monitors.
   */
  async lag(): Promise<number | undefined> {
    // One question at a time, whoever asks (a status line every few seconds, a monitor per page).
    return (this.lagInFlight ??= this.measureLag().finally(() => (this.lagInFlight = undefined)));
  }
  private lagInFlight: Promise<number | undefined> | undefined;
  private async measureLag(): Promise<number | undefined> {
    let total: number | undefined;
    for (const [i, src] of this.sources.entries()) {
      const inspection = await src.inspect?.().catch(() => undefined);
      const pos = this.lastProgress?.sources[i]?.endOffset ?? this.resumedAt?.[i];
      if (!inspection?.latest || pos === undefined) continue;
      total = (total ?? 0) + ahead(pos as Offset, inspection.latest, inspection.earliest);
    }
    return total;
  }

  /** The logical plan and how it runs. */
  explain(): string {
    return [
      '== Logical Plan ==',
      planString(this.spec.plan),
      '',
      '== Execution ==',
      `sources: ${this.sources.map((s) => s.describe()).join(', ')}`,
      `sink: ${this.spec.sink.describe()} (outputMode ${this.spec.outputMode}, trigger ${JSON.stringify(this.spec.trigger)})`,
      `checkpoint: ${this.spec.checkpoint.root}`,
      `late events: ${this.lateWriter?.describe() ?? 'dropped (counted as numRowsDroppedByWatermark)'}`,
      `dead letters: ${this.deadLetterWriter.describe()}${this.spec.onBadRecord === 'fail' ? ' (onBadRecord=fail: the query stops instead)' : ''}`,
      `tasks: ${this.tasks?.describe() ?? `per-row steps in the query's thread${this.tasksNote ? ` (${this.tasksNote})` : ''}`}`,
      ...[...(this.incremental?.operators.values() ?? [])].map((op) => `state operator ${op.id} (${op.name}): ${op.describe()}`),
    ].join('\n');
  }

  /** @internal Called by the manager to learn when this query ends. */
  whenTerminated(cb: () => void): void {
    if (this.terminated) cb();
    else this.onTerminated.push(cb);
  }

  private sleep(ms: number): Promise<void> {
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(t);
        this.wake = undefined;
        resolve();
      };
    });
  }

  private async run(): Promise<void> {
    try {
      await this.loop();
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      this.exception = err instanceof StreamingQueryException ? err : Object.assign(new StreamingQueryException(
        `Query ${this.name ?? this.id} [id = ${this.id}, runId = ${this.runId}] terminated with exception: ${err.message}`,
      ), { cause: err });
      this.spec.log(`ERROR ${this.exception.message}`);
    } finally {
      this.terminated = true;
      await this.incremental?.close();
      await this.tasks?.stop();
      this.status = { message: 'Stopped', isDataAvailable: false, isTriggerActive: false };
      await Promise.allSettled([...this.sources.map((s) => s.stop()), this.spec.sink.stop(), this.deadLetterWriter.stop(), this.lateWriter?.stop()]);
      this.spec.checkpoint.unlock(); // before anyone awaiting this query can start the next one on the checkpoint
      for (const w of this.drainWaiters.splice(0)) (this.exception ? w.reject(this.exception) : w.resolve());
      this.recordHistory(() =>
        this.history.runEvent({ event: 'terminated', runId: this.runId, timestamp: new Date().toISOString(), exception: this.exception?.message ?? null }),
      );
      for (const l of this.spec.listeners()) {
        l.onQueryTerminated?.({ id: this.id, runId: this.runId, exception: this.exception ? this.exception.message : null });
      }
      for (const cb of this.onTerminated) cb();
    }
  }

  /** The end offsets of the last committed batch: where the next batch starts. */
  private async startOffsets(batchId: number): Promise<Offset[]> {
    const cp = this.spec.checkpoint;
    if (batchId > 0) {
      const prev = cp.offsets.get(batchId - 1);
      if (!prev) throw new CheckpointError(`${cp.offsets.dir}/${batchId - 1} is missing: the checkpoint is incomplete.`);
      return prev.offsets;
    }
    const out: Offset[] = [];
    for (let i = 0; i < this.sources.length; i++) {
      let o = cp.sourceStart(i);
      if (o === undefined) {
        // First run of this query: resolve startingOffsets once and keep them (they never apply again).
        o = await this.sources[i]!.initialOffset();
        cp.setSourceStart(i, o);
      }
      out.push(o);
    }
    return out;
  }

  private async loop(): Promise<void> {
    const { checkpoint: cp, trigger } = this.spec;
    // Where to resume — or a refusal naming the damaged file, what it means and the fix (checkpoint/recovery.ts).
    const restart = planRestart(cp, { sources: this.sources.map((s) => s.describe()), statefulOperators: statefulStages(this.spec.analyzed).map((st) => st.id) });
    const { lastCommitted, lastCommit, loggedConf } = restart;
    let nextBatch = restart.nextBatch;
    let rerun = restart.rerun;
    if (rerun) this.spec.log(`INFO Batch ${nextBatch} was planned but not committed: re-running it with the logged offsets.`);
    let watermarkMs = lastCommit?.nextBatchWatermarkMs ?? 0;
    this.nextWatermarkMs = watermarkMs;
    if (lastCommitted !== undefined) this.resumedAt = cp.offsets.get(lastCommitted)?.offsets;
    // Settings that shape state are fixed by the checkpoint: a restart keeps them, whatever the session says.
    const conf: Record<string, string> = {
      'sluice.sources': JSON.stringify(this.sources.map((s) => s.describe())),
      [PARTITIONS_CONF]: loggedConf[PARTITIONS_CONF] ?? this.spec.conf[PARTITIONS_CONF] ?? DEFAULT_PARTITIONS,
      [WATERMARK_POLICY_CONF]: loggedConf[WATERMARK_POLICY_CONF] ?? this.spec.conf[WATERMARK_POLICY_CONF] ?? 'min',
    };
    const partitions = Number(conf[PARTITIONS_CONF]);
    if (!(partitions >= 1)) throw new CheckpointError(`${PARTITIONS_CONF} must be a positive integer, got "${conf[PARTITIONS_CONF]}".`);
    const provider = this.spec.conf[PROVIDER_CONF] ?? 'memory';
    const workers = Number(this.spec.conf[WORKERS_CONF] ?? '1');
    if (!(Number.isInteger(workers) && workers >= 1)) {
      throw new CheckpointError(`${WORKERS_CONF} must be a whole number of worker threads (1 = none, the default), got "${this.spec.conf[WORKERS_CONF]}".`);
    }
    if (provider !== 'memory' && provider !== 'lmdb') {
      throw new CheckpointError(`${PROVIDER_CONF} must be "memory" or "lmdb", got "${provider}".`);
    }
    this.tracker = new WatermarkTracker(this.spec.analyzed, conf[WATERMARK_POLICY_CONF] === 'max' ? 'max' : 'min');
    this.tracker.restore(lastCommit?.operatorWatermarksMs);
    const operators = createOperators(this.spec.analyzed, {
      checkpointRoot: cp.root,
      partitions,
      provider,
      workers,
      log: this.spec.log,
      minBatchesToRetain: minBatchesToRetain(this.spec.conf[MIN_BATCHES_TO_RETAIN_CONF]),
    });
    const incremental = (this.incremental = new IncrementalExecution(this.spec.analyzed, operators, this.spec.outputMode));
    const delay = this.spec.conf[POLLING_DELAY_CONF];
    if (delay !== undefined) {
      this.pollingDelayMs = parseDuration(delay, POLLING_DELAY_CONF);
      if (!(this.pollingDelayMs >= 0)) throw new CheckpointError(`${POLLING_DELAY_CONF} must be a duration such as "10 ms", got "${delay}".`);
    }
    // Per-row steps in worker threads: on by default (one per core); said why not only when asked for.
    const asked = this.spec.conf[TASKS_CONF] !== undefined && this.spec.conf[TASKS_CONF] !== '0';
    const minRows = Number(this.spec.conf[TASKS_MIN_ROWS_CONF] ?? '1000');
    if (!(Number.isInteger(minRows) && minRows >= 0)) throw new CheckpointError(`${TASKS_MIN_ROWS_CONF} must be a whole number of rows, got "${this.spec.conf[TASKS_MIN_ROWS_CONF]}".`);
    this.tasks = await TaskPool.create(this.spec.plan, this.spec.analyzed, this.spec.ctx, { workers: taskWorkers(this.spec.conf), minRows, prune: !this.spec.lateEvents }, this.spec.log, (why) => {
      this.tasksNote = why;
      if (asked) this.spec.log(`INFO This query's per-row steps run in its own thread, not in task workers: ${why}.`);
    });
    // A changed query on old state is refused here, before any batch, with what changed.
    incremental.checkStateSchemas(cp.root);
    // After a restart, the no-data batch decision compares the next watermark with the last batch's.
    if (lastCommitted !== undefined) {
      incremental.restoreLast(lastCommitted, this.batchWatermark(lastCommitted, 0), this.batchWatermark(lastCommitted - 1, 0));
    }
    // A sink that recovers on start (exactly-once Kafka: fence a zombie, read its last committed batch marker).
    await this.spec.sink.start?.({
      queryId: this.id,
      lastCommittedBatch: lastCommitted,
      log: this.spec.log,
      batchOffsets: (n) => {
        const seq = cp.offsets.get(n);
        return seq ? JSON.stringify({ offsets: seq.offsets, ...(seq.metadata.readFrom ? { readFrom: seq.metadata.readFrom } : {}) }) : undefined;
      },
    });
    let availableNowTarget: Offset[] | undefined;
    if (trigger.kind === 'availableNow') {
      const starts = rerun ? rerun.offsets : await this.startOffsets(nextBatch);
      availableNowTarget = await Promise.all(this.sources.map((s, i) => s.latestOffset(starts[i], { unlimited: true })));
    }

    while (!this.stopping) {
      const triggerStart = Date.now();
      const triggerNo = ++this.triggers;
      this.status = { message: 'Getting offsets from sources', isDataAvailable: false, isTriggerActive: true };
      const start = await this.startOffsets(nextBatch);
      let seq: OffsetSeq;
      const timing = { latestOffset: 0, walCommit: 0 };
      let latest: Offset[] = [];
      if (rerun) {
        seq = rerun;
        rerun = undefined;
        latest = seq.offsets;
      } else {
        const t0 = Date.now();
        const limit = (i: number): ReadLimit =>
          trigger.kind === 'once' ? { unlimited: true } : availableNowTarget ? { upTo: availableNowTarget[i] } : {};
        latest = await Promise.all(this.sources.map((s, i) => s.latestOffset(start[i], limit(i))));
        timing.latestOffset = Date.now() - t0;
        const hasData = latest.some((o, i) => JSON.stringify(o) !== JSON.stringify(start[i]));
        // Spark's no-data batch: the watermark moved, so some operator may emit (append) or evict state.
        const noDataBatch = !hasData && trigger.kind !== 'once' && incremental.shouldRunAnotherBatch(watermarkMs, triggerStart);
        if (!hasData && !noDataBatch) {
          this.status = { message: 'Waiting for data to arrive', isDataAvailable: false, isTriggerActive: false };
          this.reportIdle();
          this.resolveDrainWaiters(triggerNo);
          if (trigger.kind === 'once' || trigger.kind === 'availableNow') break;
          // Spark waits spark.sql.streaming.pollingDelay (10 ms) before asking the sources again; a processing-time
          // trigger waits for its next tick. (It was 100 ms here: with a trigger of 0, a record that came just
          // after an empty look waited up to 100 ms — the p99 of the latency benchmark.)
          await this.sleep(Math.max(trigger.kind === 'processingTime' ? trigger.intervalMs : 0, this.pollingDelayMs));
          continue;
        }
        // A source may need to read from further back than the last batch's end (a new Kafka partition): fixed now.
        const readFrom: Record<string, Offset> = {};
        for (let i = 0; i < this.sources.length; i++) {
          const from = await this.sources[i]!.readFrom?.(start[i], latest[i]);
          if (from !== undefined) readFrom[String(i)] = from;
        }
        seq = {
          metadata: {
            batchWatermarkMs: watermarkMs,
            batchTimestampMs: triggerStart,
            conf,
            ...(Object.keys(readFrom).length ? { readFrom } : {}),
          },
          offsets: latest,
        };
        const t1 = Date.now();
        cp.offsets.add(nextBatch, seq); // write-ahead: the batch is fixed before any data is read
        timing.walCommit = Date.now() - t1;
      }
      this.status = { message: `Processing new data`, isDataAvailable: true, isTriggerActive: true };
      this.running = { batchId: nextBatch, startedAt: triggerStart };
      const { progress, eventTime } = await this.runBatch(nextBatch, start, seq, triggerStart, timing);
      this.running = undefined;
      this.prevBatchWatermarkMs = seq.metadata.batchWatermarkMs;
      watermarkMs = this.nextWatermarkMs = this.tracker.next(seq.metadata.batchWatermarkMs, eventTime);
      const t2 = Date.now();
      const perNode = this.tracker.logged();
      cp.commits.add(nextBatch, { nextBatchWatermarkMs: watermarkMs, ...(perNode ? { operatorWatermarksMs: perNode } : {}) });
      fault('after-commit', nextBatch);
      progress.durationMs.commitOffsets = Date.now() - t2;
      progress.durationMs.triggerExecution = Date.now() - triggerStart;
      progress.batchDuration = progress.durationMs.triggerExecution;
      progress.processedRowsPerSecond = rate(progress.numInputRows, progress.durationMs.triggerExecution);
      for (const s of progress.sources) s.processedRowsPerSecond = rate(s.numInputRows, progress.durationMs.triggerExecution);
      await Promise.all(this.sources.map((s, i) => s.commit?.(seq.offsets[i])));
      this.report(progress);
      nextBatch++;
      if (trigger.kind === 'once') break;
      if (trigger.kind === 'processingTime') {
        // Spark's ProcessingTime: the next trigger starts at the next multiple of the interval.
        const elapsed = Date.now() - triggerStart;
        if (trigger.intervalMs > elapsed) await this.sleep(trigger.intervalMs - elapsed);
      }
    }
  }

  /** Resolves the processAllAvailable() calls made before trigger number `trigger` started: it found no new data. */
  private resolveDrainWaiters(trigger: number): void {
    for (let i = this.drainWaiters.length - 1; i >= 0; i--) {
      const w = this.drainWaiters[i]!;
      if (trigger > w.after) {
        this.drainWaiters.splice(i, 1);
        w.resolve();
      }
    }
  }

  /** The watermark batch `batchId` ran with (from its offsets/ entry), or `fallback` when there is none. */
  private batchWatermark(batchId: number, fallback: number): number {
    return batchId >= 0 ? (this.spec.checkpoint.offsets.get(batchId)?.metadata.batchWatermarkMs ?? fallback) : 0;
  }

  private async runBatch(
    batchId: number,
    start: Offset[],
    seq: OffsetSeq,
    triggerStart: number,
    timing: { latestOffset: number; walCommit: number },
  ): Promise<{ progress: StreamingQueryProgress; eventTime: Map<number, EventTimeStats> }> {
    const { analyzed, ctx, sink, outputMode } = this.spec;
    const incremental = this.incremental!;
    ctx.batchTimestampMs = seq.metadata.batchTimestampMs;
    const t0 = Date.now();
    // State version N is the state after batch N-1: a re-run batch starts from the same state. Each operator
    // gets this batch's watermark for eviction, and the previous batch's for late events (Spark 3.4+).
    const late: LateRow[] = [];
    const batches = incremental.planBatch(
      batchId,
      seq.metadata.batchWatermarkMs,
      // The previous batch's watermark: from memory once a batch has run here, from offsets/N-1 after a start.
      this.prevBatchWatermarkMs ?? this.batchWatermark(batchId - 1, seq.metadata.batchWatermarkMs),
      this.lateWriter ? (l) => void late.push(l) : undefined,
      seq.metadata.batchTimestampMs,
    );
    await incremental.begin(batches);
    const queryPlanning = Date.now() - t0;

    const t1 = Date.now();
    const letters: DeadLetter[] = [];
    // Dead letters and late rows are written out as they pile up, so a batch of bad records stays bounded too.
    const drainSideOutputs = async (force: boolean): Promise<void> => {
      if (letters.length && (force || letters.length >= SIDE_OUTPUT_CHUNK)) {
        await this.deadLetterWriter.write(batchId, letters.splice(0));
      }
      if (this.lateWriter && late.length && (force || late.length >= SIDE_OUTPUT_CHUNK)) await this.lateWriter.write(batchId, late.splice(0));
    };
    let numDeadLetters = 0;
    let firstReason = '';
    const eventTime = new Map<number, EventTimeStats>();
    const onBad = (row: Row, e: RecordError): void => {
      if (this.spec.onBadRecord === 'fail') {
        const where = row.topic != null && row.offset != null ? ` (${String(row.topic)}-${String(row.partition)} offset ${String(row.offset)})` : '';
        throw new StreamingQueryException(
          `A bad record${where} stopped the query because onBadRecord=fail: ${e.message} ` +
            'Remove that option to send such records to the dead-letter destination and keep going.',
        );
      }
      if (!numDeadLetters) firstReason = e.reason;
      numDeadLetters++;
      letters.push({ row, reason: e.reason, message: e.message });
    };
    // The sink takes the batch chunk by chunk when it can (Kafka), else whole (memory, console, foreachBatch).
    // A row the sink refuses (too large for Kafka) is a dead letter, not an output row.
    let refusedBySink = 0;
    fault('before-sink', batchId); // fault points (exec/faults.ts): a SIGKILL here when SLUICE_FAULT names it
    const writer = sink.openBatch?.(batchId, analyzed.schema, outputMode, (row, e) => {
      refusedBySink++;
      // An output row no longer knows its input record: name the batch's input range, where it came from.
      const read = this.sources.map((s, i) => `${s.describe()} from ${JSON.stringify(seq.metadata.readFrom?.[String(i)] ?? start[i])} to ${JSON.stringify(seq.offsets[i])}`);
      onBad(row, new RecordError(`${e.message} It came from batch ${batchId}, which read ${read.join('; ')}.`, e.reason));
    });
    const collected = writer ? undefined : collector();
    let numOutputRows = 0;
    const sinkPipe: Pipe = {
      async push(rows) {
        numOutputRows += rows.length;
        if (writer) await writer.write(rows);
        else await collected!.push(rows);
      },
      async flush() {},
    };
    const pipeline = buildPipeline(analyzed, sinkPipe, {
      operators: incremental.operators,
      eventTime,
      onBad,
      ...(this.tasks ? { tasks: { pool: this.tasks, batchTimestampMs: seq.metadata.batchTimestampMs } } : {}),
    });
    const inputCounts = this.sources.map(() => 0);
    const inputs = new Map(
      this.sources.map((s, i) => [i, counted(s.getBatch(seq.metadata.readFrom?.[String(i)] ?? start[i], seq.offsets[i]), (n) => (inputCounts[i]! += n))] as const),
    );
    try {
      await runPipeline(pipeline, inputs, () => drainSideOutputs(false));
      await drainSideOutputs(true);
    } catch (e) {
      await writer?.abort?.(); // a transactional sink leaves nothing of the failed batch open
      throw e;
    }
    if (writer) await writer.close();
    else await sink.addBatch(batchId, collected!.rows, analyzed.schema, outputMode);
    fault('after-sink', batchId);
    numOutputRows -= refusedBySink;
    const numInputRows = inputCounts.reduce((n, c) => n + c, 0);
    await incremental.commit();
    fault('during-state-commit', batchId);
    // Commit time and state size are known only now.
    // In Spark's order: from the sink down (an aggregation before the dedupe beneath it), as its
    // executedPlan.collect lists StateStoreWriters — so code reading stateOperators[0] reads the same one.
    const operators = incremental.sinkOrder().map((op): StateOperatorProgress => op.progress());
    const addBatch = Date.now() - t1;
    const nullTimes = operators.reduce((n, o) => n + (o.customMetrics?.numRowsWithNullEventTime ?? 0), 0);
    if (nullTimes) {
      this.spec.log(
        `WARN Batch ${batchId}: ${nullTimes} row(s) had a null event time and were left out of the window aggregation (as Spark does; ` +
          'counted as customMetrics.numRowsWithNullEventTime). A timestamp that did not parse (to_timestamp with another format, ' +
          'from_json on a bad record) is the usual cause: filter such rows out explicitly, or fix the parsing.',
      );
    }
    if (numDeadLetters) {
      this.spec.log(`WARN Batch ${batchId}: ${numDeadLetters} record(s) sent to the dead-letter destination (${this.deadLetterWriter.describe()}); first reason: ${firstReason}`);
    }

    const sinceLast = this.lastTriggerStart ? triggerStart - this.lastTriggerStart : 0;
    this.lastTriggerStart = triggerStart;
    const progress: StreamingQueryProgress = {
      id: this.id,
      runId: this.runId,
      name: this.name,
      timestamp: new Date(triggerStart).toISOString(),
      batchId,
      batchDuration: 0,
      numInputRows,
      inputRowsPerSecond: rate(numInputRows, sinceLast),
      processedRowsPerSecond: 0,
      // Reading, processing and writing overlap (chunk by chunk): addBatch covers all three, as Spark's does.
      durationMs: { ...timing, getBatch: 0, queryPlanning, addBatch, commitOffsets: 0, triggerExecution: 0 },
      eventTime: eventTimeProgress(eventTime, seq.metadata.batchWatermarkMs, this.tracker.watermarked),
      stateOperators: operators,
      sources: this.sources.map((s, i) => ({
        description: s.describe(),
        // Where the batch read from: the last batch's end, or further back for a new Kafka partition.
        startOffset: seq.metadata.readFrom?.[String(i)] ?? start[i],
        endOffset: seq.offsets[i],
        latestOffset: seq.offsets[i],
        numInputRows: inputCounts[i]!,
        inputRowsPerSecond: rate(inputCounts[i]!, sinceLast),
        processedRowsPerSecond: 0,
      })),
      sink: { description: sink.describe(), numOutputRows },
      numDeadLetterRows: numDeadLetters,
      // Only a stateless query's rows add up: input = output + dead letters + filtered.
      numFilteredRows: incremental.operators.size === 0 ? numInputRows - numOutputRows - numDeadLetters : 0,
    };
    return { progress, eventTime };
  }

  private report(p: StreamingQueryProgress): void {
    this.recentProgress.push(p);
    if (this.recentProgress.length > PROGRESS_HISTORY) this.recentProgress.shift();
    this.recordHistory(() => this.history.progress(p));
    this.lastEventAt = Date.now();
    for (const l of this.spec.listeners()) l.onQueryProgress?.({ progress: p });
  }

  /** Spark 3.5's onQueryIdle: a trigger found no new data, at most once per IDLE_EVENT_INTERVAL_MS. */
  private reportIdle(): void {
    if (Date.now() - this.lastEventAt < IDLE_EVENT_INTERVAL_MS) return;
    this.lastEventAt = Date.now();
    for (const l of this.spec.listeners()) l.onQueryIdle?.({ id: this.id, runId: this.runId, timestamp: new Date().toISOString() });
  }

  /** The history is a record for people: a failure to write it (a full disk) is logged once, never fatal. */
  private historyFailed = false;
  private recordHistory(write: () => void): void {
    try {
      write();
    } catch (e) {
      if (!this.historyFailed) this.spec.log(`WARN Cannot write the query's history in ${this.spec.checkpoint.root}/history: ${(e as Error).message}`);
      this.historyFailed = true;
    }
  }
}

/** Spark's `eventTime` progress: min/max/avg event time of the batch and the watermark it ran with. */
function eventTimeProgress(stats: Map<number, EventTimeStats>, watermarkMs: number, watermarked: boolean): Record<string, string> {
  if (!watermarked) return {};
  const all = [...stats.values()].filter((s) => s.count > 0);
  const out: Record<string, string> = {};
  if (all.length) {
    const count = all.reduce((n, s) => n + s.count, 0);
    out.avg = new Date(Math.round(all.reduce((n, s) => n + s.sum, 0) / count)).toISOString();
    out.max = new Date(Math.max(...all.map((s) => s.max))).toISOString();
    out.min = new Date(Math.min(...all.map((s) => s.min))).toISOString();
  }
  out.watermark = new Date(watermarkMs).toISOString();
  return out;
}

/** Dead letters and late rows held before they are written out, within a batch. */
const SIDE_OUTPUT_CHUNK = 10_000;

/** Counts the rows of a source's chunks as they pass. */
async function* counted(chunks: AsyncIterable<Row[]>, add: (n: number) => void): AsyncGenerator<Row[]> {
  for await (const rows of chunks) {
    add(rows.length);
    yield rows;
  }
}

function rate(rows: number, ms: number): number {
  return ms > 0 ? Math.round((rows * 1000 * 100) / ms) / 100 : 0;
}

