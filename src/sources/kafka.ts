/**
 * The Kafka source, with Spark's options and semantics: offsets live in the checkpoint (not in a
 * consumer group), each batch reads an exact offset range, `startingOffsets` applies only to a new
 * query, `maxOffsetsPerTrigger` is shared among partitions in proportion to their backlog, and data
 * loss (offsets deleted by retention, a deleted topic) fails the query unless `failOnDataLoss=false`.
 */
import { kafkaSchema } from './schema.js';
import type { Offset } from '../checkpoint/checkpoint.js';
import {
  IsolationLevel, KafkaAdmin, KafkaConfig, KafkaError, PartitionOffsets, RangeReader, TopicPartition, isolationOf, kafkaConfigFromOptions,
  type KafkaMessage,
} from '../kafka/client.js';
import { Row, StructType } from '../types/index.js';
import { CHUNK_ROWS, type ReadLimit, type Source, type SourceInspection } from './source.js';


type Strategy = { kind: 'subscribe'; topics: string[] } | { kind: 'pattern'; regex: RegExp } | { kind: 'assign'; parts: TopicPartition[] };

function parseStrategy(options: Readonly<Record<string, string>>): Strategy {
  const given = ['subscribe', 'subscribePattern', 'assign'].filter((k) => options[k] !== undefined);
  if (given.length !== 1) {
    throw new KafkaError(
      `The Kafka source needs exactly one of the options "subscribe" (topic list), "subscribePattern" (regex) or "assign" ` +
        `(JSON {"topic":[0,1]}); ${given.length ? `got ${given.join(' and ')}` : 'none was given'}.`,
    );
  }
  if (options.subscribe !== undefined) {
    const topics = options.subscribe.split(',').map((t) => t.trim()).filter(Boolean);
    if (!topics.length) throw new KafkaError('Option "subscribe" is empty: give one or more topic names, comma-separated.');
    return { kind: 'subscribe', topics };
  }
  if (options.subscribePattern !== undefined) return { kind: 'pattern', regex: new RegExp(`^(?:${options.subscribePattern})$`) };
  let parsed: Record<string, number[]>;
  try {
    parsed = JSON.parse(options.assign!);
  } catch {
    throw new KafkaError(`Option "assign" must be JSON like {"topicA":[0,1]}, got ${options.assign}.`);
  }
  return { kind: 'assign', parts: Object.entries(parsed).flatMap(([topic, ps]) => ps.map((partition) => ({ topic, partition }))) };
}

export function describeKafka(options: Readonly<Record<string, string>>): string {
  const s = parseStrategy(options);
  const what =
    s.kind === 'subscribe' ? `Subscribe[${s.topics.join(',')}]` : s.kind === 'pattern' ? `SubscribePattern[${options.subscribePattern}]` : `Assign[${options.assign}]`;
  return `KafkaV2[${what}]`;
}

export class KafkaSource implements Source {
  readonly schema: StructType;
  private readonly conf: KafkaConfig;
  private readonly strategy: Strategy;
  private readonly admin: KafkaAdmin;
  private readonly reader: RangeReader;
  /** The end offsets latestOffset() last returned and the earliest offsets it saw (reused by getBatch()). */
  private planned: { end: string; earliest: PartitionOffsets } | undefined;
  /** Since when latestOffset() has found nothing new. */
  private idleSince: number | undefined;
  private readonly includeHeaders: boolean;
  private readonly failOnDataLoss: boolean;
  private readonly maxOffsetsPerTrigger: number | undefined;
  /** read_committed (default): offsets end at the last stable offset, and aborted records are never read. */
  private readonly isolation: IsolationLevel;

  constructor(
    private readonly options: Readonly<Record<string, string>>,
    private readonly log: (msg: string) => void = (m) => console.warn(m),
  ) {
    this.strategy = parseStrategy(options);
    this.conf = kafkaConfigFromOptions(options);
    this.isolation = isolationOf(this.conf);
    this.conf['isolation.level'] = this.isolation; // the consumer reads with the level the offsets were listed with
    this.includeHeaders = options.includeHeaders === 'true';
    this.failOnDataLoss = options.failOnDataLoss !== 'false';
    this.maxOffsetsPerTrigger = options.maxOffsetsPerTrigger ? Number(options.maxOffsetsPerTrigger) : undefined;
    if (this.maxOffsetsPerTrigger !== undefined && !(this.maxOffsetsPerTrigger > 0)) {
      throw new KafkaError(`maxOffsetsPerTrigger must be a positive number, got "${options.maxOffsetsPerTrigger}".`);
    }
    this.schema = kafkaSchema(this.includeHeaders);
    const pollTimeoutMs = options['kafkaConsumer.pollTimeoutMs'] ? Number(options['kafkaConsumer.pollTimeoutMs']) : 120_000;
    // A broker away for a while (a restart) stalls planning instead of failing the query: admin calls that
    // failed for a transient reason are tried again for as long as a read waits for records.
    this.admin = new KafkaAdmin(this.conf, 15_000, pollTimeoutMs);
    this.reader = new RangeReader(this.conf, pollTimeoutMs);
  }

