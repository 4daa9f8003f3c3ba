/** `df.writeStream`: where and how a streaming query writes, as Spark's DataStreamWriter. */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  Checkpoint,
  CheckpointError,
  FORCE_DELETE_TEMP_CHECKPOINT_CONF,
  MIN_BATCHES_TO_RETAIN_CONF,
  checkpointFolderName,
  minBatchesToRetain,
} from '../checkpoint/checkpoint.js';
import { AnalysisError, EvalContext } from '../expr/compile.js';
import { DeadLetterWriter, FileDeadLetterWriter, KafkaDeadLetterWriter } from '../exec/deadLetter.js';
import { MicroBatchQuery } from '../exec/microBatch.js';
import type { StreamingQuery } from '../exec/streamingQuery.js';
import { Trigger, TriggerOptions, parseTrigger } from '../exec/trigger.js';
import { KafkaLateEventsWriter } from '../exec/lateEvents.js';
import { KafkaAdmin, kafkaConfigFromOptions } from '../kafka/client.js';
import { streamingSources } from '../plan/logical.js';
import { checkStreamingPlan } from '../plan/unsupported.js';
import { ConsoleSink } from '../sinks/console.js';
import { KafkaSink } from '../sinks/kafka.js';
import { MemorySink } from '../sinks/memory.js';
import { ForeachBatchSink, ForeachWriterSink, type ForeachBatchFn, type ForeachWriter } from '../sinks/foreach.js';
import type { OutputMode, Sink } from '../sinks/sink.js';
import type { Row, StructType } from '../types/index.js';
import { DataFrame } from './dataframe.js';
import { WithOptions } from './options.js';

const SINKS = ['kafka', 'console', 'memory', 'foreachBatch', 'foreach'];

export type { ForeachBatchFn, ForeachWriter } from '../sinks/foreach.js';

/** What decides the sink: format(x), foreachBatch(fn) or foreach(writer) — the last call wins, as in Spark. */
type SinkCall = 'format' | 'foreachBatch' | 'foreach';
const callOf = (fmt: string): SinkCall => (fmt === 'foreachBatch' || fmt === 'foreach' ? fmt : 'format');
const callName = (fmt: string): string => (callOf(fmt) === 'format' ? `format('${fmt}')` : `${fmt}()`);

export class DataStreamWriter extends WithOptions {
  private fmt: string | undefined;
  private mode: OutputMode = 'append';
  private trig: Trigger = { kind: 'processingTime', intervalMs: 0 };
  private name: string | undefined;
  private batchFn: ForeachBatchFn | undefined;
  private rowWriter: ForeachWriter | undefined;
  /** The kinds of sink-setting calls made, for the warning when they disagree (see start()). */
  private readonly sinkCalls = new Map<SinkCall, string>();

  constructor(private readonly df: DataFrame) {
    super();
  }

