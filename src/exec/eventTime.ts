/** A batch's event-time statistics per watermark stage (for the next watermark and progress), gathered chunk by chunk. */
import type { WatermarkStage } from '../plan/analyzer.js';
import type { Row } from '../types/index.js';

export interface EventTimeStats {
  min: number;
  max: number;
  sum: number;
  count: number;
}

/** Adds rows' event times to a watermark stage's statistics (min, max, sum, count): here and in task workers. */
export function observeEventTimes(stage: WatermarkStage, rows: Row[], s: EventTimeStats = { min: Infinity, max: -Infinity, sum: 0, count: 0 }): EventTimeStats {
  for (const r of rows) {
    const t = stage.eventTime(r) as Date | null;
    if (t == null) continue;
    const ms = t.getTime();
    if (ms < s.min) s.min = ms;
    if (ms > s.max) s.max = ms;
    s.sum += ms;
    s.count++;
  }
  return s;
}

