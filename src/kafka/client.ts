/**
 * A thin promise-based layer over @confluentinc/kafka-javascript (librdkafka): the admin calls, exact
 * offset-range reads and acknowledged writes that Sluice's source, sink and CLI need. Everything about
 * the Kafka protocol itself is librdkafka's.
 */
import Kafka from '@confluentinc/kafka-javascript';
import type {
  GlobalConfig,
  IAdminClient,
  KafkaConsumer,
  LibrdKafkaError,
  Message,
  MessageHeader,
  Producer,
} from '@confluentinc/kafka-javascript';

export type KafkaConfig = Record<string, string | number | boolean>;

export class KafkaError extends Error {
  override name = 'KafkaError';
}

/** Which records a reader sees: only committed transactions' (the default), or all. */
export type IsolationLevel = 'read_committed' | 'read_uncommitted';

/** The isolation level a librdkafka configuration reads with (`isolation.level`, default read_committed). */
export function isolationOf(conf: KafkaConfig): IsolationLevel {
  const v = String(conf['isolation.level'] ?? 'read_committed');
  if (v !== 'read_committed' && v !== 'read_uncommitted') {
    throw new KafkaError(`kafka.isolation.level must be "read_committed" or "read_uncommitted", got "${v}".`);
  }
  return v;
}

/** Partition → offset, per topic: the shape of Spark's Kafka offsets (`{"t":{"0":42}}`). */
export type PartitionOffsets = Record<string, Record<string, number>>;

export interface TopicPartition {
  topic: string;
  partition: number;
}

export interface TopicDescription {
  name: string;
  partitions: Array<{ partition: number; leader: number; replicas: number[]; isr: number[] }>;
}

/**
 * Builds librdkafka settings from options: `kafka.`-prefixed options pass through without the prefix
 * (as in Spark). Java-only settings that librdkafka does not know get an explanation instead of a
 * cryptic "No such configuration property".
 */
export function kafkaConfigFromOptions(options: Readonly<Record<string, string>>): KafkaConfig {
  const conf: KafkaConfig = {};
  for (const [k, v] of Object.entries(options)) {
    if (!k.startsWith('kafka.')) continue;
    const key = k.slice('kafka.'.length);
    if (key === 'sasl.jaas.config') {
      // Spark users write the Java JAAS line; librdkafka wants the username and password themselves.
      const user = /username\s*=\s*"([^"]*)"/.exec(v);
      const pass = /password\s*=\s*"([^"]*)"/.exec(v);
      if (!user || !pass) {
        throw new KafkaError(
          'kafka.sasl.jaas.config: only PlainLoginModule/ScramLoginModule lines with username="…" password="…" can be ' +
            'translated for librdkafka. Set kafka.sasl.username and kafka.sasl.password instead.',
        );
      }
      conf['sasl.username'] = user[1]!;
      conf['sasl.password'] = pass[1]!;
      continue;
    }
    if (/^ssl\.(truststore|keystore)\./.test(key)) {
      throw new KafkaError(
        `kafka.${key}: Java keystores (JKS/PKCS12 stores) are not read by librdkafka. Use PEM files: ` +
          'kafka.ssl.ca.location (CA certificate), kafka.ssl.certificate.location and kafka.ssl.key.location.',
      );
    }
    conf[key === 'sasl.mechanism' ? 'sasl.mechanisms' : key] = v;
  }
  if (!conf['bootstrap.servers']) {
    throw new KafkaError(
      'Option "kafka.bootstrap.servers" is required: the host:port list of your brokers, e.g. ' +
        ".option('kafka.bootstrap.servers', '127.0.0.1:9092'). (`sluice status` prints the local stack's.)",
    );
  }
  return conf;
}

function fail(what: string, err: LibrdKafkaError | Error): KafkaError {
  const e = new KafkaError(`${what}: ${err.message}`);
  (e as { cause?: unknown }).cause = err;
  return e;
}

/** Sluice's code for a listed offset that came back as no offset (-1001) without an error. */
const NO_OFFSET = -1001;
/**
 * librdkafka's codes for failures that pass when the broker is back: timed out, transport, all brokers down,
 * not coordinator/leader yet, and a leader epoch the restarted broker does not know yet or has moved past
 * (74 FENCED_LEADER_EPOCH, 75 UNKNOWN_LEADER_EPOCH: retriable in Kafka's own clients; seen listing offsets
 * just after a broker restart).
 */
const TRANSIENT_CODES = new Set([-185, -195, -187, -192, 5, 6, 7, 13, 14, 15, 16, 74, 75, NO_OFFSET]);

/** True for an error a retry may cure (the broker down or restarting), false for a final answer. */
export function isTransientKafkaError(e: unknown): boolean {
  const code = ((e as { cause?: { code?: number } }).cause ?? (e as { code?: number }))?.code;
  return typeof code === 'number' && TRANSIENT_CODES.has(code);
}

/**
 * A refusal that retrying cannot cure, as librdkafka reports it: the broker refused the SASL login, or the
 * TLS handshake failed (the broker's certificate could not be verified, or the listener is not TLS).
 * librdkafka logs the details (`event.log`, facility FAIL) and raises a bare `event.error` ("authentication
 * failure", "ssl error", code -1 in this binding; -169/-181 in librdkafka itself).
 */
const AUTH_FAILURE = /SASL authentication error|SASL .*mechanism handshake failed|authentication failure/i;
const TLS_FAILURE = /SSL handshake failed|certificate verify failed|ssl error/i;

