/**
 * Microseconds for Sluice's timestamps. Spark's TimestampType counts microseconds since the epoch; a JS
 * `Date` counts milliseconds. A timestamp that has a non-zero microsecond part (from Avro
 * `timestamp-micros`, or a string with 4–6 fraction digits) is a {@link MicrosDate}: a real `Date` for the
 * milliseconds, which every operator keeps using, plus the microseconds within that millisecond, which
 * printing, comparison, the state codec and Avro `timestamp-micros` encoding keep. Plain `Date`s mean
 * "no microseconds". Why this shape, and what still works in milliseconds: docs/decisions.md
 * ("Timestamps keep microseconds").
 */
export class MicrosDate extends Date {
  /** The microseconds within the millisecond, 0–999 (also for instants before 1970: the ms part is floored). */
  readonly microsOfMilli: number;
  constructor(epochMillis: number, microsOfMilli: number) {
    super(epochMillis);
    if (!Number.isInteger(microsOfMilli) || microsOfMilli < 0 || microsOfMilli > 999) {
      throw new RangeError(`microsOfMilli must be an integer 0–999, got ${microsOfMilli}`);
    }
    this.microsOfMilli = microsOfMilli;
  }
}

/** The microseconds within the millisecond of a timestamp (0 for a plain Date). */
export function microsOfMilli(d: Date): number {
  return d instanceof MicrosDate ? d.microsOfMilli : 0;
}

/** Microseconds since the epoch (exact while |µs| < 2^53, i.e. years 1685–2255). */
export function epochMicros(d: Date): number {
  return d.getTime() * 1000 + microsOfMilli(d);
}

/** The timestamp at this many microseconds since the epoch: a plain Date when the µs part is 0. */
export function fromEpochMicros(us: number): Date {
  const rem = ((us % 1000) + 1000) % 1000;
  const ms = (us - rem) / 1000;
  return rem === 0 ? new Date(ms) : new MicrosDate(ms, rem);
}

/**
 * A timestamp as milliseconds since the epoch with its microseconds as the fraction (12:09:59.999999 →
 * …999.999): what stateful operators compare with a watermark, so that an instant 1 µs before a window's
 * end is not taken for the millisecond before it (window_time() of a window that just closed must not be
 * late for the next operator).
 */
export function eventTimeMs(d: Date): number {
  return d.getTime() + microsOfMilli(d) / 1000;
}
