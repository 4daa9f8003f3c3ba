/**
 * The Kafka sink, as Spark's: the output rows carry `value` (string or binary, required), and optionally
 * `key`, `topic` (overridden by the "topic" option when it is set), `partition` and `headers`.
 *
 * By default every record of a batch is acknowledged by the broker before the batch is committed:
 * at-least-once, as Spark's (a batch re-run after a crash is written again). With `exactlyOnce=true` each
 * batch is one Kafka transaction that also carries the batch's marker (sinks/batchMarkers.ts), so a re-run
 * batch whose transaction committed is recognised and not written again: exactly-once for read_committed
 * readers (ARCHITECTURE.md, "Exactly-once to Kafka").
 */
import { AnalysisError } from '../expr/compile.js';
import { RecordError } from '../expr/values.js';
import { AckedProducer, KafkaAdmin, OutgoingRecord, kafkaConfigFromOptions, recordWireSize, type KafkaConfig } from '../kafka/client.js';
import { TransactionError, TransactionalProducer } from '../kafka/transactions.js';
import { fault } from '../exec/faults.js';
import { ArrayType, BinaryType, DataType, IntegerType, NullType, Row, StringType, StructType } from '../types/index.js';
import { ensureMarkerTopic, lastCommittedMarker, markerRecord, markerTopicOf, type BatchMarker } from './batchMarkers.js';
import { CheckpointError } from '../checkpoint/checkpoint.js';
import type { BadRowHandler, BatchWriter, OutputMode, Sink, SinkContext } from './sink.js';

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

/**
 * Reads the sink's `exactlyOnce` option. `kafka.transactional.id` is refused either way: without exactlyOnce it
 * would not make the sink exactly-once, and with it Sluice sets the id itself (one per query). Producer
 * settings exactly-once cannot work with are refused with the reason.
 */
export function exactlyOnceOption(options: Readonly<Record<string, string>>): boolean {
  const v = (options.exactlyOnce ?? 'false').toLowerCase();
  if (v !== 'true' && v !== 'false') throw new AnalysisError(`Option exactlyOnce must be "true" or "false", got "${options.exactlyOnce}".`);
  if (options['kafka.transactional.id'] !== undefined) {
    throw new AnalysisError(
      v === 'false'
        ? 'kafka.transactional.id alone does not make the Kafka sink exactly-once: a transactional id fences an older producer, but ' +
            'nothing would tie a transaction to a batch, so a batch re-run after a crash would be written again in a new transaction. ' +
            "Set .option('exactlyOnce', 'true') instead (and remove kafka.transactional.id): each batch then commits in one transaction " +
            'with a marker of the batch, and a re-run batch whose marker is committed is not written again.'
        : "With exactlyOnce=true Sluice sets the transactional id itself — sluice-<query id>, the same for every run of the query and " +
            'different for every query (one id shared by two queries would make each fence the other). Remove kafka.transactional.id.',
    );
  }
  if (v === 'true') {
    const conflicts: string[] = [];
    const acks = options['kafka.acks'] ?? options['kafka.request.required.acks'];
    if (acks !== undefined && !['all', '-1'].includes(acks)) conflicts.push(`kafka.acks=${acks} (a transaction needs every record on every in-sync replica: acks=all)`);
    if (options['kafka.enable.idempotence']?.toLowerCase() === 'false') conflicts.push('kafka.enable.idempotence=false (transactions are built on the idempotent producer)');
    const inFlight = options['kafka.max.in.flight.requests.per.connection'] ?? options['kafka.max.in.flight'];
    if (inFlight !== undefined && Number(inFlight) > 5) conflicts.push(`kafka.max.in.flight.requests.per.connection=${inFlight} (the idempotent producer keeps order with at most 5)`);
    if (conflicts.length) throw new AnalysisError(`exactlyOnce=true cannot work with ${conflicts.join('; ')}. Remove these options.`);
  }
  return v === 'true';
}

export class KafkaSink implements Sink {
  private producer: AckedProducer | undefined;
  /**
   * At-least-once: batches of BULK_ROWS or more records go through a producer with delivery reports for
   * failures only (cheaper per record), smaller ones through `producer`, which reports every record and so
   * learns of its last acknowledgement at once (client.ts, DeliveryReports). A batch uses one of them, and is
   * flushed before the next starts, so records never overtake each other.
   */
  private bulk: AckedProducer | undefined;
  private maker: ((row: Row) => OutgoingRecord) | undefined;
  private readonly conf: KafkaConfig;
  private readonly exactlyOnce: boolean;
  /** Exactly-once: the query's id, its marker topic, and the last batch whose transaction committed. */
  private txn: { queryId: string; markerTopic: string; lastCommitted: number; log: (l: string) => void; batchOffsets: SinkContext['batchOffsets'] } | undefined;
  constructor(private readonly options: Readonly<Record<string, string>>) {
    this.conf = kafkaConfigFromOptions(options);
    this.exactlyOnce = exactlyOnceOption(options);
    if (!this.exactlyOnce) {
      this.producer = new AckedProducer(this.conf, 'all');
      this.bulk = new AckedProducer(this.conf, 'errors');
    }
  }
  describe(): string {
    return `KafkaSink[${this.options.topic ?? 'topic column'}${this.exactlyOnce ? ', exactly-once' : ''}]`;
  }
  /** Called before the query starts, so a wrong output schema stops it at once. */
  validate(schema: StructType): void {
    this.maker = kafkaRecordMaker(schema, this.options.topic);
  }