/**
 * librdkafka reports a refused login or a failed TLS handshake only as events, and keeps reconnecting: a
 * connect() would wait its whole timeout and then say "Broker transport failure", and a retrying caller
 * would retry that. This turns the first such event into a rejection that says what was refused and what
 * to check, so a client with wrong credentials fails within seconds.
 */
class AuthWatch {
  private reject!: (e: KafkaError) => void;
  /** Rejects with the explained error when the broker refuses this client; never resolves. */
  readonly failed: Promise<never> = new Promise<never>((_, reject) => (this.reject = reject));
  error: KafkaError | undefined;
  constructor(private readonly conf: KafkaConfig) {
    this.failed.catch(() => {}); // observed by whoever races it; never an unhandled rejection
  }
  private see(message: string): void {
    if (this.error) return;
    const kind = AUTH_FAILURE.test(message) ? 'sasl' : TLS_FAILURE.test(message) ? 'tls' : undefined;
    if (!kind) return;
    this.error = authError(this.conf, kind, message.replace(/^\[thrd:[^\]]*\]: /, ''));
    this.reject(this.error);
  }
  readonly onError = (err: LibrdKafkaError): void => this.see(err.message);
  readonly onLog = (log: { severity?: number; fac?: string; message?: string }): void => {
    if ((log.severity ?? 7) <= 3 && log.message) this.see(log.message);
  };
  /** Listens to a client's events (before it connects). */
  watch(client: { on(event: 'event.error' | 'event.log', fn: (x: never) => void): unknown }): void {
    client.on('event.error', this.onError);
    client.on('event.log', this.onLog);
  }
  /** Runs `call`, failing as soon as the broker refuses this client. */
  race<T>(call: Promise<T>): Promise<T> {
    if (this.error) return Promise.reject(this.error);
    return Promise.race([call, this.failed]);
  }
}

/**
 * Connects a consumer or producer, failing at once if the broker refuses its login or TLS handshake (AuthWatch)
 * rather than after the connect timeout; a client that did not connect is disconnected.
 */
async function connectWatched(client: KafkaConsumer | Producer, conf: KafkaConfig, what: string): Promise<void> {
  const auth = new AuthWatch(conf);
  auth.watch(client);
  try {
    await auth.race(new Promise<void>((resolve, reject) => client.connect({ timeout: 30_000 }, (err) => (err ? reject(fail(what, err)) : resolve()))));
  } catch (e) {
    client.disconnect();
    throw e;
  }
}

/** The error for a refused login or TLS handshake: what was refused, and what to check. No secret in it. */
export function authError(conf: KafkaConfig, kind: 'sasl' | 'tls', detail: string): KafkaError {
  const servers = String(conf['bootstrap.servers']);
  const protocol = String(conf['security.protocol'] ?? 'plaintext').toUpperCase();
  if (kind === 'tls') {
    return new KafkaError(
      `The TLS handshake with ${servers} failed: ${detail}. Check kafka.ssl.ca.location: it must be the CA certificate (PEM) ` +
        `that signed the broker's certificate, and the certificate must name the host you connect to. ` +
        (protocol.includes('SSL') ? '' : `Is the listener TLS? kafka.security.protocol is ${protocol}. `) +
        'For the local stack started with `sluice up --secure`, `sluice status` prints its CA file.',
    );
  }
  const user = conf['sasl.username'] !== undefined ? `user "${String(conf['sasl.username'])}"` : 'no user name (kafka.sasl.username is not set)';
  return new KafkaError(
    `Kafka at ${servers} refused the login of ${user} (${String(conf['sasl.mechanisms'] ?? 'GSSAPI')}): ${detail}. ` +
      'Check kafka.sasl.username, kafka.sasl.password and kafka.sasl.mechanism; for the local stack started with `sluice up --secure`, ' +
      '`sluice status` says where its credentials are.',
  );
}

/** Admin operations (topics, offsets), with one connection reused. */
export class KafkaAdmin {
  private readonly client: IAdminClient;
  /**
   * `retryForMs`: how long a call that failed for a transient reason (the broker away) is tried again, with
   * backoff; 0 (the default, for the CLI and tools) fails at once. A streaming source sets it, so that a
   * broker restart stalls a query instead of failing it.
   */
  constructor(
    conf: KafkaConfig,
    private readonly timeoutMs = 15_000,
    private readonly retryForMs = 0,
  ) {
    this.auth = new AuthWatch(conf);
    this.client = Kafka.AdminClient.create({ 'client.id': 'sluice-admin', ...conf } as GlobalConfig, { 'event.error': this.auth.onError, 'event.log': this.auth.onLog });
  }
  private readonly auth: AuthWatch;

