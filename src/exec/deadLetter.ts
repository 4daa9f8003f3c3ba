/**
 * Where records that cannot be processed go (a bad Avro frame, an unknown schema id, a value that does
 * not fit the output schema): a Kafka topic with the reason in headers, or — when no topic is set — a
 * JSON-lines file per batch in the checkpoint's `deadletter/` folder. Nothing is dropped silently.
 */
import { closeSync, fsyncSync, openSync, rmSync, writeSync } from 'node:fs';
import { fsyncDir } from '../checkpoint/files.js';
import { join } from 'node:path';
import { AckedProducer, OutgoingRecord, kafkaConfigFromOptions, recordWireSize } from '../kafka/client.js';
import type { Row } from '../types/index.js';

export interface DeadLetter {
  /** The input row as the source produced it (for Kafka: key, value, topic, partition, offset, …). */
  readonly row: Row;
  /** A short reason code, e.g. `wire.bad-magic-byte`, `avro.unknown-schema-id`. */
  readonly reason: string;
  readonly message: string;
}

export interface DeadLetterWriter {
  describe(): string;
  /** Writes some of batch `batchId`'s dead letters; a batch may call it several times. */
  write(batchId: number, letters: DeadLetter[]): Promise<void>;
  stop(): Promise<void>;
}

/** Header names on dead-letter records (all strings). */
export const DLQ_HEADERS = {
  reason: 'sluice.error.reason',
  message: 'sluice.error.message',
  topic: 'sluice.source.topic',
  partition: 'sluice.source.partition',
  offset: 'sluice.source.offset',
  query: 'sluice.query.id',
  batch: 'sluice.batch.id',
  /** Set when the record's value was left out because it is too large for the dead-letter topic: its size in bytes. */
  valueOmittedBytes: 'sluice.error.value.omitted.bytes',
  /** Set when even the key had to be left out: its size in bytes. */
  keyOmittedBytes: 'sluice.error.key.omitted.bytes',
} as const;

/** Values longer than this are left out of a dead letter's JSON when the whole letter would be too large. */
const LONG_VALUE = 1024;

const toBuffer = (v: unknown): Buffer | null =>
  v == null ? null : Buffer.isBuffer(v) ? v : Buffer.from(typeof v === 'string' ? v : JSON.stringify(v));

/** A Kafka topic beside the sink (dead letters, late events): records acknowledged before the batch commits. */
export abstract class KafkaSideTopicWriter {
  private readonly producer: AckedProducer;
  constructor(
    protected readonly topic: string,
    options: Readonly<Record<string, string>>,
    protected readonly queryId: string,
  ) {
    this.producer = new AckedProducer(kafkaConfigFromOptions(options));
  }
  describe(): string {
    return `kafka topic ${this.topic}`;
  }
  /** The largest record the side topic's producer sends (its message.max.bytes). */
  protected get maxRecordBytes(): number {
    return this.producer.maxRecordBytes;
  }
  protected async sendAll(records: OutgoingRecord[]): Promise<void> {
    await this.producer.send(records);
    await this.producer.flush();
  }
  async stop(): Promise<void> {
    await this.producer.close();
  }
}

/** A JSON value with long strings and buffers replaced by their size. */
function omitLong(v: unknown): unknown {
  if (typeof v === 'string' && v.length > LONG_VALUE) return { omitted: true, chars: v.length };
  if (v && typeof v === 'object' && (v as { type?: string }).type === 'Buffer' && Array.isArray((v as { data?: unknown }).data)) {
    const n = (v as { data: unknown[] }).data.length;
    return n > LONG_VALUE ? { omitted: true, bytes: n } : v;
  }
  return v;
}

/** Header name → value, as the Kafka client wants headers. */
export const headerList = (h: Record<string, string>): Array<Record<string, string>> => Object.entries(h).map(([k, v]) => ({ [k]: v }));

export class KafkaDeadLetterWriter extends KafkaSideTopicWriter implements DeadLetterWriter {
  async write(batchId: number, letters: DeadLetter[]): Promise<void> {
    if (!letters.length) return;
    const records: OutgoingRecord[] = letters.map(({ row, reason, message }) => {
      const h: Record<string, string> = {
        [DLQ_HEADERS.reason]: reason,
        [DLQ_HEADERS.message]: message,
        [DLQ_HEADERS.query]: this.queryId,
        [DLQ_HEADERS.batch]: String(batchId),
      };
      // A Kafka input row keeps its original key and value bytes; any other row is written as JSON.
      const fromKafka = 'value' in row && 'offset' in row;
      if ('offset' in row) {
        // Where the record came from (an output row's "topic" is where it was going: that is in its JSON).
        if (row.topic != null) h[DLQ_HEADERS.topic] = String(row.topic);
        if (row.partition != null) h[DLQ_HEADERS.partition] = String(row.partition);
        if (row.offset != null) h[DLQ_HEADERS.offset] = String(row.offset);
      }
      const rec: OutgoingRecord = {
        topic: this.topic,
        // Any row's key is kept as the letter's key: it is what names the record (a Kafka input's, or a sink row's).
        key: toBuffer(row.key),
        value: fromKafka ? toBuffer(row.value) : toBuffer(row),
        headers: headerList(h),
      };
      if (recordWireSize(rec) <= this.maxRecordBytes) return rec;
      // Too large for this topic too (an oversize record refused by the sink): the letter still goes out, with
      // the reason and the size, and the large parts left out — a dead letter that cannot be written would
      // block the query for good.
      const size = rec.value?.length ?? 0;
      h[DLQ_HEADERS.valueOmittedBytes] = String(size);
      const smaller: OutgoingRecord = {
        ...rec,
        value: fromKafka ? Buffer.alloc(0) : Buffer.from(JSON.stringify(row, (_k, v: unknown) => omitLong(v))),
        headers: headerList(h),
      };
      if (recordWireSize(smaller) <= this.maxRecordBytes) return smaller;
      // Still too large (a huge key, or many long fields): the key goes too; what is left is the reason and the source position.
      h[DLQ_HEADERS.keyOmittedBytes] = String(rec.key?.length ?? 0);
      return { ...smaller, key: null, value: Buffer.alloc(0), headers: headerList(h) };
    });
    await this.sendAll(records);
  }
}

export class FileDeadLetterWriter implements DeadLetterWriter {
  /** The batch written last: a batch's letters may come in several writes, appended to one file. */
  private batch: number | undefined;
  constructor(private readonly dir: string) {}
  describe(): string {
    return `files in ${this.dir}`;
  }
  async write(batchId: number, letters: DeadLetter[]): Promise<void> {
    if (!letters.length) return;
    const path = join(this.dir, `${batchId}.jsonl`);
    if (this.batch !== batchId) rmSync(path, { force: true }); // a re-run batch rewrites its file
    this.batch = batchId;
    const lines = letters.map(({ row, reason, message }) =>
      JSON.stringify({ reason, message, row }, (_k, v) =>
        v && typeof v === 'object' && v.type === 'Buffer' && Array.isArray(v.data) ? { base64: Buffer.from(v.data).toString('base64') } : v,
      ),
    );
    // Durable before commits/N: a committed batch's dead letters must survive a machine crash too.
    const fd = openSync(path, 'a');
    try {
      writeSync(fd, lines.join('\n') + '\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    fsyncDir(this.dir);
  }
  async stop(): Promise<void> {}
}
