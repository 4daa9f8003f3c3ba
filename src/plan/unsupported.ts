/**
 * Checks a streaming plan against what streaming can do, before the query starts (Spark's
 * UnsupportedOperationChecker). Every refusal says why, and what to write instead.
 */
import { AnalysisError } from '../expr/compile.js';
import { isDistinctAggregate } from '../expr/aggregates.js';
import { exprName } from '../expr/column.js';
import { timeWindowKind } from '../expr/window.js';
import type { OutputMode } from '../sinks/sink.js';
import { leafInputs, statefulStages, type Analyzed } from './analyzer.js';
import type { JoinStage } from './join.js';
import type { JoinType } from './logical.js';
import { LogicalPlan, children, isStreaming } from './logical.js';

export class UnsupportedOperationError extends AnalysisError {
  override name = 'UnsupportedOperationError';
}

function nodes(p: LogicalPlan): LogicalPlan[] {
  return [p, ...children(p).flatMap(nodes)];
}

/**
 * Called twice: on the logical plan alone, before analysis (so a refused shape is explained before any
 * registry I/O or type error), and with the analyzed plan, for the checks that need resolved columns.
 */
export function checkStreamingPlan(plan: LogicalPlan, mode: OutputMode, analyzed?: Analyzed): void {
  const all = nodes(plan);
  const aggregates = all.filter((n): n is Extract<LogicalPlan, { kind: 'aggregate' }> => n.kind === 'aggregate');
  for (const agg of aggregates) {
    const distinct = agg.aggs.find(isDistinctAggregate);
    if (distinct) {
      throw new UnsupportedOperationError(
        `${exprName(distinct)}: exact distinct aggregations are not supported on streams (Spark refuses them too). ` +
          'Counting distinct values exactly means keeping every value seen in each group: forever without a window, ' +
          'until the window closes with one — either way one state entry per distinct value, as large as the data, ' +
          'its changes written to the checkpoint every batch. Use approx_count_distinct(col) (a fixed-size HyperLogLog sketch ' +
          'per group), or, for an exact count, dropDuplicates([key, value]) (with the watermarked window among the ' +
          'columns, so the watermark can clear it) and then count().',
      );
    }
  }
  for (const n of all) if (n.kind === 'join') checkJoin(n, mode);
  const aggregated = aggregates.length > 0;
  checkGroupState(all, mode, aggregated);
  const sessioned = aggregates.some((a) => a.groupBy.some((e) => timeWindowKind(e) === 'session_window'));
  if (mode === 'update' && sessioned) {
    throw new UnsupportedOperationError(
      'Update output mode is not supported for an aggregation over session_window() (Spark refuses it too). A session ' +
        'changes its range as rows arrive: when a row bridges two sessions they become one, and an update-mode sink ' +
        'that upserted the two earlier rows by key (start and end included) would keep them, next to the merged one. ' +
        'Use outputMode("append") with withWatermark() on the time column (each session once, when it has closed), ' +
        'or "complete" (all sessions every batch).',
    );
  }
  if (mode === 'complete' && !aggregated) {
    throw new UnsupportedOperationError(
      'Complete output mode is not supported when there are no streaming aggregations. ' +
        'Complete mode rewrites the whole result table on every trigger; without an aggregation that table is ' +
        'every row ever read, which grows without bound. Use outputMode("append") (each row once) or ' +
        '"update" — for a query without aggregation both write each new row once.',
    );
  }
  if (analyzed) checkAnalyzed(analyzed, mode, all.some((n) => n.kind === 'watermark'));
  for (const n of all) {
    if (n.kind === 'sort' && !(mode === 'complete' && aggregated)) {
      throw new UnsupportedOperationError(
        'Sorting is not supported on streaming DataFrames unless it follows an aggregation in complete mode. ' +
          'A stream has no end, so a global order is never final. Sort inside foreachBatch (each batch on its ' +
          'own), or aggregate and use outputMode("complete").',
      );
    }
  }
}