  /**
   * The sink: `kafka`, `console` or `memory`. Like Spark, it replaces an earlier foreachBatch()/foreach() (the
   * last of these calls wins; start() warns when more than one kind was called).
   */
  format(sink: string): this {
    // foreachBatch/foreach by name keep their spelling; other names are case-insensitive, as Spark's.
    this.fmt = /^foreach(batch)?$/i.test(sink) ? (sink.toLowerCase() === 'foreach' ? 'foreach' : 'foreachBatch') : sink.toLowerCase();
    this.sinkCalls.set(callOf(this.fmt), callName(this.fmt));
    return this;
  }
  /** `append` (default): new rows only; `update`: changed rows; `complete`: the whole result (aggregations only). */
  outputMode(mode: OutputMode | string): this {
    const m = mode.toLowerCase();
    if (m !== 'append' && m !== 'update' && m !== 'complete') {
      throw new AnalysisError(`Unknown output mode "${mode}". Use "append", "update" or "complete".`);
    }
    this.mode = m;
    return this;
  }
  /** When batches run: `{ processingTime: '5 seconds' }`, `{ availableNow: true }`, `{ once: true }`. Default: as fast as possible. */
  trigger(t: TriggerOptions): this {
    this.trig = parseTrigger(t);
    return this;
  }
  /** The query's name: shown in progress; the memory sink's table name; the folder under a session checkpoint root. */
  queryName(name: string): this {
    this.name = name;
    return this;
  }
  /**
   * Calls `fn(batchDF, batchId)` with each micro-batch's output, as Spark's foreachBatch. `batchDF` is a batch
   * DataFrame holding the rows the output mode gives (append: new rows; update: changed groups; complete: all
   * groups): transform it, `collect()` it, write it to several places with `batchDF.write…save()`.
   *
   * The batch is committed only after `fn` resolves; if it throws (or rejects) the query fails with that error,
   * and a restart calls `fn` again with the same `batchId` and the same rows. So make the writes idempotent by
   * `batchId`: overwrite a folder named after it, skip ids a store has already applied, or upsert by key.
   *
   * Replaces an earlier format()/foreach(): the last of these calls wins, as in Spark (start() warns).
   */
  foreachBatch(fn: ForeachBatchFn): this {
    if (typeof fn !== 'function') throw new AnalysisError('foreachBatch() takes a function (batchDF, batchId) => void | Promise<void>.');
    this.batchFn = fn;
    this.fmt = 'foreachBatch';
    this.sinkCalls.set('foreachBatch', 'foreachBatch()');
    return this;
  }

  /**
   * Writes each output row with `writer`, as Spark's foreach: per batch, `open(partitionId, epochId)` (false
   * skips the rows), `process(row)` for each row, `close(error | null)`. `epochId` is the batch id, the key for
   * idempotent writes; `partitionId` is 0 (a batch is one partition here). A function is taken as `process`
   * alone (PySpark's form). An exception in `process` calls `close(error)` and fails the query; the batch is
   * not committed and runs again after a restart. Rows are handed over as the batch produces them, so a
   * large batch is never held whole. Replaces an earlier format()/foreachBatch() (the last call wins).
   */
  foreach(writer: ForeachWriter | ((row: Row) => void | Promise<void>)): this {
    const w: ForeachWriter | undefined = typeof writer === 'function' ? { process: writer } : writer;
    if (typeof w?.process !== 'function') {
      throw new AnalysisError('foreach() takes a function (row) => void, or a writer { open?(partitionId, epochId), process(row), close?(error) }.');
    }
    this.rowWriter = w;
    this.fmt = 'foreach';
    this.sinkCalls.set('foreach', 'foreach()');
    return this;
  }

  /** The query's checkpoint folder; `temporary` when Sluice made it (deleted when the query stops, see start()). */
  private checkpointRoot(): { root: string; temporary: boolean } {
    const session = this.df.session;
    if (this.opts.checkpointLocation) return { root: resolve(this.opts.checkpointLocation), temporary: false };
    const root = session.conf.get('sluice.sql.streaming.checkpointLocation');
    if (root) {
      // Spark's rule: the session root only supplies a default folder, named after the query.
      if (!this.name) {
        session.log(
          'WARN No checkpointLocation and no queryName: using a random folder under the session checkpoint root. ' +
            'It cannot be found again after a restart, so the query would start over. Set .queryName() or .option("checkpointLocation", …).',
        );
      }
      // The name is free text: as a folder it must stay inside the root (no "..", no "/").
      return { root: resolve(root, this.name ? checkpointFolderName(this.name) : crypto.randomUUID()), temporary: false };
    }
    if (this.fmt === 'console' || this.fmt === 'memory') {
      return { root: mkdtempSync(join(tmpdir(), 'sluice-temporary-checkpoint-')), temporary: true };
    }
    throw new CheckpointError(
      `The ${this.fmt} sink needs a checkpoint: set .option("checkpointLocation", "./checkpoints/<query>") — one folder per query, ` +
        'kept across restarts; it is how the query resumes where it stopped without losing or repeating data.',
    );
  }

