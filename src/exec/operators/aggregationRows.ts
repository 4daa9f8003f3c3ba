/**
 * The row side of a streaming aggregation: a row's groups (several for sliding windows), each group's event
 * time, and whether the row is late for it. One function for the query's thread (AggregationOperator) and
 * for task workers that pre-aggregate chunks (exec/tasks/worker.ts), so both judge rows the same way.
 */
import { windowsOf } from '../../expr/window.js';
import type { AggregateStage } from '../../plan/analyzer.js';
import { encodeState } from '../../state/codec.js';
import { DoubleType, FloatType, type Row } from '../../types/index.js';
import { keyTime } from './aggregationState.js';

export interface RowRouting {
  /** The watermark for late events (the previous batch's): a group at or behind it drops the row. */
  lateEventsMs: number;
  outputMode: 'append' | 'update' | 'complete';
}

export interface RouteTarget {
  /** The row belongs to this group (its state key, key values and event time). */
  group(key: string, keyValues: unknown[], time: number | null, row: Row): void;
  /** The row is late for a group: dropped there. */
  late(row: Row): void;
  /** The row has no event time for its window: it belongs to no group (Spark's TimeWindowing filters it). */
  noTime(row: Row): void;
}

export function routeRow(stage: AggregateStage, row: Row, r: RowRouting, to: RouteTarget): void {
  // A row's key combinations: several when a sliding window puts it in several windows.
  let combos: unknown[][] = [[]];
  for (const part of stage.keys) {
    if ('window' in part) {
      const t = part.window.time(row) as Date | null;
      if (t == null) {
        to.noTime(row);
        return;
      }
      const ws = windowsOf(t.getTime(), part.window.spec);
      if (ws.length === 1) for (const c of combos) c.push(ws[0]);
      else combos = combos.flatMap((c) => ws.map((w) => [...c, w]));
    } else if ('eval' in part) {
      const v = part.eval(row);
      for (const c of combos) c.push(v);
    }
  }
  for (const keyValues of combos) {
    const t = keyTime(stage.eventTimeKey, keyValues);
    // Complete mode keeps every group forever, so the watermark drops nothing there (as in Spark).
    if (t !== undefined && t <= r.lateEventsMs && r.outputMode !== 'complete') {
      to.late(row);
      continue;
    }
    to.group(encodeState(keyValues), keyValues, t ?? null, row);
  }
}

/** Aggregates whose buffers are plain data, so a chunk's partial buffers can cross threads and be merged. */
const PARTIAL_AGGREGATES = new Set(['count', 'sum', 'avg', 'mean', 'min', 'max', 'first', 'last']);

/**
 * Whether task workers may pre-aggregate chunks for this aggregation: no session window, and every aggregate's
 * buffers plain data whose merge gives exactly what updating row by row gives. Not sums or averages of
 * doubles: their last bits depend on the order of the additions, which would then depend on how a batch was
 * cut into chunks (and differ on a re-run).
 */
export function canPreAggregate(stage: AggregateStage): boolean {
  if (stage.sessionKey) return false;
  return stage.aggs.every((a) => {
    if (!PARTIAL_AGGREGATES.has(a.call.fn)) return false;
    const t = a.call.argType;
    return !(['sum', 'avg', 'mean'].includes(a.call.fn) && (t === DoubleType || t === FloatType));
  });
}
