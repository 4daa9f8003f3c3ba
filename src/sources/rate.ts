/**
 * The rate source (Spark's `format('rate')`): `rowsPerSecond` rows of (timestamp, value), value counting
 * from 0. The offset is the number of rows due since the query's first start (kept in `sources/<i>/0`),
 * so a re-run batch regenerates exactly the same rows.
 */
import type { Offset } from '../checkpoint/checkpoint.js';
import { LongType, Row, StructType, TimestampType } from '../types/index.js';
import { CHUNK_ROWS, type ReadLimit, type Source } from './source.js';

interface RateOffset {
  startMs: number;
  value: number;
}

export class RateSource implements Source {
  readonly schema = new StructType().add('timestamp', TimestampType).add('value', LongType);
  private readonly rowsPerSecond: number;
  constructor(options: Record<string, string>) {
    this.rowsPerSecond = Number(options.rowsPerSecond ?? '1');
    if (!(this.rowsPerSecond > 0)) {
      throw new RangeError(`rate source: rowsPerSecond must be a positive number, got "${options.rowsPerSecond}".`);
    }
  }
  describe(): string {
    return `RateStreamV2[rowsPerSecond=${this.rowsPerSecond}]`;
  }
  async initialOffset(): Promise<Offset> {
    return { startMs: Date.now(), value: 0 } satisfies RateOffset;
  }
  async latestOffset(start: Offset, limit: ReadLimit): Promise<Offset> {
    const s = start as RateOffset;
    let value = Math.floor(((Date.now() - s.startMs) / 1000) * this.rowsPerSecond);
    if (limit.maxRows !== undefined) value = Math.min(value, s.value + limit.maxRows);
    if (limit.upTo !== undefined) value = Math.min(value, (limit.upTo as RateOffset).value);
    return { startMs: s.startMs, value: Math.max(value, s.value) };
  }
  async *getBatch(start: Offset, end: Offset): AsyncGenerator<Row[]> {
    const s = start as RateOffset;
    const e = end as RateOffset;
    let rows: Row[] = [];
    for (let v = s.value; v < e.value; v++) {
      rows.push({ timestamp: new Date(s.startMs + Math.floor((v * 1000) / this.rowsPerSecond)), value: v });
      if (rows.length === CHUNK_ROWS) {
        yield rows;
        rows = [];
      }
    }
    if (rows.length) yield rows;
  }
  async stop(): Promise<void> {}
}