  private makeSink(schema: StructType): Sink {
    switch (this.fmt) {
      case 'kafka': {
        const sink = new KafkaSink(this.opts);
        sink.validate(schema);
        return sink;
      }
      case 'console':
        return new ConsoleSink(this.opts, (t) => this.df.session.out(t));
      case 'memory': {
        if (!this.name) throw new AnalysisError('The memory sink needs a table name: set .queryName("<table>").');
        const table = this.df.session.memoryTable(this.name);
        table.schema = schema; // the table exists, empty, as soon as the query starts (as in Spark)
        return new MemorySink(this.name, table);
      }
      case 'foreachBatch': {
        if (!this.batchFn) throw new AnalysisError('format("foreachBatch") needs the function: call .foreachBatch((batchDF, batchId) => …) instead.');
        const session = this.df.session;
        return new ForeachBatchSink(this.batchFn, (rows, s) => session.createDataFrame(rows, s));
      }
      case 'foreach':
        if (!this.rowWriter) throw new AnalysisError('format("foreach") needs the writer: call .foreach({ open, process, close }) instead.');
        return new ForeachWriterSink(this.rowWriter, (l) => this.df.session.log(l));
      default:
        throw new AnalysisError(
          this.fmt ? `Unknown sink format "${this.fmt}". Sluice writes: ${SINKS.join(', ')}.` : 'writeStream: call .format("kafka") (or console, memory) before start().',
        );
    }
  }

  /** Kafka options for side topics (dead letters, late events): the sink's cluster, or else the source's. */
  private sideTopicOptions(prefix: string): Record<string, string> {
    const kafkaOpts: Record<string, string> = {};
    const sourceOpts = streamingSources(this.df.plan).find((s) => s.format === 'kafka')?.options ?? {};
    // Connection and security settings are shared; a record size limit raised for the sink's topic is not
    // (the side topic keeps its own limit: set `<prefix>.kafka.message.max.bytes` for it).
    // Nor are the exactly-once sink's transaction settings: side producers write outside its transactions.
    const own = new Set(['kafka.message.max.bytes', 'kafka.transaction.timeout.ms', 'kafka.transactional.id']);
    for (const src of [sourceOpts, this.opts]) for (const [k, v] of Object.entries(src)) if (k.startsWith('kafka.') && !own.has(k)) kafkaOpts[k] = v;
    for (const [k, v] of Object.entries(this.opts)) if (k.startsWith(`${prefix}.kafka.`)) kafkaOpts[k.slice(prefix.length + 1)] = v;
    return kafkaOpts;
  }

  /**
   * The Kafka topics the query writes to — the sink's `topic`, `deadLetter.topic`, `lateEvents.topic` — must
   * exist before it starts (see {@link checkOutputTopics}). A sink writing to a `topic` column cannot be checked here.
   */
  private async checkOutputTopics(): Promise<void> {
    const wanted: OutputTopic[] = [];
    if (this.fmt === 'kafka' && this.opts.topic) wanted.push({ topic: this.opts.topic, option: 'topic', conf: this.opts });
    for (const side of ['deadLetter', 'lateEvents']) {
      const topic = this.opts[`${side}.topic`];
      if (topic) wanted.push({ topic, option: `${side}.topic`, conf: this.sideTopicOptions(side) });
    }
    await checkOutputTopics(wanted, this.booleanOption('createMissingTopics'), (l) => this.df.session.log(l));
  }

  private booleanOption(name: string): boolean {
    const v = (this.opts[name] ?? 'false').toLowerCase();
    if (v !== 'true' && v !== 'false') throw new AnalysisError(`Option ${name} must be "true" or "false", got "${this.opts[name]}".`);
    return v === 'true';
  }

  private deadLetters(checkpoint: Checkpoint): (queryId: string) => DeadLetterWriter {
    const topic = this.opts['deadLetter.topic'];
    if (!topic) return () => new FileDeadLetterWriter(checkpoint.deadLetterDir());
    const kafkaOpts = this.sideTopicOptions('deadLetter');
    return (queryId) => new KafkaDeadLetterWriter(topic, kafkaOpts, queryId);
  }

