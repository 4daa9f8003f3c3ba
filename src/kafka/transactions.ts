/**
 * A transactional Kafka producer (librdkafka's transactions API): records sent between begin() and commit()
 * become visible to read_committed readers all at once, or never. The exactly-once sink is built on it
 * (sinks/kafka.ts, ARCHITECTURE.md "Exactly-once to Kafka").
 *
 * librdkafka classifies every transactional error: retriable (the same call may be made again: a coordinator
 * moving, a broker restarting), abortable (the transaction must be aborted; the producer stays usable) and
 * fatal (this producer is done: it was fenced by a newer one with the same transactional.id).
 */
import type { LibrdKafkaError } from '@confluentinc/kafka-javascript';
import { AckedProducer, KafkaError, type KafkaConfig } from './client.js';

/**
 * How long the broker lets a transaction stay open before it aborts it. A batch must be written within it;
 * a process that dies mid-transaction holds read_committed readers back until its restart fences it, or
 * until this passes. librdkafka's default (60 s) is too short for a first batch over a large backlog; the
 * broker's cap (`transaction.max.timeout.ms`) is 15 minutes by default.
 */
export const DEFAULT_TRANSACTION_TIMEOUT_MS = 600_000;

/** How long initTransactions keeps trying through retriable errors (a coordinator still loading, a broker restarting). */
const INIT_TIMEOUT_MS = 120_000;

/** A transactional call failed; `abortable` says the transaction must be aborted, `fatal` that the producer is done. */
export class TransactionError extends KafkaError {
  override name = 'TransactionError';
  constructor(
    message: string,
    readonly fatal: boolean,
    readonly abortable: boolean,
    cause?: unknown,
  ) {
    super(message);
    if (cause !== undefined) (this as { cause?: unknown }).cause = cause;
  }
}

/** librdkafka's codes for "a newer producer with this transactional.id exists": local _FENCED, broker PRODUCER_FENCED, INVALID_PRODUCER_EPOCH. */
const FENCED_CODES = new Set([-144, 90, 47]);

export class TransactionalProducer extends AckedProducer {
  private inTransaction = false;
  /** When the open transaction began: a transaction open longer than transaction.timeout.ms is aborted by the broker. */
  private begunAt = 0;
  private readonly timeoutMs: number;
  constructor(
    conf: KafkaConfig,
    readonly transactionalId: string,
  ) {
    const timeoutMs = Number(conf['transaction.timeout.ms'] ?? DEFAULT_TRANSACTION_TIMEOUT_MS);
    super({
      'transaction.timeout.ms': timeoutMs,
      // librdkafka derives both from transaction.timeout.ms when they are unset: a socket timeout of ~10
      // minutes would notice a broker that stopped answering that late, and flush() waits as long as a
      // record is kept. Their usual defaults (60 s; 5 minutes), never above the transaction timeout (librdkafka refuses that).
      'socket.timeout.ms': Math.min(60_000, timeoutMs),
      'message.timeout.ms': Math.min(300_000, timeoutMs),
      ...conf,
      'transactional.id': transactionalId,
    });
    this.timeoutMs = timeoutMs;
  }

  /** Whether a transaction is open (begun, not yet committed or aborted). */
  get open(): boolean {
    return this.inTransaction;
  }

  /**
   * Registers this producer with the transaction coordinator under its transactional.id, with a new epoch:
   * any older producer with the same id (a zombie of a crashed run) is fenced, and a transaction it left
   * open is aborted (or, had it begun committing, completed) before this resolves.
   */
  async init(): Promise<void> {
    const p = await this.connect();
    await this.call('initialise transactions', (cb) => p.initTransactions(INIT_TIMEOUT_MS, cb), INIT_TIMEOUT_MS);
  }

  async begin(): Promise<void> {
    const p = await this.connect();
    await this.call('begin a transaction', (cb) => p.beginTransaction(cb));
    this.inTransaction = true;
    this.begunAt = Date.now();
  }

  /**
   * Commits the open transaction: flushes what was sent, then makes it visible. With no timeout (-1), as
   * librdkafka recommends: it returns when the commit is done, or with an error that is not retriable.
   */
  async commit(): Promise<void> {
    const p = await this.connect();
    try {
      await this.call('commit the transaction', (cb) => p.commitTransaction(-1, cb));
    } finally {
      this.inTransaction = false;
    }
  }

  /** Aborts the open transaction, if any: what it sent is never seen by read_committed readers. */
  async abort(): Promise<void> {
    if (!this.inTransaction) return;
    const p = await this.connect();
    try {
      await this.call('abort the transaction', (cb) => p.abortTransaction(-1, cb));
    } finally {
      this.inTransaction = false;
    }
  }

  /**
   * A failure of the open transaction, explained: a "fenced" error after the transaction was open longer than
   * transaction.timeout.ms is the broker's timeout, not another process (the broker aborts such a transaction
   * and bumps the producer's epoch, which librdkafka reports as fenced).
   */
  explainFailure(e: unknown): unknown {
    const open = this.inTransaction ? Date.now() - this.begunAt : 0;
    const text = String((e as Error)?.message ?? e);
    if (open >= this.timeoutMs * 0.9 && /fenced|epoch/i.test(text)) {
      return Object.assign(
        new TransactionError(
          `The batch's Kafka transaction was open ${Math.round(open / 1000)} s, longer than transaction.timeout.ms (${this.timeoutMs / 1000} s): ` +
            'the broker aborted it. Make batches smaller with maxOffsetsPerTrigger, or raise kafka.transaction.timeout.ms (up to the broker\'s ' +
            `transaction.max.timeout.ms, 15 minutes by default). Kafka said: ${text}`,
          true,
          false,
        ),
        { cause: e },
      );
    }
    return e;
  }

  /**
   * Runs a transactional call; calls it again while its error is retriable, for up to `retryForMs` (a call
   * that timed out resumes where it was when made again); classifies its failure.
   */
  private async call(what: string, run: (cb: (err: LibrdKafkaError) => void) => void, retryForMs = 0): Promise<void> {
    const until = Date.now() + retryForMs;
    for (let delay = 200; ; delay = Math.min(delay * 2, 5_000)) {
      const err = await new Promise<LibrdKafkaError | undefined>((resolve) => run((e) => resolve(e ?? undefined)));
      if (!err) return;
      if (err.isRetriable && !err.isFatal && Date.now() + delay < until) {
        await new Promise((r) => setTimeout(r, delay));
        continue;
      }
      throw this.explain(what, err);
    }
  }

  private explain(what: string, err: LibrdKafkaError): TransactionError {
    const fenced = FENCED_CODES.has(err.code);
    const fatal = Boolean(err.isFatal) || fenced;
    let hint = '';
    if (fenced) {
      hint =
        ` Another producer with transactional.id "${this.transactionalId}" started after this one and fenced it: the same query ` +
        'runs in another process (or this process stalled so long that its checkpoint lock was taken over). Only the newest may write; stop the other one.';
    } else if (err.isTxnRequiresAbort) {
      hint = ' The transaction must be aborted: none of its records will be seen by read_committed readers, and the batch is written again when the query restarts.';
    }
    return new TransactionError(`Kafka could not ${what} (transactional.id "${this.transactionalId}"): ${err.message}.${hint}`, fatal, Boolean(err.isTxnRequiresAbort), err);
  }

}
