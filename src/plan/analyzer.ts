/**
 * The analyzer: resolves names and types of a logical plan against its sources' schemas and compiles
 * the stateless part into one fused per-row function (project and filter steps run back to back on each
 * row, without intermediate arrays). Errors here stop a query before it starts, with the reason.
 */
import type { Expr } from '../expr/column.js';
import { AnalysisError, EvalContext, compile, expandProjection, prepareExpr, projector, schemaOf } from '../expr/compile.js';
import '../expr/functions.js';
import { compareValues } from '../expr/values.js';
import { sourceSchema } from '../sources/index.js';
import { BooleanType, NullType, Row, StructType } from '../types/index.js';
import { LogicalPlan, SourceSpec } from './logical.js';

export type RowFn = (row: Row) => Row | null;

export interface Analyzed {
  readonly schema: StructType;
  /** The leaf: a streaming source, or the rows of a local relation. */
  readonly leaf: { kind: 'source'; spec: SourceSpec } | { kind: 'local'; rows: Row[] };
  /** From a leaf row to an output row, or null when a filter drops it. Throws RecordError for a bad record. */
  readonly rowFn: RowFn;
  /** Whole-batch steps after the per-row ones (sort). */
  readonly batchFn?: (rows: Row[]) => Row[];
}

function allExprs(p: LogicalPlan): Expr[] {
  const own: Expr[] =
    p.kind === 'project'
      ? p.exprs
      : p.kind === 'filter'
        ? [p.condition]
        : p.kind === 'sort'
          ? p.keys.map((k) => k.expr)
          : p.kind === 'withColumns'
            ? p.columns.map((c) => c.expr)
            : [];
  return [...own, ...('child' in p ? allExprs(p.child) : [])];
}

/** Resolves the plan; `ctx` is read by time functions at run time (the batch timestamp). */
export async function analyze(plan: LogicalPlan, ctx: EvalContext): Promise<Analyzed> {
  for (const e of allExprs(plan)) await prepareExpr(e);
  return resolve(plan, ctx);
}

function resolve(p: LogicalPlan, ctx: EvalContext): Analyzed {
  switch (p.kind) {
    case 'streamingSource':
      return { schema: sourceSchema(p.spec), leaf: { kind: 'source', spec: p.spec }, rowFn: (r) => r };
    case 'local':
      return { schema: p.schema, leaf: { kind: 'local', rows: p.rows }, rowFn: (r) => r };
    case 'withColumns':
    case 'drop':
    case 'rename': {
      // These are projections whose column list depends on the child's schema.
      const c = resolve(p.child, ctx);
      const quote = (n: string): Expr => ({ kind: 'col', name: '`' + n + '`' });
      const names = c.schema.fieldNames;
      let exprs: Expr[];
      if (p.kind === 'drop') exprs = names.filter((n) => !p.names.includes(n)).map(quote);
      else if (p.kind === 'rename') exprs = names.map((n) => (n === p.existing ? { kind: 'alias', child: quote(n), name: p.newName } : quote(n)));
      else {
        const added = new Map(p.columns.map((col) => [col.name, col.expr]));
        exprs = names.map((n) => (added.has(n) ? { kind: 'alias', child: added.get(n)!, name: n } : quote(n)));
        for (const col of p.columns) if (!names.includes(col.name)) exprs.push({ kind: 'alias', child: col.expr, name: col.name });
      }
      return resolveProject(c, exprs, ctx);
    }
    case 'project':
      return resolveProject(resolve(p.child, ctx), p.exprs, ctx);
    case 'filter': {

      const c = resolve(p.child, ctx);
      const cond = compile(p.condition, c.schema, ctx);
      if (cond.type !== BooleanType && cond.type !== NullType) {
        throw new AnalysisError(
          `filter(${cond.name}): the condition is ${cond.type.simpleString()}, not boolean. Compare it to something, e.g. col('x').eq(1).`,
        );
      }
      const test = cond.eval;
      return { ...c, rowFn: chain(c.rowFn, (r) => (test(r) === true ? r : null)) };
    }
    case 'mapRows': {
      const c = resolve(p.child, ctx);
      return { ...c, schema: p.schema, rowFn: chain(c.rowFn, p.fn) };
    }
    case 'sort': {
      const c = resolve(p.child, ctx);
      const keys = p.keys.map((k) => ({ ev: compile(k.expr, c.schema, ctx).eval, dir: k.ascending ? 1 : -1 }));
      const sortFn = (rows: Row[]): Row[] =>
        [...rows].sort((a, b) => {
          for (const k of keys) {
            const x = k.ev(a);
            const y = k.ev(b);
            // Spark: nulls first in ascending order, last in descending.
            const c2 = x == null ? (y == null ? 0 : -1) : y == null ? 1 : compareValues(x, y);
            if (c2 !== 0) return c2 * k.dir;
          }
          return 0;
        });
      const prev = c.batchFn;
      return { ...c, batchFn: prev ? (rows) => sortFn(prev(rows)) : sortFn };
    }
  }
}

function resolveProject(c: Analyzed, exprs: Expr[], ctx: EvalContext): Analyzed {
  const bounds = expandProjection(exprs, c.schema, ctx);
  const seen = new Set<string>();
  for (const b of bounds) {
    if (seen.has(b.name)) {
      throw new AnalysisError(`The output would have two columns named \`${b.name}\`. Rename one with .alias(), or drop one first.`);
    }
    seen.add(b.name);
  }
  return { ...c, schema: schemaOf(bounds), rowFn: chain(c.rowFn, projector(bounds)) };
}

function chain(first: RowFn, next: RowFn): RowFn {
  return (row) => {
    const r = first(row);
    return r === null ? null : next(r);
  };
}