/** Spark 3.5's rules for mapGroupsWithState / flatMapGroupsWithState on streams, each with the reason. */
function checkGroupState(all: LogicalPlan[], mode: OutputMode, aggregated: boolean): void {
  const nodes = all.filter((n): n is Extract<LogicalPlan, { kind: 'groupState' }> => n.kind === 'groupState');
  const maps = nodes.filter((n) => n.spec.api === 'mapGroupsWithState');
  // Spark's checker counts FlatMapGroupsWithState nodes only: transformWithState has none of these rules.
  const flatMaps = nodes.filter((n) => n.spec.api === 'flatMapGroupsWithState');
  if (maps.length >= 2) {
    throw new UnsupportedOperationError(
      'Multiple mapGroupsWithStates are not supported on a streaming DataFrame (Spark refuses it too): each emits every changed key ' +
        'again in each batch (update mode), so the second would see a key several times. Keep all the per-key logic in one function, ' +
        'or use flatMapGroupsWithState in append mode for each step.',
    );
  }
  if (maps.length && flatMaps.length) {
    throw new UnsupportedOperationError(
      'Mixing mapGroupsWithState and flatMapGroupsWithState is not supported on a streaming DataFrame (Spark refuses it too): ' +
        'mapGroupsWithState is an update-mode operator, and an update-mode result cannot feed another stateful operator. ' +
        'Use flatMapGroupsWithState in append mode for both.',
    );
  }
  if (flatMaps.length >= 2 && (mode !== 'append' || flatMaps.some((n) => n.spec.operatorMode !== 'append'))) {
    throw new UnsupportedOperationError(
      'Multiple flatMapGroupsWithStates are not supported when they are not all in append mode or the output mode is not append ' +
        '(Spark refuses it too): only rows emitted once and for good (append) can feed another stateful operator. Give each ' +
        "flatMapGroupsWithState the 'append' operator mode and use outputMode('append').",
    );
  }
  for (const n of flatMaps.length ? flatMaps : maps) {
    const { api, operatorMode } = n.spec;
    if (api === 'mapGroupsWithState') {
      if (mode !== 'update') {
        throw new UnsupportedOperationError(
          `mapGroupsWithState is not supported with ${mode} output mode on a streaming DataFrame (Spark's rule). It emits the current ` +
            "value of every key that changed, each batch: rows that replace earlier ones, which only outputMode('update') means. Use " +
            `outputMode('update'), or flatMapGroupsWithState('append', …) to emit rows once and for good.`,
        );
      }
      continue;
    }
    if (!aggregated && operatorMode !== mode) {
      throw new UnsupportedOperationError(
        `${api} in ${operatorMode} mode is not supported with ${mode} output mode on a streaming DataFrame (Spark's rule): ` +
          'without an aggregation after it, the operator\'s mode is what the sink receives, so the two must agree. Pass ' +
          `'${mode}' as ${api}'s output mode, or use outputMode('${operatorMode}').`,
      );
    }
    if (aggregated && operatorMode === 'update') {
      throw new UnsupportedOperationError(
        `${api} in update mode is not supported with aggregation on a streaming DataFrame (Spark's rule): an ` +
          `aggregation must see each row once, and update mode may emit a key's row again. Use ${api} with the 'append' mode.`,
      );
    }
  }
}

const JOIN_NAMES: Record<JoinType, string> = {
  inner: 'Inner', left_outer: 'LeftOuter', right_outer: 'RightOuter', full_outer: 'FullOuter', left_semi: 'LeftSemi', left_anti: 'LeftAnti',
};