  describe(): string {
    return describeKafka(this.options);
  }

  /** The topics the strategy names now that exist, and those named (subscribe, assign) that do not. */
  private async topicsNow(admin: KafkaAdmin): Promise<{ topics: string[]; missing: string[] }> {
    const existing = await admin.listTopics();
    const st = this.strategy;
    const named = st.kind === 'subscribe' ? st.topics : st.kind === 'assign' ? [...new Set(st.parts.map((p) => p.topic))] : existing.filter((t) => st.regex.test(t));
    return { topics: named.filter((t) => existing.includes(t)), missing: named.filter((t) => !existing.includes(t)) };
  }

  private static async partitionsOf(admin: KafkaAdmin, topics: string[]): Promise<TopicPartition[]> {
    if (!topics.length) return [];
    return (await admin.describeTopics(topics)).flatMap((t) => t.partitions.map((p) => ({ topic: t.name, partition: p.partition })));
  }

  /** The partitions the strategy names now (topics and partitions can appear while a query runs). */
  private async partitions(): Promise<TopicPartition[]> {
    if (this.strategy.kind === 'assign') return this.strategy.parts;
    const { topics, missing } = await this.topicsNow(this.admin);
    if (this.strategy.kind === 'subscribe' && missing.length === this.strategy.topics.length) {
      throw new KafkaError(
        `Topic${missing.length > 1 ? 's' : ''} ${missing.map((t) => `"${t}"`).join(', ')} do${missing.length > 1 ? '' : 'es'} not exist ` +
          `on ${this.conf['bootstrap.servers']}. Create it first (sluice topics create ${missing[0]}), or check the name.`,
      );
    }
    return KafkaSource.partitionsOf(this.admin, topics);
  }

  /**
   * For diagnose(): missing topics, what a pattern matches, and the partitions' earliest and latest offsets
   * now. Asked with an admin client of its own that does not retry (5 s): a broker away must not hold a
   * diagnosis for the query's 2-minute retry, nor queue behind the query's own planning calls.
   */
  async inspect(): Promise<SourceInspection> {
    const admin = (this.inspectAdmin ??= new KafkaAdmin(this.conf, 5_000, 0));
    const out: SourceInspection = this.options.startingOffsets !== undefined ? { startingOffsets: this.options.startingOffsets.trim() } : {};
    const { topics, missing } = await this.topicsNow(admin);
    if (this.strategy.kind === 'pattern') {
      out.pattern = this.options.subscribePattern!;
      out.matchedTopics = topics;
    } else {
      out.missingTopics = missing;
    }
    // assign: only the assigned partitions of the topics that exist (not every partition of them).
    const parts = this.strategy.kind === 'assign' ? this.strategy.parts.filter((p) => topics.includes(p.topic)) : await KafkaSource.partitionsOf(admin, topics);
    if (parts.length) [out.earliest, out.latest] = await Promise.all([admin.listOffsets(parts, 'earliest'), admin.listOffsets(parts, 'latest', this.isolation)]);
    return out;
  }
  private inspectAdmin: KafkaAdmin | undefined;

  async initialOffset(): Promise<Offset> {
    const parts = await this.partitions();
    const spec = (this.options.startingOffsets ?? 'latest').trim();
    if (spec === 'earliest' || spec === 'latest') return this.admin.listOffsets(parts, spec, this.isolation);
    let wanted: PartitionOffsets;
    try {
      wanted = JSON.parse(spec);
    } catch {
      throw new KafkaError(
        `startingOffsets must be "earliest", "latest" or JSON like {"topic":{"0":23,"1":-2}} (-2 = earliest, -1 = latest); got ${spec}.`,
      );
    }
    const [earliest, latest] = await Promise.all([this.admin.listOffsets(parts, 'earliest'), this.admin.listOffsets(parts, 'latest', this.isolation)]);
    const out: PartitionOffsets = {};
    for (const { topic, partition } of parts) {
      const p = String(partition);
      const w = wanted[topic]?.[p];
      // Partitions the JSON does not name start at earliest, as partitions discovered later do.
      (out[topic] ??= {})[p] = w === undefined || w === -2 ? earliest[topic]![p]! : w === -1 ? latest[topic]![p]! : w;
    }
    return out;
  }

