/**
 * Checks a streaming plan against what streaming can do, before the query starts (Spark's
 * UnsupportedOperationChecker). Every refusal says why, and what to write instead.
 */
import type { OutputMode } from '../sinks/sink.js';
import { AnalysisError } from '../expr/compile.js';
import { LogicalPlan, children } from './logical.js';

export class UnsupportedOperationError extends AnalysisError {
  override name = 'UnsupportedOperationError';
}

function hasAggregation(p: LogicalPlan): boolean {
  // Aggregations arrive with the stateful operators; until then no plan has one.
  return children(p).some(hasAggregation);
}

export function checkStreamingPlan(plan: LogicalPlan, mode: OutputMode): void {
  const aggregated = hasAggregation(plan);
  if (mode === 'complete' && !aggregated) {
    throw new UnsupportedOperationError(
      'Complete output mode is not supported when there are no streaming aggregations. ' +
        'Complete mode rewrites the whole result table on every trigger; without an aggregation that table is ' +
        'every row ever read, which grows without bound. Use outputMode("append") (each row once) or ' +
        '"update" — for a query without aggregation both write each new row once.',
    );
  }
  const walk = (p: LogicalPlan): void => {
    if (p.kind === 'sort' && !(mode === 'complete' && aggregated)) {
      throw new UnsupportedOperationError(
        'Sorting is not supported on streaming DataFrames unless it follows an aggregation in complete mode. ' +
          'A stream has no end, so a global order is never final. Sort inside foreachBatch (each batch on its ' +
          'own), or aggregate and use outputMode("complete").',
      );
    }
    children(p).forEach(walk);
  };
  walk(plan);
}