  /**
   * Checks the query, then starts it; resolves to its handle once it is running. A console or memory query
   * without a checkpointLocation (and no session checkpoint root) gets a temporary checkpoint, deleted when
   * the query stops — kept if it failed or holds dead letters (see deleteTemporaryCheckpoint).
   */
  async start(): Promise<StreamingQuery> {
    const session = this.df.session;
    this.warnOverriddenSink();
    checkStreamingPlan(this.df.plan, this.mode);
    if (session.remote) return this.startRemote();
    const ctx: EvalContext = { batchTimestampMs: Date.now() };
    const analyzed = await this.df.analyze(ctx);
    checkStreamingPlan(this.df.plan, this.mode, analyzed);
    const sink = this.makeSink(analyzed.schema);
    if (this.name && session.streams.active.some((q) => q.name === this.name)) {
      throw new AnalysisError(`Cannot start query with name ${this.name}: a query with that name is already active in this session.`);
    }
    const retain = minBatchesToRetain(session.conf.get(MIN_BATCHES_TO_RETAIN_CONF));
    const onBad = (this.opts.onBadRecord ?? 'deadLetter').toLowerCase();
    if (onBad !== 'fail' && onBad !== 'deadletter') {
      throw new AnalysisError(`onBadRecord must be "deadLetter" (default) or "fail", got "${this.opts.onBadRecord}".`);
    }
    const { root, temporary } = this.checkpointRoot();
    let query: StreamingQuery;
    try {
      await this.checkOutputTopics();
      const checkpoint = new Checkpoint(root, { minBatchesToRetain: retain });
      const existing = session.streams.active.find((q) => q.id === checkpoint.queryId());
      if (existing) {
        throw new CheckpointError(
          `Query ${existing.name ?? existing.id} is already running on checkpoint ${checkpoint.root}. Two queries must never share a checkpoint: stop it first.`,
        );
      }
      query = this.newQuery(checkpoint, analyzed, ctx, sink, onBad);
    } catch (e) {
      if (temporary) rmSync(root, { recursive: true, force: true }); // nothing ran: nothing to keep
      throw e;
    }
    // Not logged at creation (Spark logs it to log4j; here it would print a random path in every lesson's
    // output): only keeping the folder is worth a line, see deleteTemporaryCheckpoint.
    if (temporary) query.whenTerminated(() => this.deleteTemporaryCheckpoint(root, query));
    session.streams.register(query);
    return query;
  }

  /** On a Spark Connect session: the query runs on Spark (connect/backend.ts); the handle is a proxy. */
  private async startRemote(): Promise<StreamingQuery> {
    const session = this.df.session;
    const query = await session.remote!.startStream(this.df.plan, {
      format: this.fmt,
      options: { ...this.opts },
      outputMode: this.mode,
      trigger: this.trig,
      queryName: this.name,
    });
    session.streams.register(query);
    return query;
  }

  /**
   * Spark lets format(), foreachBatch() and foreach() replace each other silently; a query that sets up Kafka
   * options and then foreachBatch writes only through its function. Said once, at start, with the winner.
   */
  private warnOverriddenSink(): void {
    if (this.sinkCalls.size < 2 || !this.fmt) return;
    const winner = callName(this.fmt);
    const others = [...this.sinkCalls.entries()].filter(([k]) => k !== callOf(this.fmt!)).map(([, name]) => name);
    this.df.session.log(
      `WARN writeStream: ${others.join(' and ')} ${others.length > 1 ? 'were' : 'was'} set, then replaced: the last of format(), ` +
        `foreachBatch() and foreach() wins, so this query writes with ${winner} (as Spark does). Remove the other call.`,
    );
  }

  /**
   * Deletes the temporary checkpoint of a query that had no checkpointLocation (Spark's rule): after a
   * clean stop; after a failure only with sluice.sql.streaming.forceDeleteTempCheckpointLocation=true, so
   * a failed query's checkpoint can be looked at (`sluice checkpoint explain`). A checkpoint holding
   * dead-letter files is kept either way: dead letters are never deleted silently.
   */
  private deleteTemporaryCheckpoint(root: string, query: StreamingQuery): void {
    const session = this.df.session;
    const force = session.conf.get(FORCE_DELETE_TEMP_CHECKPOINT_CONF) === 'true';
    const deadLetters = join(root, 'deadletter');
    if (existsSync(deadLetters) && readdirSync(deadLetters).length > 0) {
      session.log(`WARN Temporary checkpoint ${root} is kept: its deadletter/ folder holds records that could not be processed.`);
    } else if (query.exception && !force) {
      session.log(
        `WARN Temporary checkpoint ${root} is kept because the query failed; delete it when done ` +
          `(or set ${FORCE_DELETE_TEMP_CHECKPOINT_CONF}=true to always delete it).`,
      );
    } else {
      try {
        rmSync(root, { recursive: true, force: true });
      } catch (e) {
        session.log(`WARN Temporary checkpoint ${root} could not be deleted: ${(e as Error).message}`);
      }
    }
  }

