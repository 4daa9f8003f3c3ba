/** The order in which stateful operators emit groups: by key values, so outputs read and compare easily. */
import { compareValues } from '../../expr/values.js';
import type { Row } from '../../types/index.js';

/** Groups come out ordered by their key values (a window or session by its start), so outputs read and compare easily. */
export function sortByKeyValues(decoded: Array<[unknown[], Row]>): Row[] {
  // Sort keys computed once per row: instants as numbers, a window as its start; the comparator then
  // compares numbers and strings directly (it runs n·log n times).
  const sortable = decoded.map(([kv, row]) => ({ k: kv.map(sortKey), row }));
  sortable.sort((a, b) => {
    for (let i = 0; i < a.k.length; i++) {
      const x = a.k[i];
      const y = b.k[i];
      if (x === y) continue;
      if (x == null || y == null) return x == null ? -1 : 1;
      const c = typeof x === typeof y && typeof x !== 'object' ? (x < y ? -1 : x > y ? 1 : 0) : compareValues(x, y);
      if (c !== 0) return c;
    }
    return 0;
  });
  return sortable.map((x) => x.row);
}

function sortKey(v: unknown): unknown {
  if (v instanceof Date) return v.getTime();
  if (v !== null && typeof v === 'object' && (v as { start?: unknown }).start instanceof Date) return (v as { start: Date }).start.getTime();
  return v;
}
