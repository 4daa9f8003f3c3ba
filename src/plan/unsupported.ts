/**
 * Checks a streaming plan against what streaming can do, before the query starts (Spark's
 * UnsupportedOperationChecker). Every refusal says why, and what to write instead.
 */
import { AnalysisError } from '../expr/compile.js';
import { isDistinctAggregate } from '../expr/aggregates.js';
import { exprName } from '../expr/column.js';
import { timeWindowKind } from '../expr/window.js';
import type { OutputMode } from '../sinks/sink.js';
import type { Analyzed } from './analyzer.js';
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
  if (aggregates.length > 1) {
    throw new UnsupportedOperationError(
      'Multiple streaming aggregations in one query are not supported: the second would need the first one\'s ' +
        'results to be final, which only append mode with a watermark gives, one batch late. Write the first ' +
        'aggregation to a topic and aggregate that topic in a second query, or compute both levels in one groupBy.',
    );
  }
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
  const aggStage = analyzed?.stages.find((s) => s.kind === 'aggregate');
  if (mode === 'append' && aggStage && aggStage.kind === 'aggregate' && !aggStage.eventTimeKey) {
    const hasWatermark = all.some((n) => n.kind === 'watermark');
    throw new UnsupportedOperationError(
      'Append output mode is not supported for a streaming aggregation without a watermark on a grouping key. ' +
        'Append writes each group once, when it is final; a group is final only when the watermark has passed ' +
        'its event time (or its window end). ' +
        (hasWatermark
          ? 'This query has withWatermark(), but no groupBy key is that column or a window() of it, so no group ever becomes final. '
          : 'This query has no withWatermark(), so no group ever becomes final. ') +
        'Group by window(col(eventTime), …) after withWatermark(eventTime, delay), or use outputMode("update") ' +
        '(changed groups every batch) or "complete" (all groups every batch).',
    );
  }
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