  /**
   * Exactly-once: registers the query's transactional producer (fencing a zombie of an earlier run and ending
   * the transaction it left open), then reads the query's last committed batch marker M and checks it against
   * the checkpoint: M is at most the last committed batch + 1, and a marker for the pending batch carries that
   * batch's offsets. A batch whose marker matches is already in Kafka: openBatch will not write it again.
   * Anything else means the checkpoint and Kafka disagree (a checkpoint restored from a backup, a batch
   * re-planned after its files were deleted): skipping would lose output and writing would duplicate it, so
   * the query refuses to start and says what to do.
   */
  async start(ctx: SinkContext): Promise<void> {
    if (!this.exactlyOnce) return this.producer!.warm(); // connected while the first batch is planned and read
    const transactionalId = `sluice-${ctx.queryId}`;
    const markerTopic = this.options['exactlyOnce.markerTopic'] ?? markerTopicOf(ctx.queryId);
    if (markerTopic === this.options.topic) {
      throw new AnalysisError(`exactlyOnce.markerTopic must not be the output topic "${markerTopic}": consumers would read the batch markers as output.`);
    }
    const admin = new KafkaAdmin(this.conf, 15_000, 60_000);
    try {
      if (await ensureMarkerTopic(admin, markerTopic)) ctx.log(`INFO Created the exactly-once marker topic ${markerTopic} (1 partition, compacted).`);
      const producer = new TransactionalProducer(this.conf, transactionalId);
      this.producer = producer;
      await producer.init();
      const last = await lastCommittedMarker(this.conf, admin, markerTopic, ctx.queryId);
      this.txn = { queryId: ctx.queryId, markerTopic, lastCommitted: last?.batchId ?? -1, log: ctx.log, batchOffsets: ctx.batchOffsets };
      checkMarkerAgainstCheckpoint(last, ctx, markerTopic);
    } finally {
      admin.disconnect();
    }
  }

  async addBatch(batchId: number, rows: Row[], schema: StructType, mode: OutputMode): Promise<void> {
    const w = this.openBatch(batchId, schema, mode);
    await w.write(rows);
    await w.close();
  }

  /** Checks each chunk against `message.max.bytes` (see openBatch); the records that fit, the rest to `onBad`. */
  private records(rows: Row[], schema: StructType, onBad: BadRowHandler | undefined): OutgoingRecord[] {
    const make = (this.maker ??= kafkaRecordMaker(schema, this.options.topic));
    const limit = this.producer!.maxRecordBytes;
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
    return records;
  }

  /**
   * Records go to the producer as chunks come (its queue bounds what is in flight); close waits for every ack.
   *
   * A record larger than the producer's `message.max.bytes` would be refused by librdkafka in the middle of
   * the batch — after part of the batch was sent, so every restart would send that part again and fail on the
   * same record. So each chunk is checked before anything of it is produced, and such a record goes to
   * `onBad` (the dead-letter destination, or a failure with onBadRecord=fail) with its size and the fix.
   */
  openBatch(batchId: number, schema: StructType, _mode: OutputMode, onBad?: BadRowHandler): BatchWriter {
    if (this.exactlyOnce) return this.openTransaction(batchId, schema, onBad);
    let producer: AckedProducer | undefined;
    return {
      write: (rows) => {
        // The first chunk tells a large batch (chunks of thousands of records) from a low-latency one.
        producer ??= rows.length >= BULK_ROWS ? this.bulk! : this.producer!;
        return producer.send(this.records(rows, schema, onBad));
      },
      close: () => producer?.flush() ?? Promise.resolve(),
    };
  }

