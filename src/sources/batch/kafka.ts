/**
 * `session.read.format('kafka')`: a topic's contents between two offsets, read once, as Spark's batch Kafka
 * source (KafkaRelation). The schema is the streaming source's fixed columns (key, value, topic, partition,
 * offset, timestamp, timestampType, and headers with includeHeaders). Each read resolves the offsets anew:
 * `startingOffsets` (default earliest) and `endingOffsets` (default latest, i.e. what the topic holds now),
 * so the static side of a stream-static join sees the records written since the last batch.
 *
 * The work is the streaming source's (sources/kafka.ts): partitions from subscribe / subscribePattern /
 * assign, offsets resolved by the same admin calls and isolation level (read_committed), the range read
 * partition by partition in offset order in chunks (RangeReader.readChunks), data loss reported as there.
 * Options that only make sense for a stream (maxOffsetsPerTrigger, …) are refused rather than ignored.
 */
import type { BatchSourceSpec } from '../../plan/logical.js';
import { KafkaError, kafkaConfigFromOptions, type PartitionOffsets } from '../../kafka/client.js';
import type { Row, StructType } from '../../types/index.js';
import { BatchReader, BatchSourceError, registerBatchReader } from '../batch.js';
import { describeKafka, KafkaSource } from '../kafka.js';
import { kafkaSchema } from '../schema.js';
import { unknownOption } from './common.js';

const KAFKA_OPTIONS: Record<string, string> = {
  subscribe: 'topics to read, comma-separated',
  subscribePattern: 'a regex: the topics whose names match',
  assign: 'JSON of the partitions to read, {"topic":[0,1]}',
  startingOffsets: 'where to start: "earliest" (default) or JSON {"topic":{"0":23,"1":-2}} (-2 = earliest)',
  endingOffsets: 'where to stop (exclusive): "latest" (default) or JSON {"topic":{"0":50,"1":-1}} (-1 = latest)',
  failOnDataLoss: 'false: go on when records in the range were deleted (retention), reading what is left (default true)',
  includeHeaders: 'true: add the headers column (default false)',
  'kafkaConsumer.pollTimeoutMs': 'how long to wait for records the offsets say exist (default 120000)',
};

const STREAMING_ONLY = ['maxOffsetsPerTrigger', 'minOffsetsPerTrigger', 'maxTriggerDelay'];

/** Options with Spark's spelling (option names are case-insensitive); `kafka.*` pass through to librdkafka. */
function normalize(options: Readonly<Record<string, string>>): Record<string, string> {
  const byLower = new Map(Object.keys(KAFKA_OPTIONS).map((k) => [k.toLowerCase(), k]));
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(options)) {
    if (key.toLowerCase().startsWith('kafka.')) {
      out[`kafka.${key.slice('kafka.'.length)}`] = value;
      continue;
    }
    const name = byLower.get(key.toLowerCase());
    if (name) {
      // Spark reads boolean options case-insensitively; the streaming source compares with 'true'/'false'.
      out[name] = name === 'includeHeaders' || name === 'failOnDataLoss' ? value.trim().toLowerCase() : value;
      continue;
    }
    const streaming = STREAMING_ONLY.find((s) => s.toLowerCase() === key.toLowerCase());
    if (streaming) {
      throw new BatchSourceError(
        `Option ${streaming} applies to streaming reads (session.readStream) only: a batch read takes the whole range between ` +
          'startingOffsets and endingOffsets. Narrow the range with those instead.',
      );
    }
    throw new BatchSourceError(
      unknownOption('kafka', key, Object.keys(KAFKA_OPTIONS), ', and kafka.* settings passed to the client (kafka.bootstrap.servers, kafka.security.protocol, …)'),
    );
  }
  return out;
}

/** A JSON offsets option: topic → partition → offset. */
function parseOffsetsJson(name: string, text: string): PartitionOffsets {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new BatchSourceError(`${name} must be ${name === 'startingOffsets' ? '"earliest"' : '"latest"'} or JSON like {"topic":{"0":23}}, got ${text}.`);
  }
  const ok =
    typeof parsed === 'object' &&
    parsed !== null &&
    Object.values(parsed).every(
      (ps) => typeof ps === 'object' && ps !== null && Object.entries(ps).every(([p, o]) => /^\d+$/.test(p) && Number.isInteger(o) && (o as number) >= -2),
    );
  if (!ok) throw new BatchSourceError(`${name} JSON must map topics to {"partition": offset} with whole offsets (-2 earliest, -1 latest), got ${text}.`);
  return parsed as PartitionOffsets;
}

class KafkaBatchReader implements BatchReader {
  private readonly options: Record<string, string>;
  private readonly ending: PartitionOffsets | undefined;

