/**
 * The two sinks that hand a query's output to user code, as Spark's:
 * - `ForeachBatchSink` (`writeStream.foreachBatch(fn)`): each micro-batch as a batch DataFrame, with its id;
 * - `ForeachWriterSink` (`writeStream.foreach(writer)`): each row, between `open(partitionId, epochId)` and
 *   `close(error | null)` — Spark's ForeachWriter contract (ForeachWriterTable / ForeachDataWriter).
 *
 * Neither commits anything itself: the loop writes `commits/N` only after the batch returned here. A user
 * function that throws therefore fails the query with the batch uncommitted, and a restart hands the same
 * batch (same id, same rows) over again — the reason the batch id is passed: to make writes idempotent.
 */
import type { DataFrame } from '../api/dataframe.js';
import type { Row, StructType } from '../types/index.js';
import type { BatchWriter, OutputMode, Sink } from './sink.js';

/** `writeStream.foreachBatch(fn)`: called with each micro-batch's output and its batch id. */
export type ForeachBatchFn = (batch: DataFrame, batchId: number) => void | Promise<void>;

/**
 * Spark's ForeachWriter, for `writeStream.foreach(writer)`. For every batch (epoch) and partition:
 * `open(partitionId, epochId)` — return false to skip this partition's rows (e.g. the epoch was written
 * already) —, then `process(row)` for each row, then `close(null)`; if `process` (or the batch) fails,
 * `close(error)` instead, and the query fails. `open` and `close` are optional, as in PySpark. Any of them
 * may be async. Sluice writes a batch as one partition: `partitionId` is 0 and `epochId` is the batch id.
 */
export interface ForeachWriter {
  open?(partitionId: number, epochId: number): boolean | Promise<boolean>;
  process(row: Row): void | Promise<void>;
  close?(error: Error | null): void | Promise<void>;
}

/** Hands each micro-batch to `fn` as a batch DataFrame (its rows are already in memory). */
export class ForeachBatchSink implements Sink {
  constructor(
    private readonly fn: ForeachBatchFn,
    private readonly toDataFrame: (rows: Row[], schema: StructType) => DataFrame,
  ) {}
  describe(): string {
    return 'ForeachBatchSink';
  }
  async addBatch(batchId: number, rows: Row[], schema: StructType): Promise<void> {
    await this.fn(this.toDataFrame(rows, schema), batchId);
  }
  async stop(): Promise<void> {}
}

const isThenable = (v: unknown): v is PromiseLike<unknown> => typeof (v as PromiseLike<unknown> | null)?.then === 'function';

/**
 * Calls a ForeachWriter for each row, chunk by chunk as the batch is produced (so a large backlog is never
 * held whole, unlike foreachBatch). Spark's order: `open` once per batch, even for a batch with no rows
 * (a no-data batch included); `close` once after it, whatever `open` returned.
 */
export class ForeachWriterSink implements Sink {
  /** The batch whose `open` ran and whose `close` has not: closed with an error if the query stops first. */
  private current: { batchId: number; closed: boolean } | undefined;

  constructor(
    private readonly writer: ForeachWriter,
    private readonly log: (line: string) => void,
  ) {}

  describe(): string {
    return 'ForeachSink';
  }

  async addBatch(batchId: number, rows: Row[], schema: StructType, mode: OutputMode): Promise<void> {
    const w = this.openBatch(batchId, schema, mode);
    await w.write(rows);
    await w.close();
  }

  openBatch(batchId: number, _schema: StructType, _mode: OutputMode): BatchWriter {
    let opened: Promise<boolean> | undefined;
    const state = { batchId, closed: false };
    // `open` runs when the first chunk (or the end of the batch) arrives, not here: openBatch is synchronous.
    const open = (): Promise<boolean> =>
      (opened ??= (async () => {
        const accepted = this.writer.open ? await this.writer.open(0, batchId) : true;
        this.current = state; // only now is a close owed (Spark: an open that throws is not closed)
        if (typeof accepted !== 'boolean') {
          // PySpark would read a missing return as false and skip every row without a word.
          const err = new TypeError(
            `ForeachWriter.open(0, ${batchId}) returned ${String(accepted)}: it must return true (process this batch's rows) or false (skip them).`,
          );
          await this.closeAfterError(close, err);
          throw err;
        }
        return accepted;
      })());
    const close = async (error: Error | null): Promise<void> => {
      if (state.closed) return;
      state.closed = true;
      if (this.current === state) this.current = undefined;
      await this.writer.close?.(error);
    };
    return {
      write: async (rows) => {
        if (!(await open())) return;
        try {
          for (const row of rows) {
            const r = this.writer.process(row);
            if (isThenable(r)) await r; // an await per row only for an async process
          }
        } catch (e) {
          const err = e instanceof Error ? e : new Error(String(e));
          await this.closeAfterError(close, err);
          throw err;
        }
      },
      close: async () => {
        await open();
        await close(null);
      },
    };
  }

  /** Calls `close(error)`; an error from close itself is logged, so the query fails with the first error. */
  private async closeAfterError(close: (e: Error) => Promise<void>, err: Error): Promise<void> {
    try {
      await close(err);
    } catch (e) {
      this.log(`WARN ForeachWriter.close(error) threw too (the query fails with the first error): ${(e as Error).message}`);
    }
  }

  /**
   * The query stopped with a batch still open (the batch failed after some rows were processed, e.g. a
   * bad record with onBadRecord=fail): Spark's abort, `close` with an error, so the writer can roll back.
   */
  async stop(): Promise<void> {
    const open = this.current;
    if (!open || open.closed) return;
    open.closed = true;
    this.current = undefined;
    await this.closeAfterError(
      async (e) => this.writer.close?.(e),
      new Error(`Foreach writer has been aborted: batch ${open.batchId} failed before all its rows were written.`),
    );
  }
}
