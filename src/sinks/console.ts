/** The console sink: prints every batch as a table, as Spark's `format('console')` does. For debugging. */
import type { Row, StructType } from '../types/index.js';
import { showString } from './show.js';
import type { OutputMode, Sink } from './sink.js';

export class ConsoleSink implements Sink {
  private readonly numRows: number;
  private readonly truncate: boolean;
  constructor(
    options: Record<string, string>,
    private readonly write: (text: string) => void = (t) => process.stdout.write(t),
  ) {
    this.numRows = options.numRows ? Number(options.numRows) : 20;
    this.truncate = options.truncate === undefined ? true : options.truncate !== 'false';
  }
  describe(): string {
    return 'ConsoleSink';
  }
  async addBatch(batchId: number, rows: Row[], schema: StructType, _mode: OutputMode): Promise<void> {
    const bar = '-------------------------------------------';
    this.write(`${bar}\nBatch: ${batchId}\n${bar}\n${showString(rows, schema, this.numRows, this.truncate)}\n`);
  }
  async stop(): Promise<void> {}
}