  async latestOffset(startOffset: Offset, limit: ReadLimit): Promise<Offset> {
    this.reader.warm(); // the consumer connects while the offsets are listed (once; later calls find it connected)
    const start = startOffset as PartitionOffsets;
    const parts = await this.partitions();
    const [earliest, latest] = await Promise.all([this.admin.listOffsets(parts, 'earliest'), this.admin.listOffsets(parts, 'latest', this.isolation)]);
    const from: PartitionOffsets = {};
    for (const { topic, partition } of parts) {
      const p = String(partition);
      const s = start[topic]?.[p];
      // A partition new since the last batch starts at its earliest offset (Spark does the same).
      (from[topic] ??= {})[p] = s ?? earliest[topic]![p]!;
    }
    this.checkDataLoss(start, from, earliest, latest);
    let end: PartitionOffsets = {};
    for (const [topic, ps] of Object.entries(from)) {
      for (const [p, s] of Object.entries(ps)) {
        // Offsets that went back (failOnDataLoss=false) start again at the earliest (checkDataLoss), so the
        // batch ends at the new latest, below the last batch's end: readFrom() logs where it reads from.
        let e = Math.max(latest[topic]![p]!, s);
        const cap = (limit.upTo as PartitionOffsets | undefined)?.[topic]?.[p];
        if (cap !== undefined) e = Math.min(e, Math.max(cap, s));
        (end[topic] ??= {})[p] = e;
      }
    }
    const maxRows = limit.unlimited ? undefined : (limit.maxRows ?? this.maxOffsetsPerTrigger);
    if (maxRows !== undefined) end = this.rateLimit(from, end, maxRows);
    this.planned = { end: JSON.stringify(end), earliest };
    // Caught up for a second: stop reading ahead (the consumer would otherwise fetch every few ms while idle).
    const idle = Object.entries(end).every(([t, ps]) => Object.entries(ps).every(([p, e]) => start[t]?.[p] === e));
    if (!idle) this.idleSince = undefined;
    else if ((this.idleSince ??= Date.now()) < Date.now() - 1_000) this.reader.release();
    return end;
  }

  /** Spark's KafkaMicroBatchStream.rateLimit: each partition gets a share of the limit proportional to its backlog. */
  private rateLimit(from: PartitionOffsets, until: PartitionOffsets, limit: number): PartitionOffsets {
    let total = 0;
    for (const [t, ps] of Object.entries(until)) for (const [p, e] of Object.entries(ps)) total += e - from[t]![p]!;
    if (total <= limit) return until;
    const out: PartitionOffsets = {};
    for (const [t, ps] of Object.entries(until)) {
      for (const [p, e] of Object.entries(ps)) {
        const b = from[t]![p]!;
        const prorate = limit * ((e - b) / total);
        const off = b + (prorate < 1 ? Math.ceil(prorate) : Math.floor(prorate));
        (out[t] ??= {})[p] = Math.min(off, e);
      }
    }
    return out;
  }

  /**
   * Data loss (Spark's reportDataLoss): records between the last batch's end and the earliest offset still
   * there were deleted (retention, a recreated topic); a partition is gone; or the partition's latest offset
   * went back below where the last batch ended (the topic was deleted and recreated, or truncated): the new
   * records at offsets the checkpoint already passed would be skipped silently.
   */
  private checkDataLoss(start: PartitionOffsets, from: PartitionOffsets, earliest: PartitionOffsets, latest?: PartitionOffsets): void {
    const problems: string[] = [];
    for (const [t, ps] of Object.entries(start)) {
      for (const [p, s] of Object.entries(ps)) {
        const first = earliest[t]?.[p];
        const last = latest?.[t]?.[p];
        if (first === undefined) problems.push(`partition ${t}-${p} no longer exists (topic deleted or recreated?)`);
        else if (last !== undefined && last < s) {
          problems.push(
            `${t}-${p}: its latest offset is ${last}, below ${s} where the last batch ended: the offsets went back (topic deleted and ` +
              `recreated, or truncated), and the records now at offsets below ${s} would never be read`,
          );
          from[t]![p] = first;
        } else if (s < first) {
          problems.push(`${t}-${p}: offsets ${s}..${first - 1} were deleted before they were read (retention or a topic recreated)`);
          from[t]![p] = first;
        }
      }
    }
    this.reportDataLoss(problems);
  }

