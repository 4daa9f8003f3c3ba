/**
 * A session's Spark Connect backend (`SluiceSession.builder().remote('sc://…')`): DataFrames compile to
 * Spark Connect relations (connect/compile.ts) and run on Spark. Static frames are collected as Arrow;
 * `writeStream.start()` sends WriteStreamOperationStart and returns a RemoteStreamingQuery.
 */
import { AnalysisError } from '../expr/compile.js';
import type { Trigger } from '../exec/trigger.js';
import type { LogicalPlan } from '../plan/logical.js';
import {
  ArrayType,
  BinaryType,
  BooleanType,
  ByteType,
  DataType,
  DateType,
  DecimalType,
  DoubleType,
  FloatType,
  IntegerType,
  LongType,
  MapType,
  NullType,
  Row,
  ShortType,
  StringType,
  StructType,
  TimestampType,
} from '../types/index.js';
import { ConnectUnsupportedError, SparkConnectError, parseConnectUrl, type Msg } from './base.js';
import type { SparkConnectClient } from './client.js';
import type { Compiler } from './compile.js';
import { sparkKafkaOptions } from './kafkaOptions.js';
import { RemoteStreamingQuery } from './query.js';
import type { StreamingQueryListener } from '../exec/progress.js';

/** What writeStream holds when start() is called. */
export interface RemoteWriteSpec {
  format: string | undefined;
  options: Record<string, string>;
  outputMode: string;
  trigger: Trigger;
  queryName: string | undefined;
}

/** Options only Sluice's own engine reads: Spark would ignore them silently, so they are named when dropped. */
const SLUICE_ONLY = /^(deadLetter\.|lateEvents\.|onBadRecord$|createMissingTopics$|exactlyOnce)/;

/**
 * Settings Sluice's semantics assume, sent unless the session sets them: Sluice computes hour(), to_date(),
 * date_format() and to_json() timestamps in UTC, and casts with Spark's non-ANSI rules.
 */
const SESSION_DEFAULTS: Record<string, string> = { 'spark.sql.session.timeZone': 'UTC', 'spark.sql.ansi.enabled': 'false' };

/** What an action needs: gRPC with Spark's protos, the compiler, Arrow. */
interface Loaded {
  client: SparkConnectClient;
  compiler(ctx: ConstructorParameters<typeof Compiler>[0]): Compiler;
  rows(responses: Msg[]): Row[];
}

export class SparkConnectBackend {
  private loaded: Promise<Loaded> | undefined;
  private ready: Promise<string> | undefined;
  /** The `spark.*` values Spark has (or refused), so a setting changed later is sent before the next action. */
  private readonly sent = new Map<string, string>();

  constructor(
    readonly url: string,
    private readonly conf: () => Record<string, string>,
    private readonly log: (line: string) => void,
    private readonly listeners: () => StreamingQueryListener[] = () => [],
  ) {
    parseConnectUrl(url); // a malformed address fails when the session is made
  }

  /**
   * gRPC, Spark's protos, Arrow and the compiler are loaded at the session's first action, not when Sluice is
   * imported: a program that never runs on Spark does not pay for them (about half of `import 'sluice'`).
   */
  private load(): Promise<Loaded> {
    return (this.loaded ??= Promise.all([import('./client.js'), import('./compile.js'), import('./arrow.js')]).then(([client, compile, arrow]) => ({
      client: new client.SparkConnectClient(this.url),
      compiler: (ctx) => new compile.Compiler(ctx),
      // The rows of a plan's Arrow batches.
      rows: (responses) => arrow.rowsFromArrow(responses.flatMap((r) => (r.arrow_batch ? [(r.arrow_batch as Msg).data as Uint8Array] : []))),
    })));
  }

  /**
   * Checks the server's version (once), then sends the `spark.*` settings set or changed since the last action
   * — one at a time, as PySpark does, so a setting Spark will not change in a running session
   * (spark.driver.memory, spark.sql.warehouse.dir) is reported and skipped, not fatal to the others. Calls are
   * chained: two actions at once cannot run before the settings reached Spark.
   */
  connect(): Promise<string> {
    const next = this.connecting.then(() => this.sync());
    this.connecting = next.catch(() => {});
    return next;
  }
  private connecting: Promise<unknown> = Promise.resolve();

  private async sync(): Promise<string> {
    const { client } = await this.load();
    const version = await (this.ready ??= client.sparkVersion().catch((e: unknown) => {
      this.ready = undefined;
      throw e;
    }));
    const wanted = { ...SESSION_DEFAULTS, ...Object.fromEntries(Object.entries(this.conf()).filter(([k]) => k.startsWith('spark.'))) };
    for (const [k, v] of Object.entries(wanted)) {
      if (this.sent.get(k) === v) continue;
      try {
        await client.setConf({ [k]: v });
        this.sent.set(k, v);
      } catch (e) {
        if (!(e instanceof SparkConnectError) || e.grpcCode === 14) throw this.lost(e);
        this.log(`WARN Spark did not take ${k}=${v}: ${e.message}`);
        // Refused for good (a static setting): not asked again. Another error: asked again at the next action.
        if (/CANNOT_MODIFY_CONFIG|static/i.test(e.message)) this.sent.set(k, v);
      }
    }
    return version;
  }

