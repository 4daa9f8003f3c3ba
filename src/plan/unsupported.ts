/**
 * Checks a streaming plan against what streaming can do, before the query starts (Spark's
 * UnsupportedOperationChecker). Every refusal says why, and what to write instead.
 */
import { AnalysisError } from '../expr/compile.js';
import { isDistinctAggregate } from '../expr/aggregates.js';
import { exprName } from '../expr/column.js';
import { timeWindowKind } from '../expr/window.js';
import type { OutputMode } from '../sinks/sink.js';
import { statefulStages, type Analyzed } from './analyzer.js';
import { LogicalPlan, children } from './logical.js';

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
          'rewritten to the checkpoint every batch. Use approx_count_distinct(col) (a fixed-size HyperLogLog sketch ' +
          'per group), or, for an exact count, dropDuplicates([key, value]) (with the watermarked window among the ' +
          'columns, so the watermark can clear it) and then count().',
      );
    }
  }
  const aggregated = aggregates.length > 0;
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
  checkGlobalWatermarkLimit(analyzed, mode);
  checkWatermarkRedefined(analyzed);
}

/**
 * Spark 3.5 refuses a withWatermark whose input already carries a watermark (PropagateWatermarkSimulator:
 * "Redefining watermark is disallowed"). In Sluice such a query would wait for the second watermark, which
 * sees no rows until the first operator emits, so an append query would write nothing.
 */
function checkWatermarkRedefined(analyzed: Analyzed): void {
  const walk = (a: Analyzed): boolean => {
    let watermarked = a.leaf.kind === 'union' ? a.leaf.branches.map(walk).some((x) => x) : false;
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
    let aggregatedBelow = a.leaf.kind === 'union' ? a.leaf.branches.map(walk).some((x) => x) : false;
    for (const st of a.stages) {
      const isStateful = st.kind === 'aggregate' || (st.kind === 'dedupe' && st.expiry !== undefined);
      if (isStateful && aggregatedBelow) {
        const what = st.kind === 'aggregate' ? 'a second aggregation' : 'a dropDuplicates on the event time';
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
