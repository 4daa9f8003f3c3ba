/** Per-row evaluation over a batch, with dead letters for bad records and retries after I/O. */
import { NeedsIO, RecordError } from '../expr/values.js';
import type { Row } from '../types/index.js';

/**
 * Runs the per-row function over a batch. A RecordError sends that row to `onBad`; NeedsIO (a schema to
 * fetch or register) is awaited and the same row evaluated again.
 */
export async function applyRows(rows: Row[], rowFn: (r: Row) => Row | null, onBad: (row: Row, e: RecordError) => void): Promise<Row[]> {
  const out: Row[] = [];
  let ioRetries = 0;
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!;
    try {
      const r = rowFn(row);
      if (r !== null) out.push(r);
      ioRetries = 0;
    } catch (e) {
      if (e instanceof NeedsIO) {
        if (++ioRetries > 5) throw new Error('An expression asked for the same I/O five times in a row (internal error).');
        await e.promise;
        i--;
      } else if (e instanceof RecordError) {
        onBad(row, e);
        ioRetries = 0;
      } else throw e;
    }
  }
  return out;
}