/** Spark 3.5's rules for joins on streams (UnsupportedOperationChecker), each with the reason. */
function checkJoin(j: Extract<LogicalPlan, { kind: 'join' }>, mode: OutputMode): void {
  const left = isStreaming(j.left);
  const right = isStreaming(j.right);
  const name = JOIN_NAMES[j.how];
  if (left && right) {
    if (mode !== 'append') {
      throw new UnsupportedOperationError(
        `Join between two streaming DataFrames/Datasets is not supported in ${mode} output mode, only in Append output mode (Spark ` +
          'refuses it too). A stream-stream join emits a pair once, when both rows have arrived, and an outer join emits a null-padded ' +
          'row once, when the watermark shows no match can come: there is no earlier result to update, and no complete table to ' +
          'rewrite. Use outputMode("append"); aggregate the joined rows afterwards if you need running totals.',
      );
    }
    if (j.how === 'left_anti') {
      throw new UnsupportedOperationError(
        'LeftAnti joins with a streaming DataFrame/Dataset on the right are not supported (Spark refuses it too): a left row has no ' +
          'match only if no right row will ever match it, which a stream cannot promise. Use a left outer join with a time range and ' +
          "keep the rows whose right columns are null: filter(col('p.order_id').isNull()).",
      );
    }
    return;
  }
  if (!left && !right) return;
  if (j.how === 'full_outer') {
    throw new UnsupportedOperationError(
      `FullOuter joins with streaming DataFrames/Datasets on the ${left ? 'left' : 'right'} and a static DataFrame/Dataset on the ` +
        `${left ? 'right' : 'left'} are not supported (Spark refuses it too): the static side's unmatched rows would have to be emitted ` +
        'once no stream row can match them — never, since the stream does not end. Use a left outer join with the stream on the left, ' +
        'or an inner join.',
    );
  }
  const staticOuter = (!left && (j.how === 'left_outer' || j.how === 'left_semi' || j.how === 'left_anti')) || (!right && j.how === 'right_outer');
  if (staticOuter) {
    throw new UnsupportedOperationError(
      `${name} join with a streaming DataFrame/Dataset on the ${left ? 'left' : 'right'} and a static DataFrame/Dataset on the ` +
        `${left ? 'right' : 'left'} is not supported (Spark refuses it too): the static side is the one whose rows are kept or ` +
        'dropped by whether the stream ever matches them, and a stream never says "no more rows". Put the stream on the preserved ' +
        `side (stream.join(static, on, '${j.how === 'right_outer' ? 'left_outer' : j.how}')), or use an inner join.`,
    );
  }
}