  private async retrying<T>(call: () => Promise<T>): Promise<T> {
    const until = Date.now() + this.retryForMs;
    for (let delay = 250; ; delay = Math.min(delay * 2, 5_000)) {
      try {
        return await this.auth.race(call());
      } catch (e) {
        if (this.auth.error) throw this.auth.error; // refused credentials: no retry cures them
        if (!isTransientKafkaError(e) || Date.now() + delay > until) throw e;
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  createTopic(topic: string, partitions = 1, replicationFactor = 1, config: Record<string, string> = {}): Promise<void> {
    return this.auth.race(new Promise((resolve, reject) =>
      this.client.createTopic(
        { topic, num_partitions: partitions, replication_factor: replicationFactor, config } as Parameters<IAdminClient['createTopic']>[0],
        this.timeoutMs,
        (err) => (err ? reject(fail(`Cannot create topic "${topic}"`, err)) : resolve()),
      ),
    ));
  }

  /** Creates the topic unless it exists; returns whether it was created. */
  async ensureTopic(topic: string, partitions = 1, replicationFactor = 1, config: Record<string, string> = {}): Promise<boolean> {
    try {
      await this.createTopic(topic, partitions, replicationFactor, config);
      return true;
    } catch (e) {
      if (/already exists/i.test(String((e as Error).message))) return false;
      throw e;
    }
  }

  /**
   * Deletes the topic if it exists and creates it again, empty: what a lesson or demo does to start clean.
   * Kafka deletes asynchronously, so this waits until the old topic is gone before creating the new one.
   */
  async recreateTopic(topic: string, partitions = 1, replicationFactor = 1): Promise<void> {
    if ((await this.listTopics()).includes(topic)) await this.deleteTopic(topic);
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        await this.createTopic(topic, partitions, replicationFactor);
        return;
      } catch (e) {
        if (!/marked for deletion|already exists/i.test((e as Error).message) || Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  /** Grows a topic to `total` partitions (Kafka never shrinks one). */
  createPartitions(topic: string, total: number): Promise<void> {
    return this.auth.race(new Promise((resolve, reject) =>
      this.client.createPartitions(topic, total, this.timeoutMs, (err) => (err ? reject(fail(`Cannot add partitions to "${topic}"`, err)) : resolve())),
    ));
  }

  deleteTopic(topic: string): Promise<void> {
    return this.auth.race(new Promise((resolve, reject) =>
      this.client.deleteTopic(topic, this.timeoutMs, (err) => (err ? reject(fail(`Cannot delete topic "${topic}"`, err)) : resolve())),
    ));
  }

  listTopics(): Promise<string[]> {
    return this.retrying(() => this.listTopicsOnce());
  }

  private listTopicsOnce(): Promise<string[]> {
    return new Promise((resolve, reject) =>
      this.client.listTopics({ timeout: this.timeoutMs }, (err, topics) =>
        err ? reject(fail('Cannot list topics', err)) : resolve(topics.filter((t) => !t.startsWith('__')).sort()),
      ),
    );
  }

  describeTopics(topics: string[]): Promise<TopicDescription[]> {
    return this.retrying(() => this.describeTopicsOnce(topics));
  }

  private describeTopicsOnce(topics: string[]): Promise<TopicDescription[]> {
    return new Promise((resolve, reject) =>
      this.client.describeTopics(topics, { timeout: this.timeoutMs }, (err, result) => {
        if (err) return reject(fail(`Cannot describe ${topics.join(', ')}`, err));
        for (const t of result) {
          const e = (t as { error?: LibrdKafkaError }).error;
          if (e) return reject(fail(`Cannot describe topic "${t.name}"`, e));
        }
        resolve(
          result.map((t) => ({
            name: t.name,
            partitions: t.partitions
              .map((p) => ({
                partition: p.partition,
                leader: p.leader?.id ?? -1,
                replicas: p.replicas.map((r) => r.id),
                isr: p.isr.map((r) => r.id),
              }))
              .sort((a, b) => a.partition - b.partition),
          })),
        );
      }),
    );
  }

  /**
   * Earliest or latest offsets of partitions. Latest is the offset the next record will get (the high
   * watermark) with `read_uncommitted`; with `read_committed` (the default, as the source reads) it is the
   * last stable offset: the first offset of a transaction still open, so a batch never waits for it.
   */
  listOffsets(partitions: TopicPartition[], which: 'earliest' | 'latest', isolation: IsolationLevel = 'read_committed'): Promise<PartitionOffsets> {
    if (partitions.length === 0) return Promise.resolve({});
    return this.retrying(() => this.listOffsetsOnce(partitions, which, isolation));
  }

  private listOffsetsOnce(partitions: TopicPartition[], which: 'earliest' | 'latest', isolation: IsolationLevel): Promise<PartitionOffsets> {
    const spec = which === 'earliest' ? Kafka.OffsetSpec.EARLIEST : Kafka.OffsetSpec.LATEST;
    return new Promise((resolve, reject) =>
      this.client.listOffsets(
        partitions.map((p) => ({ ...p, offset: spec })),
        { timeout: this.timeoutMs, isolationLevel: isolation === 'read_committed' ? Kafka.IsolationLevel.READ_COMMITTED : Kafka.IsolationLevel.READ_UNCOMMITTED },
        (err, result) => {
          if (err) return reject(fail('Cannot list offsets', err));
          const out: PartitionOffsets = {};
          for (const r of result) {
            if (r.error) return reject(fail(`Cannot list offsets of ${r.topic}-${r.partition}`, r.error));
            if (r.offset < 0) {
              // No offset and no error (RD_KAFKA_OFFSET_INVALID, -1001: the partition's leader is away). Never an
              // offset: read as one it would look like the topic went back to -1001 — data loss.
              const e = Object.assign(new Error(`the broker gave no offset (${r.offset}): its leader is not available`), { code: NO_OFFSET });
              return reject(fail(`Cannot list offsets of ${r.topic}-${r.partition}`, e));
            }
            (out[r.topic] ??= {})[String(r.partition)] = r.offset;
          }
          resolve(out);
        },
      ),
    );
  }

  /**
   * The partitions' last stable offsets, once they have reached the high watermarks (no transaction pending
   * on them) or `waitMs` has passed; `settled` says which. A transaction committed a moment ago counts as
   * pending until the coordinator has written its commit markers, just after commitTransaction returned.
   */
  async stableEnd(partitions: TopicPartition[], waitMs: number): Promise<{ stable: PartitionOffsets; settled: boolean }> {
    const until = Date.now() + waitMs;
    for (;;) {
      const [stable, high] = await Promise.all([this.listOffsets(partitions, 'latest', 'read_committed'), this.listOffsets(partitions, 'latest', 'read_uncommitted')]);
      const settled = partitions.every((p) => (stable[p.topic]?.[String(p.partition)] ?? 0) >= (high[p.topic]?.[String(p.partition)] ?? 0));
      if (settled || Date.now() >= until) return { stable, settled };
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Deletes records below `offset` (what retention does); used to show `failOnDataLoss`. */
  deleteRecordsBefore(topic: string, partition: number, offset: number): Promise<void> {
    return this.auth.race(new Promise((resolve, reject) =>
      this.client.deleteRecords([{ topic, partition, offset }], { timeout: this.timeoutMs }, (err, result) => {
        const e = err ?? result?.find((r) => r.error)?.error;
        return e ? reject(fail(`Cannot delete records of ${topic}-${partition}`, e)) : resolve();
      }),
    ));
  }

  disconnect(): void {
    // librdkafka's destroy waits for the requests in flight, on this thread: after a refused login the one
    // sent at once waits its whole timeout, and a disconnect now would freeze the process that long. Later,
    // once it has timed out, destroying is quick; the timer does not keep the process alive.
    if (this.auth.error) setTimeout(() => this.client.disconnect(), this.timeoutMs + 1_000).unref();
    else this.client.disconnect();
  }
}

/** One record as read from Kafka. */
export interface KafkaRecord {
  key: Buffer | null;
  value: Buffer | null;
  topic: string;
  partition: number;
  offset: number;
  timestamp: number;
  headers?: MessageHeader[];
}

/**
 * Reads exact offset ranges [start, end) per partition: what a micro-batch needs, so that a re-run of a
 * batch reads exactly the same records. Consumer-group offsets are not used for progress (the
 * checkpoint is the truth, as in Spark); nothing is committed to the group.
 */
/** A batch of at most this many records is read from all its partitions at once (RangeReader.readSmall). */
export const SMALL_RANGE_RECORDS = 20_000;
/** Records read past a small range's end, kept for the next batch, at most. */
const CARRY_LIMIT = 50_000;

export type { Message as KafkaMessage };

const toRecord = (m: Message): KafkaRecord => ({
  key: m.key == null ? null : Buffer.isBuffer(m.key) ? m.key : Buffer.from(m.key),
  value: m.value,
  topic: m.topic,
  partition: m.partition,
  offset: m.offset,
  timestamp: m.timestamp ?? -1,
  ...(m.headers ? { headers: m.headers } : {}),
});

type Range = { topic: string; partition: number; from: number; to: number };
const tp = (topic: string, partition: number): string => `${topic}\u0000${partition}`;

export class RangeReader {
  private consumer: KafkaConsumer | undefined;
  /**
   * After a small read the partitions stay assigned, each positioned at its range's end: librdkafka goes on
   * fetching in the background — the next batch's records, read ahead while this batch is processed and
   * written (a prefetch that commits nothing). `position` is where each partition's next record is expected;
   * `carry` holds records already taken from librdkafka past a range's end.
   */
  private kept:
    | {
        position: Map<string, number>;
        carry: Map<string, Message[]>;
        carried: number;
        /** The furthest end of each partition librdkafka reported: it reports an end once, maybe during an earlier batch. */
        endAt: Map<string, number>;
        /** Past CARRY_LIMIT: records are no longer kept, and the next read assigns afresh. */
        overflow: boolean;
      }
    | undefined;
  constructor(
    private readonly conf: KafkaConfig,
    private readonly pollTimeoutMs = 120_000,
  ) {}

  private connecting: Promise<KafkaConsumer> | undefined;

  /** The connected consumer: one, however many callers ask at once (warm() and the first read). */
  private connect(): Promise<KafkaConsumer> {
    return (this.connecting ??= this.open().catch((e: unknown) => {
      this.connecting = undefined;
      throw e;
    }));
  }

  private async open(): Promise<KafkaConsumer> {
    const c = new Kafka.KafkaConsumer(
      {
        'group.id': `sluice-reader-${process.pid}`,
        'enable.auto.commit': false,
        'enable.partition.eof': true,
        'fetch.wait.max.ms': 5,
        // librdkafka pauses a partition's fetching for this long once its local queue is over the thresholds
        // (default 1000 ms). A range read moves to a new position every batch, and the pause then cost every
        // batch about a second (median 1,038 ms → 76 ms for 5,000-record batches: docs/benchmarks.md).
        'fetch.queue.backoff.ms': 10,
        ...this.conf,
      } as ConstructorParameters<typeof Kafka.KafkaConsumer>[0],
      { 'auto.offset.reset': 'error' },
    );
    await connectWatched(c, this.conf, 'Cannot connect to Kafka');
    c.setDefaultConsumeTimeout(100);
    // consume(n) returns as soon as nothing more is ready (1 ms) once a first record came, instead of waiting the
    // whole timeout for n: a range read cost ~100 ms per partition in that wait (docs/benchmarks.md).
    (c as unknown as { setDefaultIsTimeoutOnlyForFirstMessage(v: boolean): void }).setDefaultIsTimeoutOnlyForFirstMessage(true);
    this.consumer = c;
    return c;
  }

  /**
   * Connects now, in the background, so that the first read does not wait for it (a query's first batch);
   * a failure is left for that read to report.
   */
  warm(): void {
    this.connect().catch(() => {});
  }

  /** Reads every record with start[p] <= offset < end[p], all at once (the CLI, tests). */
  async read(start: PartitionOffsets, end: PartitionOffsets): Promise<KafkaRecord[]> {
    const out: KafkaRecord[] = [];
    for await (const chunk of this.readChunks(start, end)) for (const r of chunk) out.push(r);
    return out;
  }

  /**
   * Reads every record with start[p] <= offset < end[p], in chunks of at most `chunkSize`, partition after
   * partition (topic, then partition, then offset order): the same order every time, so that a re-run batch
   * sees its rows in the same order, and memory bounded by the chunk, not the range.
   *
   * A range is finished when the record at end-1 has come, or a record at or past the end (offsets skip
   * transaction markers and, under read_committed, aborted records), or the partition's end was reached and
   * the local queue is drained: the last offsets of a range may be a transaction marker, never delivered.
   */
  readChunks(start: PartitionOffsets, end: PartitionOffsets, chunkSize?: number): AsyncGenerator<KafkaRecord[]>;
  /** The same, each record made by `make` from librdkafka's message (a source's row: one object per record, not two). */
  readChunks<T>(start: PartitionOffsets, end: PartitionOffsets, chunkSize: number, make: (m: Message) => T): AsyncGenerator<T[]>;
  async *readChunks<T>(start: PartitionOffsets, end: PartitionOffsets, chunkSize = 10_000, make: (m: Message) => T = toRecord as unknown as (m: Message) => T): AsyncGenerator<T[]> {
    const wanted: Array<{ topic: string; partition: number; from: number; to: number }> = [];
    for (const [topic, parts] of Object.entries(end)) {
      for (const [p, to] of Object.entries(parts)) {
        const from = start[topic]?.[p] ?? 0;
        if (to > from) wanted.push({ topic, partition: Number(p), from, to });
      }
    }
    wanted.sort((a, b) => (a.topic === b.topic ? a.partition - b.partition : a.topic < b.topic ? -1 : 1));
    if (wanted.length === 0) return;
    const c = await this.connect();
    if (wanted.reduce((n, w) => n + (w.to - w.from), 0) <= SMALL_RANGE_RECORDS) {
      yield* this.readSmall(c, wanted, chunkSize, make);
      return;
    }
    this.forget(c);
    for (const w of wanted) {
      c.assign([{ topic: w.topic, partition: w.partition, offset: w.from }]);
      let eofSeen = false;
      const onEof = (e: { topic: string; partition: number; offset: number }): void => {
        if (e.topic === w.topic && e.partition === w.partition && e.offset >= w.to) eofSeen = true;
      };
      c.on('partition.eof', onEof);
      let done = false;
      let chunk: T[] = [];
      let lastProgress = Date.now();
      let next = w.from; // the offset after the last record read: what is left of the range is w.to - next at most
      try {
        while (!done) {
          // Ask for no more than the range still holds: consume(n) would otherwise go on reading records past
          // the range's end (thrown away) until n.
          const want = Math.max(1, Math.min(chunkSize - chunk.length, 10_000, w.to - next));
          const msgs = await new Promise<Message[]>((resolve, reject) =>
            c.consume(want, (err, m) => (err ? reject(fail('Kafka read failed', err)) : resolve(m))),
          );
          if (msgs.length) lastProgress = Date.now();
          else if (eofSeen) done = true;
          for (const m of msgs) {
            if (m.topic !== w.topic || m.partition !== w.partition || m.offset < w.from) continue;
            if (m.offset >= w.to) {
              done = true; // past the range: what lay before its end was markers or aborted records
              continue;
            }
            next = m.offset + 1;
            chunk.push(make(m));
            if (m.offset + 1 >= w.to) done = true;
          }
          if (chunk.length >= chunkSize || (done && chunk.length)) {
            yield chunk;
            chunk = [];
          }
          if (!done && Date.now() - lastProgress > this.pollTimeoutMs) {
            throw new KafkaError(
              `Timed out after ${this.pollTimeoutMs} ms reading ${w.topic}-${w.partition} [${w.from}, ${w.to}): the broker did not return ` +
                'records that its offsets say exist. Check that the broker is reachable (kafkaConsumer.pollTimeoutMs sets this limit). ' +
                'If a producer holds a transaction open on this topic, read_committed readers wait for it to end.',
            );
          }
        }
      } finally {
        c.removeListener('partition.eof', onEof);
      }
    }
    c.unassign();
  }

  /** Stops reading ahead (an idle query): the next read assigns afresh. */
  release(): void {
    if (this.consumer) this.forget(this.consumer);
  }

  /** Drops the kept assignment and what was read ahead. */
  private forget(c: KafkaConsumer): void {
    if (!this.kept) return;
    this.kept = undefined;
    c.unassign();
  }

  /**
   * A small range (a low-latency batch): every partition is read at once, and the records are handed over
   * partition after partition, in offset order, as the large path does. Reading partition after partition
   * cost a fetch round trip per partition per batch, after a fresh assignment that had dropped what
   * librdkafka had fetched ahead: ~20 ms for a batch of 300 records over 3 partitions. Now the partitions
   * stay assigned between batches, so the next batch usually finds its records already fetched.
   */
  private async *readSmall<T>(c: KafkaConsumer, wanted: Range[], chunkSize: number, make: (m: Message) => T): AsyncGenerator<T[]> {
    let kept = this.kept;
    // Each partition starting where the last batch left it: keep going (a partition with no new records may
    // sit out a batch, still assigned). Anything else: assign anew.
    const same = kept !== undefined && wanted.every((w) => kept!.position.get(tp(w.topic, w.partition)) === w.from);
    if (!same) {
      c.assign(wanted.map((w) => ({ topic: w.topic, partition: w.partition, offset: w.from })));
      kept = this.kept = { position: new Map(), carry: new Map(), carried: 0, endAt: new Map(), overflow: false };
    }
    const k = kept!;
    const byKey = new Map(wanted.map((w) => [tp(w.topic, w.partition), { w, rows: [] as T[], done: false }]));
    let open = wanted.length;
    const carry = (key: string, m: Message): void => {
      if (k.overflow) return;
      if (++k.carried > CARRY_LIMIT) {
        k.overflow = true; // a partition far behind the others: stop keeping, assign afresh next time
        k.carry = new Map();
        return;
      }
      let list = k.carry.get(key);
      if (!list) k.carry.set(key, (list = []));
      list.push(m);
    };
    const take = (m: Message): void => {
      const key = tp(m.topic, m.partition);
      const r = byKey.get(key);
      if (!r) {
        // An assigned partition this batch does not read: its records belong to a later batch.
        const at = k.position.get(key);
        if (at !== undefined && m.offset >= at) carry(key, m);
        return;
      }
      if (m.offset < r.w.from) return; // before the range (a re-delivery after a seek)
      if (r.done || m.offset >= r.w.to) {
        // Past the range: the next batch's. Kept (bounded) so that it need not be fetched again.
        if (m.offset >= r.w.to) carry(key, m);
        if (!r.done) {
          r.done = true; // what lay before the end was transaction markers or aborted records
          open--;
        }
        return;
      }
      r.rows.push(make(m));
      if (m.offset + 1 >= r.w.to) {
        r.done = true;
        open--;
      }
    };
    const onEof = (e: { topic: string; partition: number; offset: number }): void => {
      const key = tp(e.topic, e.partition);
      k.endAt.set(key, Math.max(k.endAt.get(key) ?? -1, e.offset));
    };
    // A partition whose end (at or past the range's end) was reached is finished: librdkafka reports the
    // end after the partition's last record, so every record of the range has come by then. (The binding
    // emits the end before handing over that consume's records: hence checked after taking them.)
    const settle = (): void => {
      for (const [key, r] of byKey) {
        if (!r.done && (k.endAt.get(key) ?? -1) >= r.w.to) {
          r.done = true;
          open--;
        }
      }
    };
    c.on('partition.eof', onEof);
    let ok = false;
    try {
      // Records carried over from the last batch first.
      const carried = k.carry;
      k.carry = new Map();
      k.carried = 0;
      for (const list of carried.values()) for (const m of list) take(m);
      settle();
      let lastProgress = Date.now();
      while (open > 0) {
        const remaining = wanted.reduce((n, w) => n + (byKey.get(tp(w.topic, w.partition))!.done ? 0 : w.to - w.from), 0);
        const msgs = await new Promise<Message[]>((resolve, reject) =>
          c.consume(Math.max(1, Math.min(10_000, remaining)), (err, m) => (err ? reject(fail('Kafka read failed', err)) : resolve(m))),
        );
        const before = open;
        for (const m of msgs) take(m);
        settle();
        // Progress is a range moving on, not records for later batches.
        if (open < before || msgs.some((m) => byKey.get(tp(m.topic, m.partition))?.done === false)) lastProgress = Date.now();
        if (open > 0 && Date.now() - lastProgress > this.pollTimeoutMs) {
          const left = [...byKey.values()].filter((r) => !r.done).map((r) => `${r.w.topic}-${r.w.partition} [${r.w.from}, ${r.w.to})`);
          throw new KafkaError(
            `Timed out after ${this.pollTimeoutMs} ms reading ${left.join(', ')}: the broker did not return records that its offsets say exist. ` +
              'Check that the broker is reachable (kafkaConsumer.pollTimeoutMs sets this limit). ' +
              'If a producer holds a transaction open on this topic, read_committed readers wait for it to end.',
          );
        }
      }
      for (const w of wanted) k.position.set(tp(w.topic, w.partition), w.to);
      if (k.overflow) this.forget(c); // a lagging partition made others run far ahead: start afresh
      ok = true;
    } finally {
      c.removeListener('partition.eof', onEof);
      if (!ok) this.forget(c); // a failed or abandoned read leaves no half-known positions behind
    }
    for (const w of wanted) {
      const rows = byKey.get(tp(w.topic, w.partition))!.rows;
      for (let i = 0; i < rows.length; i += chunkSize) yield rows.slice(i, i + chunkSize);
    }
  }

  async close(): Promise<void> {
    this.kept = undefined;
    const pending = this.connecting;
    this.connecting = undefined;
    const c = this.consumer ?? (await pending?.catch(() => undefined));
    this.consumer = undefined;
    if (c) await new Promise<void>((resolve) => c.disconnect(() => resolve()));
  }
}

export interface OutgoingRecord {
  topic: string;
  value: Buffer | null;
  key?: Buffer | null;
  partition?: number | null;
  timestamp?: number | null;
  headers?: MessageHeader[];
}

/**
 * The producer's librdkafka settings: Sluice's defaults, then the user's. Idempotence is on by default
 * (`enable.idempotence=true`): with it the broker de-duplicates retried sends and keeps their order, so a
 * retry after a timeout can neither duplicate nor reorder records within a partition. It needs `acks=all`
 * and at most 5 requests in flight, so it is left off when the user asks for something it cannot give
 * (`acks=0/1`, more in flight) — and whatever the user sets for `enable.idempotence` is kept as it is.
 */
export function producerConfig(conf: KafkaConfig): KafkaConfig {
  const acks = conf.acks ?? conf['request.required.acks'];
  const inFlight = conf['max.in.flight.requests.per.connection'] ?? conf['max.in.flight'];
  const compatible = (acks === undefined || ['all', '-1'].includes(String(acks))) && (inFlight === undefined || Number(inFlight) <= 5);
  return {
    'client.id': 'sluice-producer',
    dr_cb: true,
    'linger.ms': 5,
    'batch.num.messages': 10000,
    'queue.buffering.max.messages': 500000,
    ...(compatible ? { 'enable.idempotence': true } : {}),
    ...conf,
  };
}

/** librdkafka's default `message.max.bytes`: the largest record (key + value + headers + overhead) it sends. */
export const DEFAULT_MESSAGE_MAX_BYTES = 1_000_000;
/** librdkafka's largest per-record overhead in a v2 record batch (RD_KAFKAP_MESSAGE_V2_MAX_OVERHEAD): varints for lengths, deltas, attributes. */
const RECORD_OVERHEAD_BYTES = 36;

/** The largest record this producer configuration may send (`message.max.bytes`). */
export function maxMessageBytes(conf: KafkaConfig): number {
  const v = Number(conf['message.max.bytes'] ?? DEFAULT_MESSAGE_MAX_BYTES);
  return Number.isFinite(v) && v > 0 ? v : DEFAULT_MESSAGE_MAX_BYTES;
}

/**
 * A record's size as librdkafka counts it against `message.max.bytes` (before compression): key, value,
 * headers (each with two length varints, counted at their largest) and the record overhead. At most a few
 * bytes above librdkafka's own count, never below it.
 */
export function recordWireSize(r: Pick<OutgoingRecord, 'key' | 'value' | 'headers'>): number {
  let n = RECORD_OVERHEAD_BYTES + (r.key?.length ?? 0) + (r.value?.length ?? 0);
  for (const h of r.headers ?? []) {
    for (const [k, v] of Object.entries(h)) n += 10 + Buffer.byteLength(k) + (typeof v === 'string' ? Buffer.byteLength(v) : v.length);
  }
  return n;
}

/**
 * librdkafka's binding sends a zero-length Buffer as null — a tombstone, which deletes the key on a
 * compacted topic. A zero-length view of a non-empty buffer has a data pointer, so it goes out as an empty
 * value (or key), as written.
 */
const EMPTY = Buffer.alloc(1).subarray(0, 0);
const nonNull = (b: Buffer | null | undefined): Buffer | null => (b == null ? null : b.length === 0 ? EMPTY : b);

/** librdkafka's error code for a record above message.max.bytes (local) or the topic's max.message.bytes (broker). */
const ERR_MSG_SIZE_TOO_LARGE = 10;
/** librdkafka's codes for a topic the broker does not have (local: -188, broker: 3). */
const UNKNOWN_TOPIC_CODES = new Set([-188, 3]);

/** Failed deliveries grouped by topic and reason, so a thousand failures read as one line each. */
class DeliveryFailures {
  private readonly groups = new Map<string, { topic: string; message: string; code: number; count: number }>();
  add(topic: string, err: LibrdKafkaError): void {
    const key = `${topic}\0${err.code}\0${err.message}`;
    const g = this.groups.get(key);
    if (g) g.count++;
    else this.groups.set(key, { topic, message: err.message, code: err.code, count: 1 });
  }
  get empty(): boolean {
    return this.groups.size === 0;
  }
  /** One sentence per topic and reason, with what to do for the reasons that have a known fix. */
  take(conf: KafkaConfig): KafkaError {
    const lines = [...this.groups.values()].map((g) => {
      const what = `${g.count} record(s) to topic "${g.topic}" failed: ${g.message}.`;
      if (g.code === ERR_MSG_SIZE_TOO_LARGE) {
        return (
          `${what} The topic's max.message.bytes is below the producer's message.max.bytes (${maxMessageBytes(conf)}). ` +
          `Set .option('kafka.message.max.bytes', <the topic's max.message.bytes>) so Sluice finds such records before ` +
          `producing and sends them to the dead-letter destination, or raise the topic's limit: kafka-configs.sh --alter ` +
          `--entity-type topics --entity-name ${g.topic} --add-config max.message.bytes=<bytes>.`
        );
      }
      if (UNKNOWN_TOPIC_CODES.has(g.code)) {
        return `${what} The topic does not exist: create it (sluice topics create ${g.topic}), or set .option('createMissingTopics', 'true').`;
      }
      return what;
    });
    this.groups.clear();
    return new KafkaError(`Kafka did not accept every record: ${lines.join(' ')}`);
  }
}

/** How long librdkafka keeps trying to deliver a record before failing it (`message.timeout.ms`, alias `delivery.timeout.ms`). */
function deliveryTimeoutMs(conf: KafkaConfig): number {
  const v = Number(conf['message.timeout.ms'] ?? conf['delivery.timeout.ms'] ?? 300_000);
  return Number.isFinite(v) && v > 0 ? v : 300_000;
}

/**
 * A producer whose `flush()` resolves only when every record sent so far is acknowledged by the broker,
 * and rejects if any failed: the sink calls it before a batch is committed (at-least-once).
 */
/**
 * Which delivery reports a producer asks for:
 * - `all` (librdkafka's default): one per record. flush() returns as soon as the last acknowledgement is
 *   in, so a small batch waits only for its acks; but each report costs the query's thread ~2 µs (the
 *   binding builds a JS object per record and dispatches 100 per event-loop turn).
 * - `errors` (`delivery.report.only.error`): reports for failed records only; success is librdkafka's flush
 *   returning with its queue empty. It saves those 2 µs per record (a fifth of a record's cost end to end),
 *   but librdkafka's flush then notices the empty queue only in 10 ms polls: fine for large batches, not for
 *   low-latency ones. The Kafka sink uses one of each (sinks/kafka.ts).
 */
export type DeliveryReports = 'all' | 'errors';

export class AckedProducer {
  private producer: Producer | undefined;
  private readonly failures = new DeliveryFailures();
  /** Records sent and not reported yet (reports `all` only). */
  private pending = 0;
  constructor(
    protected readonly conf: KafkaConfig,
    private readonly reports: DeliveryReports = 'all',
  ) {}

  /** The largest record this producer sends (its `message.max.bytes`). */
  get maxRecordBytes(): number {
    return maxMessageBytes(this.conf);
  }

  private connecting: Promise<Producer> | undefined;

  /** The connected producer: one, however many callers ask at once (warm() and the first send). */
  protected connect(): Promise<Producer> {
    return (this.connecting ??= this.openProducer().catch((e: unknown) => {
      this.connecting = undefined;
      throw e;
    }));
  }

  /** Connects now, in the background, so that the first send does not wait for it; a failure is left for that send. */
  warm(): void {
    this.connect().catch(() => {});
  }

  private async openProducer(): Promise<Producer> {
    const conf = producerConfig(this.conf);
    if (this.reports === 'errors') conf['delivery.report.only.error'] = true;
    const p = new Kafka.Producer(conf as ConstructorParameters<typeof Kafka.Producer>[0]);
    p.on('delivery-report', (err, report) => {
      if (this.reports === 'all') this.pending--;
      if (err) this.failures.add(report?.topic ?? '?', err);
    });
    await connectWatched(p, this.conf, 'Cannot connect the Kafka producer');
    p.setPollInterval(20);
    this.producer = p;
    return p;
  }

  async send(records: OutgoingRecord[]): Promise<void> {
    const p = await this.connect();
    for (const r of records) {
      for (;;) {
        try {
          p.produce(r.topic, r.partition ?? null, nonNull(r.value), nonNull(r.key), r.timestamp ?? null, undefined, r.headers);
          if (this.reports === 'all') this.pending++;
          break;
        } catch (e) {
          // The local queue is full: let deliveries drain, then retry this record.
          if (/queue full/i.test(String((e as Error).message))) await new Promise((res) => setTimeout(res, 5));
          else throw fail(`Cannot send to topic "${r.topic}"`, e as Error);
        }
      }
    }
  }

  /**
   * Waits until every record sent is acknowledged; throws with the broker's reason if any was not. By default
   * it waits as long as librdkafka keeps trying a record (`message.timeout.ms`, 5 minutes by default) and a
   * little more: a broker away for a minute or two stalls the batch, and a record librdkafka gives up on
   * fails it with librdkafka's own reason ("Message timed out").
   */
  async flush(timeoutMs = deliveryTimeoutMs(this.conf) + 5_000): Promise<void> {
    const p = await this.connect();
    // librdkafka's flush returns once its queue is empty: every record acknowledged or failed. A failed
    // record's report was handed to the binding's dispatcher before that (flush polls the reports), and
    // the dispatcher runs in the event-loop turn that completes the flush, after its callback: one
    // more turn (setImmediate) and a timer later, every report of the batch has reached 'delivery-report'
    // With reports for every record, the rest may take a few more turns (below).
    await new Promise<void>((resolve, reject) =>
      p.flush(timeoutMs, (err) =>
        err ? reject(fail(`Some records were not acknowledged within ${timeoutMs} ms (message.timeout.ms + 5 s); Kafka flush failed`, err)) : resolve(),
      ),
    );
    await new Promise((res) => setImmediate(res));
    await new Promise((res) => setTimeout(res, 0));
    // Every record's report: the binding dispatches them 100 per turn, so a large batch's last ones may come
    // a few turns later still.
    for (const deadline = Date.now() + 10_000; this.pending > 0 && Date.now() < deadline; ) await new Promise((res) => setImmediate(res));
    if (!this.failures.empty) throw this.failures.take(this.conf);
    if (this.pending > 0) throw new KafkaError(`${this.pending} records were flushed but never reported as delivered (internal error).`);
  }

  async close(): Promise<void> {
    const pending = this.connecting;
    this.connecting = undefined;
    const p = this.producer ?? (await pending?.catch(() => undefined));
    this.producer = undefined;
    if (p) await new Promise<void>((resolve) => p.disconnect(() => resolve()));
  }
}

/** Reads a whole topic as it is now (earliest to latest offset of every partition): for the CLI and tests. */
export async function readTopic(conf: KafkaConfig, topic: string, maxMessages = Infinity): Promise<KafkaRecord[]> {
  const admin = new KafkaAdmin(conf);
  const reader = new RangeReader(conf, 30_000);
  try {
    const [desc] = await admin.describeTopics([topic]);
    const parts = desc!.partitions.map((p) => ({ topic, partition: p.partition }));
    // "As it is now" includes a transaction committed a moment ago (see stableEnd); one still open is not
    // waited for longer than 2 s.
    const [earliest, { stable: latest }] = await Promise.all([admin.listOffsets(parts, 'earliest'), admin.stableEnd(parts, 2_000)]);
    if (Number.isFinite(maxMessages)) {
      // Take the first maxMessages of each partition at most; the caller trims to the total.
      for (const [p, e] of Object.entries(latest[topic] ?? {})) latest[topic]![p] = Math.min(e, earliest[topic]![p]! + maxMessages);
    }
    const records = await reader.read(earliest, latest);
    return records.slice(0, maxMessages);
  } finally {
    await reader.close();
    admin.disconnect();
  }
}