  /**
   * The server did not answer: it may come back as a new process, with a new session for our session id that
   * has none of our settings (Spark 3.5 creates it silently). Everything is sent again at the next action.
   */
  private lost(e: unknown): unknown {
    this.sent.clear();
    this.ready = undefined;
    return e;
  }

  /** Runs an action; a server that stops answering makes the next action send the settings again. */
  private async act<T>(run: (l: Loaded) => Promise<T>): Promise<T> {
    await this.connect();
    const l = await this.load();
    try {
      return await run(l);
    } catch (e) {
      if (e instanceof SparkConnectError && e.grpcCode === 14) throw this.lost(e);
      throw e;
    }
  }

  /** The Spark Connect relation for a plan (what would be sent); with `run`, ready to run: schemas registered, cached parts persisted. */
  private async relation(l: Loaded, plan: LogicalPlan, run = false): Promise<Msg> {
    const c = l.compiler({ warn: (line) => this.log(`WARN ${line}`), register: run });
    const rel = await c.relation(plan);
    if (run) {
      for (const cached of c.toPersist) await l.client.analyze({ persist: { relation: cached } });
    }
    return rel;
  }

  async collect(plan: LogicalPlan): Promise<Row[]> {
    return this.act(async (l) => l.rows(await l.client.execute({ root: await this.relation(l, plan, true) })));
  }

  /** Releases what cache() asked Spark to keep for this plan. */
  async unpersist(plan: LogicalPlan): Promise<void> {
    await this.act(async (l) => l.client.analyze({ unpersist: { relation: await this.relation(l, plan), blocking: false } }));
  }

  /** The number of rows, counted by Spark (not by fetching them). */
  async count(plan: LogicalPlan): Promise<number> {
    return this.act(async (l) => {
      const input = await this.relation(l, plan, true);
      const count = { alias: { expr: { unresolved_function: { function_name: 'count', arguments: [{ literal: { integer: 1 } }] } }, name: ['count'] } };
      const rows = l.rows(await l.client.execute({ root: { aggregate: { input, group_type: 'GROUP_TYPE_GROUPBY', grouping_expressions: [], aggregate_expressions: [count] } } }));
      return Number(rows[0]?.count ?? 0);
    });
  }

  async schema(plan: LogicalPlan): Promise<StructType> {
    const r = await this.act(async (l) => l.client.analyze({ schema: { plan: { root: await this.relation(l, plan) } } }));
    const t = sluiceType((r.schema as Msg).schema as Msg);
    if (!(t instanceof StructType)) throw new SparkConnectError(`Spark answered a schema that is not a struct: ${t.simpleString()}`);
    return t;
  }

  /** Spark's plan for the DataFrame (`explain(mode)`: simple, extended, codegen, cost, formatted). */
  async explain(plan: LogicalPlan, mode = 'simple'): Promise<string> {
    const r = await this.act(async (l) => l.client.analyze({ explain: { plan: { root: await this.relation(l, plan) }, explain_mode: `EXPLAIN_MODE_${mode.toUpperCase()}` } }));
    return String((r.explain as Msg).explain_string ?? '');
  }

  /** Spark's own show() text. */
  async showString(plan: LogicalPlan, numRows: number, truncate: boolean | number): Promise<string> {
    return this.act(async (l) => {
      const input = await this.relation(l, plan, true);
      const t = truncate === true ? 20 : truncate === false ? 0 : truncate;
      const rows = l.rows(await l.client.execute({ root: { show_string: { input, num_rows: numRows, truncate: t, vertical: false } } }));
      return String(rows[0]?.show_string ?? '');
    });
  }

