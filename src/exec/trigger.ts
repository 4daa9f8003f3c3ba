/** Triggers: when the next micro-batch runs (Spark's Trigger.ProcessingTime / AvailableNow / Once). */
import { parseDuration } from '../util/duration.js';

export type Trigger =
  | { kind: 'processingTime'; intervalMs: number }
  | { kind: 'availableNow' }
  | { kind: 'once' };

/** What `writeStream.trigger(...)` accepts, as in PySpark: `{ processingTime: '5 seconds' }`, `{ availableNow: true }`, `{ once: true }`. */
export type TriggerOptions =
  | { processingTime: string | number }
  | { availableNow: true }
  | { once: true }
  | { continuous: string };

export function parseTrigger(t: TriggerOptions): Trigger {
  const keys = Object.keys(t);
  if (keys.length !== 1) {
    throw new RangeError(`trigger() takes exactly one of processingTime, availableNow, once; got ${keys.join(', ') || 'nothing'}.`);
  }
  if ('processingTime' in t) return { kind: 'processingTime', intervalMs: parseDuration(t.processingTime, 'processingTime') };
  if ('availableNow' in t) return { kind: 'availableNow' };
  if ('once' in t) return { kind: 'once' };
  if ('continuous' in t) {
    throw new RangeError(
      'Continuous processing is not supported by Sluice (it is experimental in Spark too, with at-least-once only). ' +
        'Use { processingTime: "0 seconds" } for the lowest latency micro-batches.',
    );
  }
  throw new RangeError(`Unknown trigger ${JSON.stringify(t)}. Use { processingTime: "5 seconds" }, { availableNow: true } or { once: true }.`);
}
