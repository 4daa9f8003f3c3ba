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
import { StreamingQuery } from '../exec/microBatch.js';
import { Trigger, TriggerOptions, parseTrigger } from '../exec/trigger.js';
import { KafkaLateEventsWriter } from '../exec/lateEvents.js';
import { KafkaAdmin, kafkaConfigFromOptions } from '../kafka/client.js';
import { streamingSources } from '../plan/logical.js';
import { checkStreamingPlan } from '../plan/unsupported.js';
import { ConsoleSink } from '../sinks/console.js';
import { KafkaSink } from '../sinks/kafka.js';
import { MemorySink } from '../sinks/memory.js';
import type { OutputMode, Sink } from '../sinks/sink.js';
import type { Row, StructType } from '../types/index.js';
import { DataFrame } from './dataframe.js';
import { WithOptions } from './options.js';

const SINKS = ['kafka', 'console', 'memory', 'foreachBatch'];

export type ForeachBatchFn = (batch: DataFrame, batchId: number) => void | Promise<void>;

export class DataStreamWriter extends WithOptions {
  private fmt: string | undefined;
  private mode: OutputMode = 'append';
  private trig: Trigger = { kind: 'processingTime', intervalMs: 0 };
  private name: string | undefined;
  private batchFn: ForeachBatchFn | undefined;

  constructor(private readonly df: DataFrame) {
    super();
  }

  /** `kafka`, `console` or `memory`. */
  format(sink: string): this {
    this.fmt = sink;
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
  /** Calls `fn` with each micro-batch as a batch DataFrame (with its id, for idempotent writes). */
  foreachBatch(fn: ForeachBatchFn): this {
    this.batchFn = fn;
    this.fmt = 'foreachBatch';
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
        const fn = this.batchFn!;
        const session = this.df.session;
        return {
          describe: () => 'ForeachBatchSink',
          addBatch: async (batchId: number, rows: Row[], s: StructType) => {
            await fn(session.createDataFrame(rows, s), batchId);
          },
          stop: async () => {},
        };
      }
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
    const own = new Set(['kafka.message.max.bytes']);
    for (const src of [sourceOpts, this.opts]) for (const [k, v] of Object.entries(src)) if (k.startsWith('kafka.') && !own.has(k)) kafkaOpts[k] = v;
    for (const [k, v] of Object.entries(this.opts)) if (k.startsWith(`${prefix}.kafka.`)) kafkaOpts[k.slice(prefix.length + 1)] = v;
    return kafkaOpts;
  }

  /**
   * The Kafka topics the query writes to — the sink's `topic`, `deadLetter.topic`, `lateEvents.topic` — must
   * exist before it starts: otherwise librdkafka waits for them batch after batch and fails only ~30 s in,
   * with one "Unknown topic or partition" per record. With `createMissingTopics=true` they are created (broker
   * defaults for partitions and replication). A sink writing to a `topic` column cannot be checked here.
   */
  private async checkOutputTopics(): Promise<void> {
    const wanted: Array<{ topic: string; option: string; conf: Record<string, string> }> = [];
    if (this.fmt === 'kafka' && this.opts.topic) wanted.push({ topic: this.opts.topic, option: 'topic', conf: this.opts });
    for (const side of ['deadLetter', 'lateEvents']) {
      const topic = this.opts[`${side}.topic`];
      if (topic) wanted.push({ topic, option: `${side}.topic`, conf: this.sideTopicOptions(side) });
    }
    if (!wanted.length) return;
    const create = this.booleanOption('createMissingTopics');
    const byCluster = new Map<string, typeof wanted>();
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
              this.df.session.log(`Created topic ${w.topic} (option ${w.option}; createMissingTopics=true; broker defaults for partitions and replication).`);
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
    checkStreamingPlan(this.df.plan, this.mode);
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
    return new StreamingQuery({
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