  /**
   * Exactly-once: the batch is one transaction, begun with its first record and committed at close with the
   * batch's marker in it. A batch whose marker is already committed (a re-run after a crash that came after
   * the commit) is computed again — its state must be rebuilt — but its rows are not written. Any failure
   * before the commit aborts the transaction (abort()), so nothing of the batch stays open.
   */
  private openTransaction(batchId: number, schema: StructType, onBad?: BadRowHandler): BatchWriter {
    const txn = this.txn;
    if (!txn) throw new Error('The exactly-once Kafka sink writes for a streaming query only: it was not started by one.');
    const producer = this.producer as TransactionalProducer;
    if (batchId <= txn.lastCommitted) {
      txn.log(
        `INFO Batch ${batchId}'s output is already in Kafka: its transaction committed before the restart (marker in ${txn.markerTopic}). ` +
          'The batch is re-run to rebuild its state; its rows are not written again.',
      );
      return { write: async () => {}, close: async () => {} };
    }
    let records = 0;
    const abort = async (): Promise<void> => {
      if (!producer.open) return;
      try {
        await producer.abort();
      } catch (e) {
        // The restart's initTransactions aborts it anyway; until then read_committed readers wait at it.
        txn.log(`WARN Batch ${batchId}'s transaction could not be aborted (${(e as Error).message}); the next start of the query aborts it.`);
      }
    };
    const failed = async (e: unknown): Promise<never> => {
      const explained = producer.explainFailure(e);
      await abort();
      throw explained;
    };
    return {
      write: async (rows) => {
        try {
          const out = this.records(rows, schema, onBad);
          if (!out.length) return;
          if (!producer.open) await producer.begin();
          records += out.length;
          await producer.send(out);
        } catch (e) {
          await failed(e);
        }
      },
      close: async () => {
        // A batch with no output writes nothing: re-run, it writes nothing again, so it needs no marker.
        if (!producer.open) return;
        try {
          await producer.flush(); // every record in the log (uncommitted), or the broker's reason it is not
          fault('mid-transaction', batchId);
          await producer.send([
            markerRecord(txn.markerTopic, {
              queryId: txn.queryId,
              batchId,
              offsets: txn.batchOffsets(batchId) ?? null,
              records,
              transactionalId: producer.transactionalId,
              writtenAt: new Date().toISOString(),
            }),
          ]);
        } catch (e) {
          await failed(e);
        }
        try {
          await producer.commit();
        } catch (e) {
          // A commit that failed without "abort required" has an unknown outcome (it may still complete in the
          // broker): not aborted here; the restart decides from the marker.
          if (e instanceof TransactionError && e.abortable) await abort();
          throw producer.explainFailure(e);
        }
        txn.lastCommitted = batchId;
      },
      abort,
    };
  }

  /** Aborts a transaction left open (a query stopped by a failure between batches' writes). */
  async stop(): Promise<void> {
    if (this.producer instanceof TransactionalProducer && this.producer.open) {
      await this.producer.abort().catch((e: Error) => this.txn?.log(`WARN The open transaction could not be aborted on stop: ${e.message}`));
    }
    await Promise.all([this.producer?.close(), this.bulk?.close()]);
  }
}

/** A batch whose first chunk has this many records or more is written through the bulk producer. */
const BULK_ROWS = 1000;

/**
 * Checks the query's last committed marker against its checkpoint (KafkaSink.start); throws when they
 * disagree, warns when exactly-once begins on a query that ran without it.
 */
function checkMarkerAgainstCheckpoint(last: BatchMarker | undefined, ctx: SinkContext, markerTopic: string): void {
  const L = ctx.lastCommittedBatch ?? -1;
  const fresh = 'Start the query on a new checkpoint (it then starts a new marker topic too), or restore this checkpoint from the backup that matches the output.';
  if (!last) {
    if (L >= 0) {
      ctx.log(
        `WARN Exactly-once begins at batch ${L + 1}: no batch marker of this query is in ${markerTopic}, though the checkpoint has batches up to ${L} ` +
          '(the query ran at-least-once before, or the marker topic was deleted). A batch planned but not committed then may already be in Kafka and is written again.',
      );
    }
    return;
  }
  if (last.batchId <= L) return;
  const pending = ctx.batchOffsets(last.batchId);
  if (last.batchId === L + 1 && pending !== undefined && last.offsets === pending) return; // crashed after the commit: skip it
  const why =
    last.batchId > L + 1
      ? `Kafka already holds batch ${last.batchId}'s output (its marker in ${markerTopic}) but the checkpoint's last committed batch is ${L < 0 ? 'none' : L}`
      : pending === undefined
        ? `Kafka already holds batch ${last.batchId}'s output (its marker in ${markerTopic}) but the checkpoint has no offsets/${last.batchId}`
        : `Kafka holds a batch ${last.batchId} that read other offsets (${last.offsets ?? 'not recorded'}) than the checkpoint's offsets/${last.batchId} (${pending})`;
  throw new CheckpointError(
    `${why}: the checkpoint is behind the output (restored from an older backup, or batch files deleted). Re-running those batches would write ` +
      `output that is already in Kafka, and skipping them would lose what they read now. ${fresh} To accept duplicates instead, delete the ` +
      `marker topic ${markerTopic}: the sink then writes every batch the checkpoint runs.`,
  );
}