  constructor(spec: BatchSourceSpec) {
    if (spec.userSchema) {
      throw new BatchSourceError(
        'The Kafka source has a fixed schema (key, value, topic, partition, offset, timestamp, timestampType); .schema() cannot change it. ' +
          'Parse the value instead: from_json(col("value").cast("string"), schema) or fromAvro(col("value"), …).',
      );
    }
    if (spec.paths.length) throw new BatchSourceError(`The Kafka source reads topics, not paths: drop ${spec.paths.join(', ')} from load(), and use .option('subscribe', 'topic').`);
    this.options = normalize(spec.options);
    try {
      describeKafka(this.options); // exactly one of subscribe / subscribePattern / assign
      kafkaConfigFromOptions(this.options); // kafka.bootstrap.servers given, Java-only settings explained
    } catch (e) {
      if (e instanceof KafkaError) throw new BatchSourceError(e.message);
      throw e;
    }
    // Spark takes the keywords in any case (`Earliest`); JSON keeps its case (topic names).
    const keyword = (v: string): string => (/^(earliest|latest)$/i.test(v.trim()) ? v.trim().toLowerCase() : v.trim());
    const starting = keyword(this.options.startingOffsets ?? 'earliest');
    if (starting === 'latest') {
      throw new BatchSourceError(
        'startingOffsets cannot be "latest" for a batch read: it would read nothing. Use "earliest" (the default) or JSON offsets; ' +
          'to read only new records as they come, use session.readStream.',
      );
    }
    if (starting !== 'earliest') {
      const json = parseOffsetsJson('startingOffsets', starting);
      const bad = Object.entries(json).flatMap(([t, ps]) => Object.entries(ps).filter(([, o]) => o === -1).map(([p]) => `${t}-${p}`));
      if (bad.length) throw new BatchSourceError(`startingOffsets: -1 (latest) is not allowed in a batch read (${bad.join(', ')}): the range would be empty.`);
    }
    this.options.startingOffsets = starting;
    const ending = keyword(this.options.endingOffsets ?? 'latest');
    if (ending === 'earliest') throw new BatchSourceError('endingOffsets cannot be "earliest" for a batch read: it would read nothing. Use "latest" (the default) or JSON offsets.');
    if (ending !== 'latest') {
      this.ending = parseOffsetsJson('endingOffsets', ending);
      const bad = Object.entries(this.ending).flatMap(([t, ps]) => Object.entries(ps).filter(([, o]) => o === -2).map(([p]) => `${t}-${p}`));
      if (bad.length) throw new BatchSourceError(`endingOffsets: -2 (earliest) is not allowed in a batch read (${bad.join(', ')}): the range would be empty.`);
    }
    delete this.options.endingOffsets;
  }

  async schema(): Promise<StructType> {
    return kafkaSchema(this.options.includeHeaders === 'true');
  }

  async *read(): AsyncGenerator<Row[]> {
    const source = new KafkaSource(this.options);
    try {
      // The streaming source resolves startingOffsets for a new query exactly as a batch read wants them.
      const start = (await source.initialOffset()) as PartitionOffsets;
      const latest = (await source.latestOffset(start, { unlimited: true })) as PartitionOffsets;
      const end = this.ending ? this.endFrom(latest) : latest;
      for (const [topic, ps] of Object.entries(end)) {
        for (const [p, e] of Object.entries(ps)) {
          const s = start[topic]?.[p];
          if (s !== undefined && s > e) {
            throw new BatchSourceError(`Kafka batch read of ${topic}-${p}: startingOffsets ${s} is past endingOffsets ${e}. Give a starting offset at or before the ending one.`);
          }
        }
      }
      // A partition that appeared between the two look-ups starts at its earliest offset, as in the stream.
      const from = ((await source.readFrom(start, end)) ?? start) as PartitionOffsets;
      yield* source.getBatch(from, end);
    } finally {
      await source.stop();
    }
  }

  /** endingOffsets JSON over the partitions there are now: -1 and partitions it does not name end at the latest offset. */
  private endFrom(latest: PartitionOffsets): PartitionOffsets {
    const out = structuredClone(latest);
    for (const [topic, ps] of Object.entries(this.ending!)) {
      for (const [p, o] of Object.entries(ps)) {
        const last = latest[topic]?.[p];
        if (last === undefined) throw new BatchSourceError(`endingOffsets names ${topic}-${p}, which this read does not cover (no such topic or partition, or not subscribed).`);
        if (o === -1) continue;
        if (o > last) {
          throw new BatchSourceError(
            `endingOffsets asks for ${topic}-${p} up to offset ${o}, but the partition ends at ${last} now. Give an offset up to ${last}, or -1 for the latest.`,
          );
        }
        out[topic]![p] = o;
      }
    }
    return out;
  }
}

registerBatchReader('kafka', { create: (spec) => new KafkaBatchReader(spec) });