  private newQuery(checkpoint: Checkpoint, analyzed: Awaited<ReturnType<DataFrame['analyze']>>, ctx: EvalContext, sink: Sink, onBad: string): StreamingQuery {
    const session = this.df.session;
    return new MicroBatchQuery({
      name: this.name ?? null,
      plan: this.df.plan,
      analyzed,
      ctx,
      checkpoint,
      sink,
      outputMode: this.mode,
      trigger: this.trig,
      deadLetters: this.deadLetters(checkpoint),
      onBadRecord: onBad === 'fail' ? 'fail' : 'deadLetter',
      listeners: () => session.streams.allListeners(),
      log: (l) => session.log(l),
      conf: session.conf.getAll(),
      ...(this.opts['lateEvents.topic']
        ? { lateEvents: (id: string) => new KafkaLateEventsWriter(this.opts['lateEvents.topic']!, this.sideTopicOptions('lateEvents'), id) }
        : {}),
    });
  }
}

/** A Kafka topic a query or a batch write sends to: its name, the option that named it, its connection options. */
export interface OutputTopic {
  topic: string;
  option: string;
  conf: Readonly<Record<string, string>>;
}

/**
 * Checks that output topics exist, before anything is written: otherwise librdkafka waits for a missing
 * topic batch after batch and fails only ~30 s in, with one "Unknown topic or partition" per record. With
 * `create` (`createMissingTopics=true`) they are created (broker defaults for partitions and replication).
 * Used by writeStream (at start) and by `df.write.format('kafka')`.
 */
export async function checkOutputTopics(wanted: OutputTopic[], create: boolean, log: (line: string) => void): Promise<void> {
  if (!wanted.length) return;
  const byCluster = new Map<string, OutputTopic[]>();
  for (const w of wanted) {
    const conf = kafkaConfigFromOptions(w.conf);
    const key = JSON.stringify(Object.entries(conf).sort(([a], [b]) => (a < b ? -1 : 1))); // same servers, other credentials: checked apart
    byCluster.set(key, [...(byCluster.get(key) ?? []), w]);
  }
  for (const group of byCluster.values()) {
    const admin = new KafkaAdmin(kafkaConfigFromOptions(group[0]!.conf));
    try {
      const servers = String(kafkaConfigFromOptions(group[0]!.conf)['bootstrap.servers']);
      const existing = new Set(
        await admin.listTopics().catch((e: Error) => {
          throw new AnalysisError(
            `Cannot check that the output topics (${group.map((w) => w.topic).join(', ')}) exist on ${servers}: ${e.message}. ` +
              'Is the broker reachable from here, with these kafka.* settings?',
          );
        }),
      );
      for (const w of group) {
        if (existing.has(w.topic)) continue;
        if (create) {
          if (await admin.ensureTopic(w.topic, -1, -1)) {
            log(`Created topic ${w.topic} (option ${w.option}; createMissingTopics=true; broker defaults for partitions and replication).`);
          }
          existing.add(w.topic);
          continue;
        }
        throw new AnalysisError(
          `The output topic "${w.topic}" (option ${w.option}) does not exist on ${String(kafkaConfigFromOptions(w.conf)['bootstrap.servers'])}. ` +
            `Create it (sluice topics create ${w.topic} --partitions <n>), or set .option('createMissingTopics', 'true') to create it with the broker's defaults.`,
        );
      }
    } finally {
      admin.disconnect();
    }
  }
}
