/**
 * Streaming aggregation over session windows (Spark's MergingSessionsExec + SessionWindowStateStore*Exec).
 * State holds, per group (the grouping keys other than the session), that group's open sessions, sorted
 * by start and never overlapping: `[{ s: startMs, e: endMs, b: aggregate buffers }]`.
 *
 * Per row with event time t: the row's own session is [t, t + gap). It is late when t + gap <= the
 * batch's watermark (the session it could open is already over; Spark judges an input row by its own
 * session end the same way). Otherwise every stored session that overlaps or touches it
 * (start <= other end, as Spark's MergingSessionsIterator) merges with it into one session.
 *
 * Output modes: append emits a session once, when the watermark passes its end, and forgets it; complete
 * emits every session every batch and forgets nothing. Update is refused before start (plan/unsupported.ts)
 * — as in Spark, since a merged session replaces two earlier rows that an upsert could not retract.
 */
import { decodeState, encodeState } from '../state/codec.js';
import type { StateStore } from '../state/store.js';
import type { AggregateStage } from '../plan/analyzer.js';
import type { Row } from '../types/index.js';
import { operatorName, sortByKeyValues, type BatchContext } from './stages.js';

interface Session {
  s: number;
  e: number;
  b: unknown[];
}

export function sessionAggregate(stage: AggregateStage, rows: Row[], ctx: BatchContext): Row[] {
  const session = stage.sessionKey!;
  const state = ctx.state(stage.id);
  const W = ctx.watermarkMs;
  const watermarked = stage.eventTimeKey?.index === session.index;
  const others = stage.keys.filter((_, i) => i !== session.index) as Array<{ name: string; eval: (r: Row) => unknown }>;
  let dropped = 0;
  let nullTimes = 0;
  let badGaps = 0;
  // Sessions of the groups this batch touched, read once from the store and written back once.
  const touched = new Map<string, { store: StateStore; sessions: Session[] }>();
  for (const row of rows) {
    const t = (session.time(row) as Date | null)?.getTime();
    if (t == null) {
      nullTimes++; // no event time, no session: left out (Spark filters these rows too), counted
      continue;
    }
    const gap = typeof session.gapMs === 'number' ? session.gapMs : session.gapMs(row);
    if (gap === null) {
      badGaps++; // Spark filters rows whose gap is not a positive duration out too
      continue;
    }
    const end = t + gap;
    if (watermarked && end <= W && ctx.outputMode !== 'complete') {
      dropped++;
      ctx.onLate?.({ row, operator: `${operatorName(stage)} ${stage.id}`, watermarkMs: W });
      continue;
    }
    const key = encodeState(others.map((k) => k.eval(row)));
    let group = touched.get(key);
    if (!group) {
      const store = state.store(key);
      group = { store, sessions: ((store.get(key) as Session[] | undefined) ?? []).map((x) => ({ ...x })) };
      touched.set(key, group);
    }
    const buffers = stage.aggs.map((a) => a.update(a.init(), row));
    group.sessions = insertSession(group.sessions, { s: t, e: end, b: buffers }, stage);
  }
  for (const [key, { store, sessions }] of touched) store.put(key, sessions);

  const out: Array<[unknown[], Row]> = [];
  const emit = (key: string, x: Session): void => {
    const groupValues = decodeState(key) as unknown[];
    const keyValues = [...groupValues];
    keyValues.splice(session.index, 0, { start: new Date(x.s), end: new Date(x.e) });
    const row: Row = {};
    stage.keys.forEach((k, i) => (row[k.name] = keyValues[i]));
    stage.aggs.forEach((a, i) => (row[a.name] = a.finish(x.b[i])));
    out.push([keyValues, row]);
  };
  const changes: Array<[string, StateStore, Session[]]> = [];
  // The state rows Spark reports for session windows are sessions, not groups: counted in this pass.
  let sessionsKept = 0;
  for (const [key, value, store] of state.entries()) {
    const sessions = value as Session[];
    if (ctx.outputMode === 'complete' || !watermarked) {
      if (ctx.outputMode === 'complete') for (const x of sessions) emit(key, x);
      sessionsKept += sessions.length;
      continue;
    }
    const open = sessions.filter((x) => x.e > W);
    sessionsKept += open.length;
    if (open.length === sessions.length) continue;
    for (const x of sessions) if (x.e <= W) emit(key, x);
    changes.push([key, store, open]);
  }
  state.rowCount = sessionsKept;
  for (const [key, store, open] of changes) (open.length ? store.put(key, open) : store.remove(key));
  ctx.operators.set(stage.id, {
    operatorName: operatorName(stage),
    ...state.metrics(),
    numRowsDroppedByWatermark: dropped,
    customMetrics: { numRowsWithNullEventTime: nullTimes, numRowsWithInvalidSessionGap: badGaps },
  });
  return sortByKeyValues(out);
}

/** Inserts a one-row session into a group's sorted, disjoint sessions, merging every one it overlaps or touches. */
function insertSession(sessions: Session[], add: Session, stage: AggregateStage): Session[] {
  const kept: Session[] = [];
  const merging: Session[] = [];
  for (const x of sessions) (x.s <= add.e && add.s <= x.e ? merging : kept).push(x);
  // Earlier sessions' rows come first in the merged buffers (first()/last()/collect_list order).
  let merged = add;
  if (merging.length) {
    const all = [...merging, add].sort((a, b) => a.s - b.s);
    merged = all.reduce((acc, x) => ({
      s: Math.min(acc.s, x.s),
      e: Math.max(acc.e, x.e),
      b: stage.aggs.map((a, i) => a.merge(acc.b[i], x.b[i])),
    }));
  }
  kept.push(merged);
  return kept.sort((a, b) => a.s - b.s);
}
