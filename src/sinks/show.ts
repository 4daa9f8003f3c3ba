/** Spark's `show()` table layout, shared by DataFrame.show() and the console sink. */
import { castToString } from '../expr/values.js';
import { Decimal, type Row, type StructType } from '../types/index.js';

function cell(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  // Spark's show() prints decimals in plain notation with their scale (12.30, 0.00000001): ToPrettyString.
  if (v instanceof Decimal) return v.toPlainString();
  if (Buffer.isBuffer(v)) return `[${[...v].map((b) => b.toString(16).toUpperCase().padStart(2, '0')).join(' ')}]`;
  if (Array.isArray(v)) return `[${v.map(cell).join(', ')}]`;
  if (typeof v === 'object' && !(v instanceof Date)) return `{${Object.values(v as Row).map(cell).join(', ')}}`;
  return castToString(v) ?? 'null';
}

/**
 * Renders rows as Spark does: a boxed table, cells right-aligned and cut to `truncate` characters
 * (`17 chars + "..."` for the default 20); `truncate: false` shows whole values, left-aligned.
 */
export function showString(rows: Row[], schema: StructType, numRows = 20, truncate: boolean | number = true): string {
  const width = truncate === true ? 20 : truncate === false ? 0 : truncate;
  const names = schema.fieldNames;
  const shown = rows.slice(0, numRows);
  const fit = (s: string): string => (width > 0 && s.length > width ? (width < 4 ? s.slice(0, width) : s.slice(0, width - 3) + '...') : s);
  const table = [names.map(fit), ...shown.map((r) => names.map((n) => fit(cell(r[n]))))];
  const widths = names.map((_, i) => Math.max(3, ...table.map((line) => line[i]!.length)));
  const sep = '+' + widths.map((w) => '-'.repeat(w)).join('+') + '+';
  const line = (cells: string[]): string =>
    '|' + cells.map((c, i) => (width > 0 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('|') + '|';
  const out = [sep, line(table[0]!), sep, ...table.slice(1).map(line), sep];
  if (rows.length > numRows) out.push(`only showing top ${numRows} row${numRows === 1 ? '' : 's'}`);
  return out.join('\n') + '\n';
}
