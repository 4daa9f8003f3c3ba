/** The logical plan: what a DataFrame describes, before names and types are resolved. */
import type { UserStateSpec } from './groupState.js';
import { redactOptions } from '../util/redact.js';
import type { Expr } from '../expr/column.js';
import { exprName } from '../expr/column.js';
import type { Source } from '../sources/source.js';
import type { Row, StructType } from '../types/index.js';

/** A streaming source as the reader declared it; it is connected only when a query starts. */
export interface SourceSpec {
  readonly format: string;
  readonly options: Readonly<Record<string, string>>;
  readonly userSchema?: StructType;
  /** For in-process sources (MemoryStream): the source object itself. */
  readonly instance?: Source;
}

/** A batch (static) source as `session.read` declared it: read each time a plan that uses it runs. */
export interface BatchSourceSpec {
  readonly format: string;
  readonly options: Readonly<Record<string, string>>;
  readonly paths: readonly string[];
  readonly userSchema?: StructType;
  /** Filled in at the first analysis: the schema read (inferred, or the footer's), kept so it is read once. */
  resolvedSchema?: StructType;
}

/** Spark's join types, by their canonical names (`how` also accepts Spark's aliases: `left`, `outer`, …). */
export type JoinType = 'inner' | 'left_outer' | 'right_outer' | 'full_outer' | 'left_semi' | 'left_anti';

/** How two sides join: on same-named columns (`join(other, 'id')`), or on a condition. */
export type JoinOn = { using: string[] } | { condition: Expr };

export type LogicalPlan =
  | { kind: 'streamingSource'; spec: SourceSpec }
  | { kind: 'batchSource'; spec: BatchSourceSpec }
  /** `df.cache()`: the child's rows, computed at the first run that needs them and kept. */
  | { kind: 'cache'; child: LogicalPlan; holder: { rows?: Row[] } }
  /** `df.alias('o')`: its columns can be named `o.x` (Spark's SubqueryAlias). */
  | { kind: 'alias'; child: LogicalPlan; name: string }
  | { kind: 'join'; left: LogicalPlan; right: LogicalPlan; how: JoinType; on: JoinOn }
  | { kind: 'local'; rows: Row[]; schema: StructType; name?: string }
  | { kind: 'project'; child: LogicalPlan; exprs: Expr[] }
  | { kind: 'filter'; child: LogicalPlan; condition: Expr }
  | { kind: 'withColumns'; child: LogicalPlan; columns: Array<{ name: string; expr: Expr }> }
  | { kind: 'drop'; child: LogicalPlan; names: string[] }
  | { kind: 'rename'; child: LogicalPlan; existing: string; newName: string }
  | { kind: 'mapRows'; child: LogicalPlan; fn: (row: Row) => Row | null; schema: StructType; label: string }
  | { kind: 'sort'; child: LogicalPlan; keys: Array<{ expr: Expr; ascending: boolean }> }
  | { kind: 'watermark'; child: LogicalPlan; column: string; delay: string; delayMs: number }
  | { kind: 'aggregate'; child: LogicalPlan; groupBy: Expr[]; aggs: Expr[] }
  | { kind: 'dedupe'; child: LogicalPlan; columns?: string[]; withinWatermark: boolean }
  /** `groupByKey(…).mapGroupsWithState / flatMapGroupsWithState`: user state per key (Spark's FlatMapGroupsWithState). */
  | { kind: 'groupState'; child: LogicalPlan; spec: UserStateSpec }
  /** Rows of every input, one after another: by column position (union) or by name (unionByName). */
  | { kind: 'union'; inputs: LogicalPlan[]; byName: boolean; allowMissingColumns: boolean };

export function children(p: LogicalPlan): LogicalPlan[] {
  if (p.kind === 'union') return p.inputs;
  if (p.kind === 'join') return [p.left, p.right];
  return 'child' in p ? [p.child] : [];
}

export function isStreaming(p: LogicalPlan): boolean {
  return p.kind === 'streamingSource' || children(p).some(isStreaming);
}

