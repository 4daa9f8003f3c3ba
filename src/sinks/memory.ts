/**
 * The memory sink: keeps the output in a table named by the query name, queryable with
 * `session.table(name)`. For tests and lessons; everything is held in memory.
 */
import type { Row, StructType } from '../types/index.js';
import type { OutputMode, Sink } from './sink.js';

export class MemoryTable {
  rows: Row[] = [];
  schema: StructType | undefined;
  /** Highest batch id written: a re-run batch with an id at or below it is skipped (exactly-once here). */
  lastBatchId = -1;
  /** Rows of each batch, for tests that check what each batch emitted. */
  readonly batches = new Map<number, Row[]>();
}

export class MemorySink implements Sink {
  constructor(
    readonly name: string,
    readonly table: MemoryTable,
  ) {}
  describe(): string {
    return `MemorySink[${this.name}]`;
  }
  async addBatch(batchId: number, rows: Row[], schema: StructType, mode: OutputMode): Promise<void> {
    if (batchId <= this.table.lastBatchId) return;
    this.table.schema = schema;
    if (mode === 'complete') this.table.rows = [...rows];
    else this.table.rows.push(...rows);
    this.table.batches.set(batchId, rows);
    this.table.lastBatchId = batchId;
  }
  async stop(): Promise<void> {}
}
