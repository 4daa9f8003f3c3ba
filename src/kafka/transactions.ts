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

/** How long transactional calls (init, commit, abort) keep trying through retriable errors. */
const TXN_CALL_TIMEOUT_MS = 120_000;

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
  constructor(
    conf: KafkaConfig,
    readonly transactionalId: string,
  ) {
    super({ 'transaction.timeout.ms': DEFAULT_TRANSACTION_TIMEOUT_MS, ...conf, 'transactional.id': transactionalId });
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
    await this.call('initialise transactions', (cb) => p.initTransactions(TXN_CALL_TIMEOUT_MS, cb));
  }

  async begin(): Promise<void> {
    const p = await this.connect();
    await this.call('begin a transaction', (cb) => p.beginTransaction(cb), false);
    this.inTransaction = true;
  }

  /** Commits the open transaction: flushes what was sent, then makes it visible. Retried while librdkafka says it may be. */
  async commit(): Promise<void> {
    const p = await this.connect();
    await this.call('commit the transaction', (cb) => p.commitTransaction(TXN_CALL_TIMEOUT_MS, cb));
    this.inTransaction = false;
  }

  /** Aborts the open transaction, if any: what it sent is never seen by read_committed readers. */
  async abort(): Promise<void> {
    if (!this.inTransaction) return;
    const p = await this.connect();
    await this.call('abort the transaction', (cb) => p.abortTransaction(TXN_CALL_TIMEOUT_MS, cb));
    this.inTransaction = false;
  }

  /** Runs a transactional call, again while its error is retriable (within TXN_CALL_TIMEOUT_MS); classifies its failure. */
  private async call(what: string, run: (cb: (err: LibrdKafkaError) => void) => void, retry = true): Promise<void> {
    const until = Date.now() + TXN_CALL_TIMEOUT_MS;
    for (let delay = 200; ; delay = Math.min(delay * 2, 5_000)) {
      const err = await new Promise<LibrdKafkaError | undefined>((resolve) => run((e) => resolve(e ?? undefined)));
      if (!err) return;
      if (retry && err.isRetriable && !err.isFatal && Date.now() + delay < until) {
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
      hint = ' The transaction was aborted: none of its records will be seen by read_committed readers.';
    }
    return new TransactionError(`Kafka could not ${what} (transactional.id "${this.transactionalId}"): ${err.message}.${hint}`, fatal, Boolean(err.isTxnRequiresAbort), err);
  }

}
