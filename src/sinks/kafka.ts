/**
 * The Kafka sink, as Spark's: the output rows carry `value` (string or binary, required), and optionally
 * `key`, `topic` (overridden by the "topic" option when it is set), `partition` and `headers`. Every record of a batch is
 * acknowledged by the broker before the batch is committed: at-least-once. (A batch re-run after a crash
 * is written again; exactly-once needs the transactional sink or idempotent consumers.)
 */
import { AnalysisError } from '../expr/compile.js';
import { RecordError } from '../expr/values.js';
import { AckedProducer, OutgoingRecord, kafkaConfigFromOptions, recordWireSize } from '../kafka/client.js';
import { ArrayType, BinaryType, DataType, IntegerType, NullType, Row, StringType, StructType } from '../types/index.js';
import type { BadRowHandler, BatchWriter, OutputMode, Sink } from './sink.js';

const truncate = (b: Buffer): string => {
  const t = b.subarray(0, 64).toString('utf8');
  return b.length > 64 ? `${t}…` : t;
};

const bytes = (v: unknown): Buffer | null =>
  v == null ? null : Buffer.isBuffer(v) ? v : v instanceof Uint8Array ? Buffer.from(v) : Buffer.from(String(v), 'utf8');

function checkType(schema: StructType, name: string, ok: DataType[], required: boolean): boolean {
  const f = schema.field(name);
  if (!f) {
    if (required) {
      throw new AnalysisError(
        `The Kafka sink needs a "${name}" column (string or binary), but the output has only ${schema.fieldNames.map((n) => `\`${n}\``).join(', ')}. ` +
          `Build it, e.g. select(to_json(struct('*')).alias('value')) or toAvro(struct('*'), {...}).alias('value').`,
      );
    }
    return false;
  }
  if (!ok.some((t) => t.equals(f.dataType)) && f.dataType !== NullType) {
    throw new AnalysisError(
      `The Kafka sink's "${name}" column must be ${ok.map((t) => t.simpleString()).join(' or ')}, but it is ${f.dataType.simpleString()}. ` +
        `Cast it: col('${name}').cast('string').`,
    );
  }
  return true;
}

/** Checks the output schema before the query starts; returns a row → record converter. */
export function kafkaRecordMaker(schema: StructType, defaultTopic: string | undefined): (row: Row) => OutgoingRecord {
  checkType(schema, 'value', [StringType, BinaryType], true);
  const hasKey = checkType(schema, 'key', [StringType, BinaryType], false);
  const hasTopic = checkType(schema, 'topic', [StringType], false);
  const hasPartition = checkType(schema, 'partition', [IntegerType], false);
  const hasHeaders = checkType(schema, 'headers', [new ArrayType(new StructType().add('key', StringType).add('value', BinaryType))], false);
  if (!hasTopic && !defaultTopic) {
    throw new AnalysisError(
      'The Kafka sink does not know where to write: set .option("topic", "<name>"), or give the rows a "topic" column.',
    );
  }
  return (row) => {
    // Spark: the "topic" option, when set, overrides any topic column (a Kafka source's rows carry one: written
    // back as they are, they would otherwise go to the topic they came from).
    const topic = defaultTopic ?? (hasTopic ? (row.topic as string | null) : null);
    if (!topic) throw new Error('A row has a null "topic" and no "topic" option is set.');
    const rec: OutgoingRecord = { topic, value: bytes(row.value) };
    if (hasKey) rec.key = bytes(row.key);
    if (hasPartition && row.partition != null) rec.partition = row.partition as number;
    if (hasHeaders && Array.isArray(row.headers)) {
      rec.headers = (row.headers as Array<{ key: string; value: unknown }>).map((h) => ({ [h.key]: bytes(h.value) ?? Buffer.alloc(0) }));
    }
    return rec;
  };
}

export class KafkaSink implements Sink {
  private readonly producer: AckedProducer;
  private maker: ((row: Row) => OutgoingRecord) | undefined;
  constructor(private readonly options: Readonly<Record<string, string>>) {
    this.producer = new AckedProducer(kafkaConfigFromOptions(options));
  }
  describe(): string {
    return `KafkaSink[${this.options.topic ?? 'topic column'}]`;
  }
  /** Called before the query starts, so a wrong output schema stops it at once. */
  validate(schema: StructType): void {
    this.maker = kafkaRecordMaker(schema, this.options.topic);
  }
  async addBatch(batchId: number, rows: Row[], schema: StructType, mode: OutputMode): Promise<void> {
    const w = this.openBatch(batchId, schema, mode);
    await w.write(rows);
    await w.close();
  }
  /**
   * Records go to the producer as chunks come (its queue bounds what is in flight); close waits for every ack.
   *
   * A record larger than the producer's `message.max.bytes` would be refused by librdkafka in the middle of
   * the batch — after part of the batch was sent, so every restart would send that part again and fail on the
   * same record. So each chunk is checked before anything of it is produced, and such a record goes to
   * `onBad` (the dead-letter destination, or a failure with onBadRecord=fail) with its size and the fix.
   */
  openBatch(_batchId: number, schema: StructType, _mode: OutputMode, onBad?: BadRowHandler): BatchWriter {
    const make = (this.maker ??= kafkaRecordMaker(schema, this.options.topic));
    const limit = this.producer.maxRecordBytes;
    return {
      write: (rows) => {
        const records: OutgoingRecord[] = [];
        for (const row of rows) {
          const rec = make(row);
          const size = recordWireSize(rec);
          if (size <= limit) {
            records.push(rec);
            continue;
          }
          const e = new RecordError(
            `The output record${rec.key ? ` with key "${truncate(rec.key)}"` : ''} for topic "${rec.topic}" is ${size} bytes, above the ` +
              `producer's message.max.bytes (${limit}); Kafka would refuse it. Make the value smaller, or raise the limits: ` +
              `.option('kafka.message.max.bytes', <bytes>) for the producer, and the topic's max.message.bytes on the broker ` +
              `(kafka-configs.sh --alter --entity-type topics --entity-name ${rec.topic} --add-config max.message.bytes=<bytes>).`,
            'sink.record-too-large',
          );
          if (!onBad) throw e;
          onBad(row, e);
        }
        return this.producer.send(records);
      },
      close: () => this.producer.flush(),
    };
  }
  async stop(): Promise<void> {
    await this.producer.close();
  }
}
