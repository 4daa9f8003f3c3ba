/**
 * Calendar intervals: the value of SQL's `INTERVAL 1 HOUR` / `interval 10 minutes`, and what
 * `timestamp ± interval` computes. Spark keeps months, days and microseconds apart because a month or a
 * day has no fixed length in general; Sluice keeps the same three parts (milliseconds instead of
 * microseconds, the precision of its timestamps) so `ts + INTERVAL 1 MONTH` lands on the same calendar day
 * of the next month, as in Spark, and never "30 days later".
 *
 * Spark 3.5 gives single-unit literals the ANSI types (`interval hour`, `interval year to month`, …); they
 * add to timestamps the same way, so Sluice has one interval type, printed `interval`.
 */
import { DataType, DateType, StringType, TimestampType } from '../types/index.js';
import { fromEpochMicros, microsOfMilli } from '../types/timestamp.js';
import { Column } from './column.js';
import { formatDate, parseTimestamp } from './values.js';

/**
 * A calendar interval value: months, then days, then milliseconds are added, in that order (Spark's rule).
 * `ms` may have a fraction: microseconds (`INTERVAL 5 MICROSECONDS` is 0.005 ms).
 */
export class CalendarInterval {
  constructor(
    readonly months: number,
    readonly days: number,
    readonly ms: number,
  ) {}

  /** Spark's legacy text form, e.g. `INTERVAL '1 hours 30 minutes'`; used as the column name of a literal. */
  toString(): string {
    const parts: string[] = [];
    const years = Math.trunc(this.months / 12);
    const months = this.months % 12;
    if (years) parts.push(`${years} years`);
    if (months) parts.push(`${months} months`);
    if (this.days) parts.push(`${this.days} days`);
    let rest = this.ms;
    for (const [unit, size] of [['hours', 3_600_000], ['minutes', 60_000], ['seconds', 1000], ['milliseconds', 1]] as const) {
      const n = Math.trunc(rest / size);
      if (n) parts.push(`${n} ${unit}`);
      rest -= n * size;
    }
    const micros = Math.round(rest * 1000);
    if (micros) parts.push(`${micros} microseconds`);
    return `INTERVAL '${parts.length ? parts.join(' ') : '0 seconds'}'`;
  }
}

class CalendarIntervalDataType extends DataType {
  simpleString(): string {
    return 'interval';
  }
}
/** The type of interval values. It cannot be a column of a sink's output (Spark refuses that too). */
export const CalendarIntervalType: DataType = new CalendarIntervalDataType();

/** Units SQL accepts after a number in an interval (singular and plural), in [months, days, ms] parts. */
const UNITS: Record<string, [number, number, number]> = {
  year: [12, 0, 0],
  month: [1, 0, 0],
  week: [0, 7, 0],
  day: [0, 1, 0],
  hour: [0, 0, 3_600_000],
  minute: [0, 0, 60_000],
  second: [0, 0, 1000],
  millisecond: [0, 0, 1],
  microsecond: [0, 0, 0.001],
};

/** The interval unit a word names (`hours`, `MINUTE`), or undefined. */
export function intervalUnit(word: string): [number, number, number] | undefined {
  const w = word.toLowerCase();
  return UNITS[w] ?? (w.endsWith('s') ? UNITS[w.slice(0, -1)] : undefined);
}

/**
 * `amount` of `unit` as an interval. Fractions spill into the smaller parts the way Spark does for
 * seconds (`1.5 seconds`); a fraction of a month or a day is refused, as in Spark.
 */
export function intervalOf(amount: number, unit: string): CalendarInterval {
  const u = intervalUnit(unit);
  if (!u) throw new RangeError(`"${unit}" is not an interval unit (year, month, week, day, hour, minute, second, millisecond, microsecond)`);
  if (!Number.isInteger(amount) && (u[0] || u[1])) throw new RangeError(`an interval of ${amount} ${unit} is not a whole number of ${unit.toLowerCase().replace(/s$/, '')}s`);
  // `+ 0` turns -0 (from -5 × 0 months) into 0, so equal intervals compare equal.
  return new CalendarInterval(amount * u[0] + 0, amount * u[1] + 0, Math.round(amount * u[2] * 1000) / 1000 + 0);
}

export function addIntervals(a: CalendarInterval, b: CalendarInterval, sign = 1): CalendarInterval {
  return new CalendarInterval(a.months + sign * b.months, a.days + sign * b.days, a.ms + sign * b.ms);
}