  /** Stops the query on data loss, or with failOnDataLoss=false logs it and goes on (Spark's reportDataLoss). */
  private reportDataLoss(problems: string[]): void {
    if (!problems.length) return;
    const msg = `Data loss in the Kafka source: ${problems.join('; ')}.`;
    if (this.failOnDataLoss) {
      throw new KafkaError(
        `${msg} The query stops so the loss is not silent. If losing these records is acceptable, restart with ` +
          `.option('failOnDataLoss', 'false'): reading then resumes at the earliest offset still available.`,
      );
    }
    this.log(`WARN ${msg} Continuing because failOnDataLoss=false.`);
  }

  /**
   * Where the batch (start, end] reads from when it is not `start`: a partition new since the last batch
   * starts at its earliest offset; a partition whose offsets went back (failOnDataLoss=false) at its new
   * earliest. Logged in offsets/N by the loop, so a re-run reads from the same offsets.
   */
  async readFrom(startOffset: Offset, endOffset: Offset): Promise<Offset | undefined> {
    const start = startOffset as PartitionOffsets;
    const end = endOffset as PartitionOffsets;
    const changed: TopicPartition[] = [];
    for (const [topic, ps] of Object.entries(end)) {
      for (const [p, e] of Object.entries(ps)) {
        const s = start[topic]?.[p];
        if (s === undefined || e < s) changed.push({ topic, partition: Number(p) });
      }
    }
    if (!changed.length) return undefined;
    const earliest = await this.admin.listOffsets(changed, 'earliest');
    const from = structuredClone(start);
    const problems: string[] = [];
    for (const { topic, partition } of changed) {
      const p = String(partition);
      const first = earliest[topic]?.[p] ?? 0;
      // Spark: "Added partition t-p starts from X instead of 0. Some data may have been missed."
      if (start[topic]?.[p] === undefined && first > 0) {
        problems.push(`partition ${topic}-${partition} was added since the last batch, and its records 0..${first - 1} were deleted before they were read`);
      }
      // Never past the batch's end: a partition deleted down to its end reads nothing.
      (from[topic] ??= {})[p] = Math.min(first, end[topic]![p]!);
    }
    this.reportDataLoss(problems);
    return from;
  }

  async *getBatch(start: Offset, end: Offset): AsyncGenerator<Row[]> {
    // Records may have been deleted since the batch was planned (or, for a re-run, since it first ran).
    const from = structuredClone(start as PartitionOffsets);
    const parts = Object.entries(end as PartitionOffsets).flatMap(([topic, ps]) => Object.keys(ps).map((p) => ({ topic, partition: Number(p) })));
    // The batch just planned here: its earliest offsets were listed a moment ago (one broker round trip less
    // per batch, which low-latency batches feel). A re-run after a restart lists them again. Records deleted
    // in the moment between would fail the read itself (the reader's offset reset is `error`).
    const planned = this.planned;
    this.planned = undefined;
    const earliest = planned?.end === JSON.stringify(end) ? planned.earliest : await this.admin.listOffsets(parts, 'earliest');
    this.checkDataLoss(start as PartitionOffsets, from, earliest);
    const withHeaders = this.includeHeaders;
    // Each row made straight from librdkafka's message: one object per record on the hot path.
    const row = (m: KafkaMessage): Row => {
      const r: Row = {
        key: m.key == null ? null : Buffer.isBuffer(m.key) ? m.key : Buffer.from(m.key),
        value: m.value,
        topic: m.topic,
        partition: m.partition,
        offset: m.offset,
        timestamp: new Date(m.timestamp ?? -1),
        timestampType: 0,
      };
      if (withHeaders) {
        r.headers = (m.headers ?? []).flatMap((h) => Object.entries(h).map(([key, value]) => ({ key, value: Buffer.isBuffer(value) ? value : Buffer.from(value) })));
      }
      return r;
    };
    yield* this.reader.readChunks(from, end as PartitionOffsets, CHUNK_ROWS, row);
  }

  async stop(): Promise<void> {
    await this.reader.close();
    this.admin.disconnect();
    this.inspectAdmin?.disconnect();
  }
}