  async startStream(plan: LogicalPlan, w: RemoteWriteSpec): Promise<RemoteStreamingQuery> {
    if (w.format === 'foreachBatch' || w.format === 'foreach') {
      throw new ConnectUnsupportedError(
        `writeStream.${w.format}() with a JavaScript function`,
        "Spark would call this process's function for every batch (Spark Connect 3.5 runs only Python and Scala functions there)",
        'Write to Kafka (format("kafka")), or to files, and process the output from there; or run this query locally.',
      );
    }
    if (!w.format) throw new AnalysisError('writeStream: call .format("kafka") (or parquet, json, …) before start().');
    if (w.format === 'memory') {
      throw new ConnectUnsupportedError(
        'format("memory")',
        "the table would be kept in the Spark driver's memory, where session.table() here cannot read it",
        'Write to a Kafka topic (and read it back with session.read.format("kafka")), or to files; or run this query locally.',
      );
    }
    if (w.format === 'console') this.log("WARN format(\"console\") on Spark prints each batch to the Spark driver's output (its log), not here.");
    if ((w.options.exactlyOnce ?? '').toLowerCase() === 'true') {
      throw new ConnectUnsupportedError(
        'The exactly-once Kafka sink (exactlyOnce=true)',
        "Spark's Kafka sink writes at-least-once: it has no transactions, so a batch re-run after a failure is written again",
        'On Spark, make the output idempotent downstream (a key per record and a compacted topic, or dedupe when reading); or run this query locally for exactly-once.',
      );
    }
    const dropped = Object.keys(w.options).filter((k) => SLUICE_ONLY.test(k));
    if (dropped.length) {
      this.log(
        `WARN Spark does not know ${dropped.join(', ')}: these are Sluice engine options (dead letters, late events, topic creation, exactly-once), ` +
          'not sent to Spark. On Spark a record that cannot be decoded fails the query, and late rows are dropped (counted in stateOperators.numRowsDroppedByWatermark).',
      );
    }
    let options = Object.fromEntries(Object.entries(w.options).filter(([k]) => !SLUICE_ONLY.test(k)));
    if (w.format === 'kafka') options = sparkKafkaOptions(options, (l) => this.log(`WARN ${l}`));
    if (w.format === 'kafka' && !options.checkpointLocation && !this.conf()['spark.sql.streaming.checkpointLocation']) {
      throw new AnalysisError(
        'The kafka sink needs a checkpoint on Spark too: set .option("checkpointLocation", …) to a folder the Spark driver can write ' +
          '(an absolute path on its machine, or a hdfs:// / s3a:// URI) — one per query, kept across restarts.',
      );
    }
    return this.act((l) => this.submit(l, plan, w, options));
  }

  private async submit(l: Loaded, plan: LogicalPlan, w: RemoteWriteSpec, options: Record<string, string>): Promise<RemoteStreamingQuery> {
    const input = await this.relation(l, plan, true);
    const trigger =
      w.trigger.kind === 'availableNow'
        ? { available_now: true }
        : w.trigger.kind === 'once'
          ? { once: true }
          : w.trigger.intervalMs > 0
            ? { processing_time_interval: `${w.trigger.intervalMs} milliseconds` }
            : {};
    const responses = await l.client.execute({
      command: {
        write_stream_operation_start: {
          input,
          format: w.format,
          options,
          output_mode: w.outputMode,
          ...(w.queryName ? { query_name: w.queryName } : {}),
          ...trigger,
        },
      },
    });
    const started = responses.find((r) => r.write_stream_operation_start_result)?.write_stream_operation_start_result as Msg | undefined;
    const id = started?.query_id as Msg | undefined;
    if (!id) throw new SparkConnectError('Spark Connect did not return the started query id.');
    const q = new RemoteStreamingQuery(l.client, String(id.id), String(id.run_id), started?.name ? String(started.name) : (w.queryName ?? null), this.listeners);
    await q.explainPlan().catch(() => '');
    return q;
  }

  close(): void {
    void this.loaded?.then((l) => l.client.close(), () => {});
  }
}

/** A Spark Connect DataType message (types.proto) as a Sluice type. */
export function sluiceType(t: Msg): DataType {
  const [kind, v] = Object.entries(t).find(([k]) => k !== 'kind') ?? ['', {}];
  const m = v as Msg;
  switch (kind) {
    case 'string':
    case 'char':
    case 'var_char':
      return StringType;
    case 'integer':
      return IntegerType;
    case 'long':
      return LongType;
    case 'short':
      return ShortType;
    case 'byte':
      return ByteType;
    case 'double':
      return DoubleType;
    case 'float':
      return FloatType;
    case 'boolean':
      return BooleanType;
    case 'timestamp':
      return TimestampType;
    case 'date':
      return DateType;
    case 'binary':
      return BinaryType;
    case 'null':
      return NullType;
    case 'decimal':
      return new DecimalType(Number(m.precision ?? 10), Number(m.scale ?? 0));
    case 'array':
      return new ArrayType(sluiceType(m.element_type as Msg), Boolean(m.contains_null));
    case 'map':
      return new MapType(sluiceType(m.key_type as Msg), sluiceType(m.value_type as Msg));
    case 'struct':
      return new StructType(
        ((m.fields as Msg[] | undefined) ?? []).map((f) => ({ name: String(f.name), dataType: sluiceType(f.data_type as Msg), nullable: Boolean(f.nullable) })),
      );
    default:
      throw new SparkConnectError(`Spark answered a type Sluice does not have yet (${kind || 'unknown'}).`);
  }
}