/** Leaves of the plan that are streaming sources, in plan order (their index is their checkpoint id). */
export function streamingSources(p: LogicalPlan): SourceSpec[] {
  if (p.kind === 'streamingSource') return [p.spec];
  return children(p).flatMap(streamingSources);
}

/** A tree rendering of the plan, for `explain()`. */
export function planString(p: LogicalPlan, indent = 0): string {
  const pad = indent === 0 ? '' : ' '.repeat((indent - 1) * 3) + '+- ';
  let line: string;
  switch (p.kind) {
    case 'streamingSource':
      line = `StreamingRelation ${p.spec.format}${Object.keys(p.spec.options).length ? ` [${Object.entries(redactOptions(p.spec.options))
        .map(([k, v]) => `${k}=${v}`)
        .join(', ')}]` : ''}`;
      break;
    case 'batchSource':
      line = `Relation ${p.spec.format} [${p.spec.paths.join(', ')}]${Object.keys(p.spec.options).length ? ` [${Object.entries(redactOptions(p.spec.options))
        .map(([k, v]) => `${k}=${v}`)
        .join(', ')}]` : ''}`;
      break;
    case 'cache':
      line = `InMemoryRelation${p.holder.rows ? ` (${p.holder.rows.length} rows cached)` : ' (not computed yet)'}`;
      break;
    case 'alias':
      line = `SubqueryAlias ${p.name}`;
      break;
    case 'join':
      line = `Join ${p.how}, ${'using' in p.on ? `using [${p.on.using.join(', ')}]` : exprName(p.on.condition)}`;
      break;
    case 'local':
      line = `LocalRelation ${p.name ?? ''}[${p.schema.fieldNames.join(', ')}] (${p.rows.length} rows)`;
      break;
    case 'project':
      line = `Project [${p.exprs.map(exprName).join(', ')}]`;
      break;
    case 'filter':
      line = `Filter ${exprName(p.condition)}`;
      break;
    case 'withColumns':
      line = `WithColumns [${p.columns.map((c) => `${exprName(c.expr)} AS ${c.name}`).join(', ')}]`;
      break;
    case 'drop':
      line = `Drop [${p.names.join(', ')}]`;
      break;
    case 'rename':
      line = `Rename ${p.existing} -> ${p.newName}`;
      break;
    case 'mapRows':
      line = `MapRows ${p.label} -> [${p.schema.fieldNames.join(', ')}]`;
      break;
    case 'watermark':
      line = `EventTimeWatermark ${p.column}, ${p.delay}`;
      break;
    case 'aggregate':
      line = `Aggregate [${p.groupBy.map(exprName).join(', ')}], [${p.aggs.map(exprName).join(', ')}]`;
      break;
    case 'dedupe':
      line = `${p.withinWatermark ? 'DeduplicateWithinWatermark' : 'Deduplicate'} [${p.columns?.join(', ') ?? '*'}]`;
      break;
    case 'groupState': {
      const k = p.spec.key;
      const keys = 'columns' in k ? `[${k.columns.join(', ')}]` : '[key function]';
      line =
        p.spec.api === 'transformWithState'
          ? `TransformWithState ${keys}, outputMode=${p.spec.operatorMode}, timeMode=${p.spec.timeMode} -> [${p.spec.outputSchema.fieldNames.join(', ')}]`
          : `FlatMapGroupsWithState ${keys}, ${p.spec.api}, outputMode=${p.spec.operatorMode}, timeout=${p.spec.timeout} -> [${p.spec.outputSchema.fieldNames.join(', ')}]`;
      break;
    }
    case 'union':
      line = p.byName ? `Union byName=true${p.allowMissingColumns ? ', allowMissingColumns=true' : ''}` : 'Union';
      break;
    case 'sort':
      line = `Sort [${p.keys.map((k) => `${exprName(k.expr)} ${k.ascending ? 'ASC' : 'DESC'}`).join(', ')}]`;
      break;
  }
  return [pad + line, ...children(p).map((c) => planString(c, indent + 1))].join('\n');
}