/** The checks that need resolved columns: watermarks on grouping keys, chains of stateful operators. */
function checkAnalyzed(analyzed: Analyzed, mode: OutputMode, hasWatermark: boolean): void {
  const stateful = statefulStages(analyzed);
  for (const st of stateful) {
    if (st.kind !== 'aggregate') continue;
    if (st.sessionKey && st.keys.length === 1) {
      throw new UnsupportedOperationError(
        'Global aggregation with session window in streaming query is not supported (Spark refuses it too): ' +
          'groupBy(session_window(…)) alone puts every event of the stream in one group, so one ever-growing chain of ' +
          'sessions would be merged in a single state partition. Group by a key as well, e.g. ' +
          "groupBy(col('user_id'), session_window(col('ts'), '5 minutes')) — sessions are per user, device, … in practice.",
      );
    }
    // Spark checks the aggregation nearest the sink before start and the others when they run; Sluice
    // checks every one before start.
    if (mode === 'append' && !st.eventTimeKey) {
      throw new UnsupportedOperationError(
        'Append output mode is not supported for a streaming aggregation without a watermark on a grouping key. ' +
          'Append writes each group once, when it is final; a group is final only when the watermark has passed ' +
          'its event time (or its window end). ' +
          (hasWatermark
            ? `This query has withWatermark(), but no key of the aggregation grouped by ${st.keys.map((k) => `\`${k.name}\``).join(', ')} ` +
              'is that column, a window() of it, or the window of an earlier aggregation, so no group ever becomes final. '
            : 'This query has no withWatermark(), so no group ever becomes final. ') +
          'Group by window(col(eventTime), …) after withWatermark(eventTime, delay), or use outputMode("update") ' +
          '(changed groups every batch) or "complete" (all groups every batch).',
      );
    }
  }
  for (const st of stateful) if (st.kind === 'join') checkStreamStreamJoin(st);
  checkGlobalWatermarkLimit(analyzed, mode);
  checkAfterEventTimeGroupState(analyzed);
  checkWatermarkRedefined(analyzed);
}

/** What a stream-stream join needs to run, and to bound its state (Spark 3.5's rules, refused with what to add). */
function checkStreamStreamJoin(j: JoinStage): void {
  if (!j.leftKey) {
    throw new UnsupportedOperationError(
      `Stream-stream join without equality predicate is not supported (Spark refuses it too): ${j.description}. Both sides are ` +
        'buffered by join key so a row finds its partners without scanning all state. Add an equality between the sides, e.g. ' +
        "col('o.order_id').eq(col('p.order_id')), or join on a shared column: orders.join(payments, 'order_id').",
    );
  }
  const needs: Array<[boolean, string, string]> = [
    [j.how === 'left_outer' || j.how === 'left_semi', 'left', 'right'],
    [j.how === 'right_outer', 'right', 'left'],
  ];
  for (const [applies, side, other] of needs) {
    if (!applies || (side === 'left' ? j.leftEviction : j.rightEviction)) continue;
    throw new UnsupportedOperationError(
      `Stream-stream ${JOIN_NAMES[j.how]} join between two streaming DataFrame/Datasets is not supported without a watermark in the ` +
        `join keys, or a watermark on the nullable side and an appropriate range condition (Spark's rule). A ${side} row that never ` +
        `matched is emitted with nulls only when no future ${other} row can match it: that needs withWatermark() on both sides and a ` +
        `condition bounding the ${side} event time by the ${other}'s, e.g. ` +
        "expr('p.ts >= o.ts AND p.ts <= o.ts + INTERVAL 10 MINUTES'), or both sides grouped by the same window in the join keys.",
    );
  }
  // Spark's checker accepts a full outer join when either side can be evicted; the other side's unmatched rows
  // would then never come out, so Sluice asks for both (docs/decisions.md).
  if (j.how === 'full_outer' && (!j.leftEviction || !j.rightEviction)) {
    const missing = !j.leftEviction && !j.rightEviction ? 'either side' : !j.leftEviction ? 'the left side' : 'the right side';
    throw new UnsupportedOperationError(
      'Stream-stream FullOuter join between two streaming DataFrame/Datasets is not supported without a watermark in the join keys, ' +
        `or watermarks and a range condition that bound both sides: nothing bounds ${missing}, so its unmatched rows would never come ` +
        "out with nulls. Add withWatermark() on both sides and a two-sided time range, e.g. expr('p.ts >= o.ts AND p.ts <= o.ts + INTERVAL 10 MINUTES').",
    );
  }
}

/**
 * Spark's global watermark limit, for user state: a [flat]MapGroupsWithState with an event-time timeout may
 * emit rows for a key when its timeout fires — long after their event time — so no stateful operator may
 * follow it, whatever the output mode.
 */
function checkAfterEventTimeGroupState(analyzed: Analyzed): void {
  const walk = (a: Analyzed): boolean => {
    let below = leafInputs(a.leaf).map(walk).some((x) => x);
    if (a.leaf.kind === 'join' && a.leaf.join.id >= 0 && below) refuse('a stream-stream join');
    for (const st of a.stages) {
      // Stateful as Spark's isStatefulOperation counts it: a dedupe only with the event time among its keys.
      const stateful = st.kind === 'aggregate' || st.kind === 'groupState' || (st.kind === 'dedupe' && st.expiry !== undefined);
      if (stateful && below) refuse(st.kind === 'aggregate' ? 'an aggregation' : st.kind === 'dedupe' ? 'a dropDuplicates on the event time' : `a ${st.spec.api}`);
      if (st.kind === 'groupState' && st.spec.api !== 'transformWithState' && st.spec.timeout === 'EventTimeTimeout') below = true;
    }
    return below;
  };
  const refuse = (what: string): never => {
    throw new UnsupportedOperationError(
      `This query has ${what} after a [flat]MapGroupsWithState with an event-time timeout. Spark refuses this too ("Detected pattern of ` +
        "possible 'correctness' issue due to global watermark\"): a key's timeout fires when the watermark passes it, and the rows " +
        'it emits then carry event times the watermark has already passed, so the operator after it would drop them as late. ' +
        'Do the aggregation inside the function, or write its output to a topic and aggregate that in a second query.',
    );
  };
  walk(analyzed);
}

/**
 * Spark 3.5 refuses a withWatermark whose input already carries a watermark (PropagateWatermarkSimulator:
 * "Redefining watermark is disallowed"). In Sluice such a query would wait for the second watermark, which
 * sees no rows until the first operator emits, so an append query would write nothing.
 */
function checkWatermarkRedefined(analyzed: Analyzed): void {
  const walk = (a: Analyzed): boolean => {
    const inputs = leafInputs(a.leaf);
    let watermarked = inputs.map(walk).some((x) => x);
    for (const st of a.stages) {
      if (st.kind !== 'watermark') continue;
      if (watermarked) {
        throw new UnsupportedOperationError(
          `withWatermark('${st.column}', …) on a stream that already has a watermark is not supported (Spark 3.5 refuses it too: ` +
            '"Redefining watermark is disallowed"). The event time of an aggregation\'s output is carried on by itself: group or ' +
            "deduplicate by its window (col('window')) or by window_time(col('window')) instead of setting a second watermark.",
        );
      }
      watermarked = true;
    }
    return watermarked;
  };
  walk(analyzed);
}

/**
 * Spark's checkStreamingQueryGlobalWatermarkLimit (3.5): a stateful operator may follow an aggregation only
 * in append mode. In update or complete mode an aggregation emits a group again each time it changes, with
 * event times the watermark has long passed: the operator after it would drop those rows as late, or count
 * a group several times. Stateful here means, as in Spark: an aggregation, a dedupe whose keys include the
 * event time (or dropDuplicatesWithinWatermark) — a dedupe without event time keeps every key and judges
 * nothing by time, so it may follow.
 */
function checkGlobalWatermarkLimit(analyzed: Analyzed, mode: OutputMode): void {
  if (mode === 'append') return;
  const walk = (a: Analyzed): boolean => {
    const inputs = leafInputs(a.leaf);
    let aggregatedBelow = inputs.map(walk).some((x) => x);
    if (a.leaf.kind === 'join' && a.leaf.join.id >= 0 && aggregatedBelow) {
      throw new UnsupportedOperationError(
        `This query has a stream-stream join after a streaming aggregation, in ${mode} mode. Spark refuses this too ("Detected pattern ` +
          "of possible 'correctness' issue due to global watermark\"): the aggregation emits a group again each time it changes. Use " +
          'outputMode("append") with withWatermark(), so each group reaches the join once, when final.',
      );
    }
    for (const st of a.stages) {
      const isStateful = st.kind === 'aggregate' || st.kind === 'groupState' || (st.kind === 'dedupe' && st.expiry !== undefined);
      if (isStateful && aggregatedBelow) {
        const what = st.kind === 'aggregate' ? 'a second aggregation' : st.kind === 'groupState' ? `${st.spec.api}` : 'a dropDuplicates on the event time';
        throw new UnsupportedOperationError(
          `This query has ${what} after a streaming aggregation, in ${mode} mode. Spark refuses this too ("Detected pattern ` +
            "of possible 'correctness' issue due to global watermark\"): in update or complete mode the first aggregation emits " +
            'a group again every time it changes, with an event time the watermark has already passed, so the operator after it ' +
            'would drop those rows as late or count a group more than once. Use outputMode("append") with withWatermark() ' +
            '(each group is emitted once, when final, and the next operator sees it once), or split the query in two: write ' +
            'the first aggregation to a topic and run the second operator on that topic.',
        );
      }
      if (st.kind === 'aggregate') aggregatedBelow = true;
    }
    return aggregatedBelow;
  };
  walk(analyzed);
}