/** Parses `'1 hour 30 minutes'`, `'10 minutes'`, `'-2 days'` (an optional leading `interval` is allowed). */
export function parseInterval(text: string): CalendarInterval {
  const src = text.trim().replace(/^interval\s+/i, '');
  const re = /\s*([+-]?\d+(?:\.\d+)?)\s*([A-Za-z]+)\s*/gy;
  let total = new CalendarInterval(0, 0, 0);
  let at = 0;
  let seen = 0;
  for (let m = re.exec(src); m; m = re.exec(src)) {
    total = addIntervals(total, intervalOf(Number(m[1]), m[2]!));
    at = re.lastIndex;
    seen++;
  }
  if (!seen || at !== src.length) {
    throw new RangeError(`cannot read "${text}" as an interval; write it as "1 hour", "10 minutes" or "1 day 2 hours"`);
  }
  return total;
}

/** A calendar interval literal: `col('ts').plus(interval('1 hour'))` is SQL's `ts + INTERVAL 1 HOUR`. */
export function interval(text: string): Column {
  return new Column({ kind: 'lit', value: parseInterval(text) });
}

const DAY_MS = 86_400_000;

/**
 * `t + sign·i`: months first (the day clamped to the target month's length), then days, then time — to the
 * microsecond (a timestamp may carry microseconds, types/timestamp.ts; an interval may too).
 */
export function addToTimestamp(t: Date, i: CalendarInterval, sign: number): Date {
  let ms = t.getTime();
  if (i.months) {
    const y = t.getUTCFullYear();
    const m = t.getUTCMonth() + sign * i.months;
    const lastDay = new Date(Date.UTC(y, m + 1, 0)).getUTCDate();
    const day = Math.min(t.getUTCDate(), lastDay);
    ms = Date.UTC(y, m, day, t.getUTCHours(), t.getUTCMinutes(), t.getUTCSeconds(), t.getUTCMilliseconds());
  }
  const us = ms * 1000 + microsOfMilli(t) + sign * Math.round((i.days * DAY_MS + i.ms) * 1000);
  return fromEpochMicros(us);
}

/**
 * The result type and function of `left op right` when one side is an interval, or undefined when neither
 * is (then it is ordinary arithmetic) or the other side is not a time (the caller refuses that). A date plus
 * whole days stays a date; plus time, it becomes a timestamp (Spark's rule for day-time intervals).
 */
export function intervalArithmetic(
  op: string,
  left: DataType,
  right: DataType,
  rightIsWholeDays: boolean,
): { type: DataType; apply: (a: unknown, b: unknown) => unknown } | undefined {
  const isI = (t: DataType): boolean => t === CalendarIntervalType;
  if (op !== '+' && op !== '-') return undefined;
  if (!isI(left) && !isI(right)) return undefined;
  const sign = op === '+' ? 1 : -1;
  if (isI(left) && isI(right)) {
    return { type: CalendarIntervalType, apply: (a, b) => addIntervals(a as CalendarInterval, b as CalendarInterval, sign) };
  }
  // interval + timestamp is commutative; interval − timestamp means nothing.
  const [timeType, swapped] = isI(right) ? [left, false] : [right, true];
  if (swapped && op === '-') return undefined;
  const pick = (a: unknown, b: unknown): [unknown, CalendarInterval] => (swapped ? [b, a as CalendarInterval] : [a, b as CalendarInterval]);
  if (timeType === TimestampType) {
    return { type: TimestampType, apply: (a, b) => { const [t, i] = pick(a, b); return addToTimestamp(t as Date, i, sign); } };
  }
  if (timeType === StringType) {
    // Spark reads the string as a timestamp ('2025-01-01' + INTERVAL 1 DAY); one that does not parse is null.
    return {
      type: TimestampType,
      apply: (a, b) => {
        const [s, i] = pick(a, b);
        const ts = parseTimestamp(String(s));
        return ts ? addToTimestamp(ts, i, sign) : null;
      },
    };
  }
  if (timeType === DateType) {
    const asTime = (d: unknown, i: CalendarInterval): Date => addToTimestamp(parseTimestamp(String(d))!, i, sign);
    return rightIsWholeDays
      ? { type: DateType, apply: (a, b) => { const [d, i] = pick(a, b); return formatDate(asTime(d, i)); } }
      : { type: TimestampType, apply: (a, b) => { const [d, i] = pick(a, b); return asTime(d, i); } };
  }
  return undefined;
}
