/**
 * MemoryStream: a streaming source fed by the program (`addData`), as Spark's MemoryStream. Offsets are
 * row counts, so a re-run batch reads exactly the same rows. For tests and lessons.
 */
import type { Offset } from '../checkpoint/checkpoint.js';
import type { Row, StructType } from '../types/index.js';
import { CHUNK_ROWS, type ReadLimit, type Source } from './source.js';

let nextId = 0;

export class MemoryStream implements Source {
  private readonly rows: Row[] = [];
  readonly id = nextId++;
  constructor(readonly schema: StructType) {}

  /** Appends rows; they form the next batch(es). Returns the offset after them. */
  addData(...rows: Array<Row | Row[]>): number {
    for (const r of rows) {
      // A loop, not push(...r): spreading a large array (200,000 rows) overflows the call stack.
      if (Array.isArray(r)) for (const x of r) this.rows.push(x);
      else this.rows.push(r);
    }
    return this.rows.length;
  }
  describe(): string {
    return `MemoryStream[${this.schema.fieldNames.join(',')}]`;
  }
  async initialOffset(): Promise<Offset> {
    return 0;
  }
  async latestOffset(start: Offset, limit: ReadLimit): Promise<Offset> {
    let end = this.rows.length;
    if (limit.maxRows !== undefined) end = Math.min(end, (start as number) + limit.maxRows);
    if (limit.upTo !== undefined) end = Math.min(end, limit.upTo as number);
    return Math.max(end, start as number);
  }
  async *getBatch(start: Offset, end: Offset): AsyncGenerator<Row[]> {
    for (let i = start as number; i < (end as number); i += CHUNK_ROWS) yield this.rows.slice(i, Math.min(i + CHUNK_ROWS, end as number));
  }
  async stop(): Promise<void> {}
}
