/**
 * The analyzer: resolves names and types of a logical plan against its sources' schemas and compiles it
 * into stages. Adjacent stateless steps (project, filter, …) are fused into one per-row function; the
 * stateful operators (aggregation, deduplication) and the watermark are stages of their own, run by
 * `exec/stages.ts`. Errors here stop a query before it starts, with the reason.
 */
import { AggregateImpl, bindAggregate } from '../expr/aggregates.js';
import type { Expr } from '../expr/column.js';
import { AnalysisError, Bound, EvalContext, Evaluator, compile, expandProjection, prepareExpr, projector, schemaOf } from '../expr/compile.js';
import '../expr/functions.js';
import { compareValues } from '../expr/values.js';
import { WINDOW_TYPE, WindowSpec, asSessionWindow, asWindow, timeWindowKind } from '../expr/window.js';
import { decodeState, encodeState } from '../state/codec.js';
import type { StateField } from '../state/schema.js';
import type { UserStateSpec } from './groupState.js';
import { sourceSchema } from '../sources/schema.js';
import { BooleanType, DataType, NullType, Row, StructField, StructType, TimestampType } from '../types/index.js';
import { LogicalPlan, SourceSpec, children, isStreaming } from './logical.js';
import { resolveJoin, type JoinStage } from './join.js';
import { createBatchReader, type BatchReader } from '../sources/batch.js';

export type RowFn = (row: Row) => Row | null;

/** Observes event times (for the next watermark); rows pass through unchanged. */
export interface WatermarkStage {
  kind: 'watermark';
  id: number;
  column: string;
  delayMs: number;
  eventTime: Evaluator;
}

/** A grouping key part: a column, the windows of an event-time column, or its sessions. */
export type KeyPart =
  | { name: string; eval: Evaluator }
  | { name: string; window: { time: Evaluator; spec: WindowSpec } }
  | { name: string; session: { time: Evaluator; gapMs: number | ((row: Row) => number | null) } };

export interface AggregateStage {
  kind: 'aggregate';
  /** Stateful operator id: its state lives in `state/<id>/`. */
  id: number;
  keys: KeyPart[];
  /** The grouping keys' columns (names and types), as the output has them: the state's key schema. */
  keySchema: StructType;
  aggs: AggregateImpl[];
  /** Which key part is the watermarked event time (or its window): what late rows and eviction are judged by. */
  eventTimeKey?: { index: number; isWindow: boolean };
  /** The session_window() key part, if any: state then holds each group's sessions (exec/sessionWindows.ts). */
  /** `gapMs`: fixed, or per row (null: the row opens no session). */
  sessionKey?: { index: number; time: Evaluator; gapMs: number | ((row: Row) => number | null) };
}

export interface DedupeStage {
  kind: 'dedupe';
  id: number;
  key: (row: Row) => string;
  /** The key columns (names and types): the state's key schema. */
  keySchema: StructType;
  /**
   * The event time rows are judged late by: the input's first watermarked column, key or not (Spark's
   * StreamingDeduplicateExec filters late rows by it whenever the input has one).
   */
  lateTime?: Evaluator;
  /**
   * When a key may be forgotten: its event time + `addMs`. dropDuplicates can know it only when the event
   * time is a key (addMs 0); dropDuplicatesWithinWatermark always (addMs = the delay). Else kept forever.
   */
  expiry?: { eventTime: Evaluator; addMs: number };
  withinWatermark: boolean;
}

/** User state per key (groupByKey + map/flatMapGroupsWithState): run by exec/operators/groupState.ts. */
export interface GroupStateStage {
  kind: 'groupState';
  id: number;
  spec: UserStateSpec;
  /** The key of a row, as the function receives it. */
  key: (row: Row) => unknown;
  /** A key as the state's key text, and back (a timed-out key has no row to compute it from). */
  keyText: (key: unknown) => string;
  keyOf: (text: string) => unknown;
  /** The state's key schema (columns), or a key function's description. */
  keySchema: StateField[];
  /** With an event-time timeout: the input's watermarked column, by which late rows are dropped. */
  lateTime?: Evaluator;
  /** Whether the input has a watermark (state.getCurrentWatermarkMs() needs one). */
  watermarkPresent: boolean;
}

export type StatefulStage = AggregateStage | DedupeStage | JoinStage | GroupStateStage;

/** Stages run on a stage list's rows; a join is a leaf (it has two inputs), listed here for allStages(). */
export type Stage = { kind: 'map'; fn: RowFn } | { kind: 'batch'; fn: (rows: Row[]) => Row[] } | WatermarkStage | AggregateStage | DedupeStage | JoinStage | GroupStateStage;

/** True for a stage that runs as a stateful operator in a stage list (a join is a leaf instead). */
export function isStatefulStage(st: Stage): st is AggregateStage | DedupeStage | GroupStateStage {
  return st.kind === 'aggregate' || st.kind === 'dedupe' || st.kind === 'groupState';
}

/**
 * Where a stage list's input rows come from: a streaming source (its position among the query's sources,
 * in plan order, which is also its checkpoint index), the rows of a local relation, or a union of branches
 * (each with its own leaf and stages, e.g. its own watermark).
 */
export type Leaf =
  | { kind: 'source'; spec: SourceSpec; index: number }
  | { kind: 'local'; rows: Row[] }
  /** A batch source (`session.read`), read each time the plan runs. */
  | { kind: 'batch'; reader: BatchReader; schema: StructType }
  /**
   * A static (batch) sub-plan inside a plan — the static side of a join, or a cached DataFrame — run on
   * its own, with its own stateful operators (in memory, complete mode), each time it is needed; `holder`
   * keeps its rows when it is cached.
   */
  | { kind: 'static'; plan: Analyzed; holder?: { rows?: Row[] } }
  | { kind: 'union'; branches: Analyzed[] }
  | { kind: 'join'; left: Analyzed; right: Analyzed; join: JoinStage };

export interface Analyzed {
  readonly schema: StructType;
  readonly leaf: Leaf;
  /** Run in order on the leaf's rows. */
  readonly stages: Stage[];
}

function ownExprs(p: LogicalPlan): Expr[] {
  switch (p.kind) {
    case 'project':
      return p.exprs;
    case 'filter':
      return [p.condition];
    case 'sort':
      return p.keys.map((k) => k.expr);
    case 'withColumns':
      return p.columns.map((c) => c.expr);
    case 'aggregate':
      return [...p.groupBy, ...p.aggs];
    default:
      return [];
  }
}

function allExprs(p: LogicalPlan): Expr[] {
  return [...ownExprs(p), ...children(p).flatMap(allExprs)];
}

/** Resolves the plan; `ctx` is read by time functions at run time (the batch timestamp). */
export async function analyze(plan: LogicalPlan, ctx: EvalContext): Promise<Analyzed> {
  for (const e of allExprs(plan)) await prepareExpr(e);
  // Batch sources' schemas are read once (a file's inferred schema, a parquet footer) and kept on the spec.
  const visit = async (p: LogicalPlan): Promise<void> => {
    if (p.kind === 'batchSource') p.spec.resolvedSchema ??= await createBatchReader(p.spec).schema();
    for (const c of children(p)) await visit(c);
  };
  await visit(plan);
  const ids: Ids = { watermark: 0, stateful: 0, source: 0 };
  return resolve(plan, ctx, ids);
}

/** Appends a per-row step, fusing it with a preceding one. */
function withMap(stages: Stage[], fn: RowFn): Stage[] {
  const last = stages[stages.length - 1];
  if (last?.kind === 'map') {
    const first = last.fn;
    return [...stages.slice(0, -1), { kind: 'map', fn: (row) => { const r = first(row); return r === null ? null : fn(r); } }];
  }
  return [...stages, { kind: 'map', fn }];
}

const quote = (n: string): Expr => ({ kind: 'col', name: '`' + n + '`' });

/** Counters that give operators and sources their ids, in plan order. */
interface Ids {
  watermark: number;
  stateful: number;
  source: number;
}

function resolve(p: LogicalPlan, ctx: EvalContext, ids: Ids): Analyzed {
  switch (p.kind) {
    case 'streamingSource':
      return { schema: sourceSchema(p.spec), leaf: { kind: 'source', spec: p.spec, index: ids.source++ }, stages: [] };
    case 'union':
      return resolveUnion(p, ctx, ids);
    case 'local':
      return { schema: p.schema, leaf: { kind: 'local', rows: p.rows }, stages: [] };
    case 'withColumns':
    case 'drop':
    case 'rename': {
      // These are projections whose column list depends on the child's schema.
      const c = resolve(p.child, ctx, ids);
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
      return resolveProject(resolve(p.child, ctx, ids), p.exprs, ctx);
    case 'filter': {
      const c = resolve(p.child, ctx, ids);
      const cond = compile(p.condition, c.schema, ctx);
      if (cond.type !== BooleanType && cond.type !== NullType) {
        throw new AnalysisError(
          `filter(${cond.name}): the condition is ${cond.type.simpleString()}, not boolean. Compare it to something, e.g. col('x').eq(1).`,
        );
      }
      const test = cond.eval;
      return { ...c, stages: withMap(c.stages, (r) => (test(r) === true ? r : null)) };
    }
    case 'mapRows': {
      const c = resolve(p.child, ctx, ids);
      return { ...c, schema: p.schema, stages: withMap(c.stages, p.fn) };
    }
    case 'sort': {
      const c = resolve(p.child, ctx, ids);
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
      return { ...c, stages: [...c.stages, { kind: 'batch', fn: sortFn }] };
    }
    case 'watermark': {
      const c = resolve(p.child, ctx, ids);
      const f = c.schema.field(p.column);
      if (!f) throw new AnalysisError(`withWatermark('${p.column}', …): no such column. Available columns: ${c.schema.fieldNames.join(', ')}.`);
      if (f.dataType !== TimestampType) {
        throw new AnalysisError(
          `withWatermark('${p.column}', …) needs a timestamp column, but it is ${f.dataType.simpleString()}. ` +
            `Convert it first: withColumn('${p.column}', to_timestamp(col('${p.column}'))).`,
        );
      }
      const fields: StructField[] = c.schema.fields.map((x) => (x.name === p.column ? { ...x, watermarkDelayMs: p.delayMs } : x));
      const eventTime = compile(quote(p.column), c.schema, ctx).eval;
      return { ...c, schema: new StructType(fields), stages: [...c.stages, { kind: 'watermark', id: ids.watermark++, column: p.column, delayMs: p.delayMs, eventTime }] };
    }
    case 'aggregate': {
      const c = resolve(p.child, ctx, ids);
      const keys: KeyPart[] = [];
      const keyFields: StructField[] = [];
      let eventTimeKey: AggregateStage['eventTimeKey'];
      let sessionKey: AggregateStage['sessionKey'];
      const timeWindows = p.groupBy.filter((e) => timeWindowKind(e) !== undefined);
      if (timeWindows.length > 1) {
        throw new AnalysisError(
          `groupBy() has ${timeWindows.length} time windows (window() or session_window()); a row would need one group per combination of ` +
            'windows, which Spark refuses too. Group by one window, and aggregate its result again in a second query if you need both.',
        );
      }
      p.groupBy.forEach((e, index) => {
        const sw = asSessionWindow(e, c.schema, ctx);
        if (sw) {
          keys.push({ name: sw.name, session: { time: sw.time.eval, gapMs: sw.gapMs } });
          keyFields.push({ name: sw.name, dataType: WINDOW_TYPE, nullable: true, ...(sw.time.watermarkDelayMs !== undefined ? { watermarkDelayMs: sw.time.watermarkDelayMs } : {}) });
          sessionKey = { index, time: sw.time.eval, gapMs: sw.gapMs };
          if (sw.time.watermarkDelayMs !== undefined) eventTimeKey = { index, isWindow: true };
          return;
        }
        const w = asWindow(e, c.schema, ctx);
        if (w) {
          keys.push({ name: w.name, window: { time: w.time.eval, spec: w.spec } });
          keyFields.push({ name: w.name, dataType: WINDOW_TYPE, nullable: true, ...(w.time.watermarkDelayMs !== undefined ? { watermarkDelayMs: w.time.watermarkDelayMs } : {}) });
          if (w.time.watermarkDelayMs !== undefined) eventTimeKey ??= { index, isWindow: true };
          return;
        }
        const b: Bound = compile(e, c.schema, ctx);
        keys.push({ name: b.name, eval: b.eval });
        keyFields.push({ name: b.name, dataType: b.type, nullable: b.nullable, ...(b.watermarkDelayMs !== undefined ? { watermarkDelayMs: b.watermarkDelayMs } : {}) });
        // A watermarked column is a timestamp, or a window struct made earlier (withColumn('w', window(…))).
        if (b.watermarkDelayMs !== undefined) eventTimeKey ??= { index, isWindow: b.type !== TimestampType };
      });
      const aggs = p.aggs.map((e) => bindAggregate(e, c.schema, ctx));
      const fields = [...keyFields, ...aggs.map((a) => ({ name: a.name, dataType: a.type, nullable: true }))];
      checkUnique(fields.map((f) => f.name));
      const stage: AggregateStage = { kind: 'aggregate', id: ids.stateful++, keys, keySchema: new StructType(keyFields), aggs, ...(eventTimeKey ? { eventTimeKey } : {}), ...(sessionKey ? { sessionKey } : {}) };
      return { ...c, schema: new StructType(fields), stages: [...c.stages, stage] };
    }
    case 'batchSource':
      return { schema: p.spec.resolvedSchema!, leaf: { kind: 'batch', reader: createBatchReader(p.spec), schema: p.spec.resolvedSchema! }, stages: [] };
    case 'cache': {
      if (isStreaming(p.child)) {
        throw new AnalysisError(
          'cache() of a streaming DataFrame is not supported: a stream has no end to cache. Cache the static side of a join ' +
            '(session.read…load().cache()), or write the stream to a memory sink and query that table.',
        );
      }
      return staticPlan(resolve(p.child, ctx, freshIds()), p.holder);
    }
    case 'alias': {
      const c = resolve(p.child, ctx, ids);
      return { ...c, schema: new StructType(c.schema.fields.map((f) => ({ ...f, qualifier: p.name }))) };
    }
    case 'join':
      return resolveJoinNode(p, ctx, ids);
    case 'groupState':
      return resolveGroupState(p, ctx, ids);
    case 'dedupe': {
      const c = resolve(p.child, ctx, ids);
      const cols = p.columns ?? c.schema.fieldNames;
      const evs = cols.map((n) => compile(quote(n), c.schema, ctx).eval);
      // Spark's rules (StreamingDeduplicateExec / WatermarkSupport): rows are judged late by the input's first
      // watermarked column (a timestamp, or a window of one: its end), whether or not it is a key; a key can
      // be forgotten when a watermarked column is among the keys; dropDuplicatesWithinWatermark always can.
      const watermarked = c.schema.fields.filter((f) => f.watermarkDelayMs !== undefined);
      const first = watermarked[0];
      const keyed = watermarked.find((f) => cols.includes(f.name));
      if (p.withinWatermark && !first) {
        throw new AnalysisError(
          'dropDuplicatesWithinWatermark needs a watermark: call withWatermark(eventTimeColumn, delay) before it. ' +
            'Duplicates are then only looked for within the delay, which bounds the state.',
        );
      }
      const timeOf = (f: StructField): Evaluator => eventTimeOf(compile(quote(f.name), c.schema, ctx).eval, f.dataType);
      const expiry = p.withinWatermark ? { eventTime: timeOf(first!), addMs: first!.watermarkDelayMs! } : keyed ? { eventTime: timeOf(keyed), addMs: 0 } : undefined;
      const stage: DedupeStage = {
        kind: 'dedupe',
        id: ids.stateful++,
        key: (row) => encodeState(evs.map((ev) => ev(row))),
        keySchema: new StructType(cols.map((n) => c.schema.field(n)!).map((f) => ({ name: f.name, dataType: f.dataType, nullable: f.nullable }))),
        withinWatermark: p.withinWatermark,
        ...(first ? { lateTime: timeOf(first) } : {}),
        ...(expiry ? { expiry } : {}),
      };
      return { ...c, stages: [...c.stages, stage] };
    }
  }
}

/** groupByKey + map/flatMapGroupsWithState: the key, the late-row filter (event-time timeout only, as Spark). */
function resolveGroupState(p: Extract<LogicalPlan, { kind: 'groupState' }>, ctx: EvalContext, ids: Ids): Analyzed {
  const c = resolve(p.child, ctx, ids);
  const { spec } = p;
  let key: (row: Row) => unknown;
  let keySchema: StateField[];
  if ('columns' in spec.key) {
    const cols = spec.key.columns;
    if (!cols.length) throw new AnalysisError('groupByKey() needs at least one column, or a function of the row that gives its key.');
    const evs = cols.map((n) => compile(quote(n), c.schema, ctx));
    keySchema = evs.map((b) => ({ name: b.name, type: b.type.simpleString() }));
    const one = evs[0]!.eval;
    key = evs.length === 1 ? one : (row) => evs.map((b) => b.eval(row));
  } else {
    const fn = spec.key.fn;
    key = fn;
    keySchema = [{ name: 'key', type: 'key function' }];
  }
  const watermarked = c.schema.fields.find((f) => f.watermarkDelayMs !== undefined);
  if (spec.timeout === 'EventTimeTimeout' && !watermarked) {
    throw new AnalysisError(
      `Watermark must be specified in the query using '[Dataset/DataFrame].withWatermark()' for using event-time timeout in ${spec.api} (Spark's rule). ` +
        'An event-time timeout fires when the watermark passes the time set with state.setTimeoutTimestamp(): call ' +
        "withWatermark('<event time column>', '<delay>') before groupByKey.",
    );
  }
  const stage: GroupStateStage = {
    kind: 'groupState',
    id: ids.stateful++,
    spec,
    key,
    keyText: (k) => encodeState(k),
    keyOf: (text) => decodeState(text),
    keySchema,
    watermarkPresent: watermarked !== undefined,
    // Late rows: [flat]MapGroupsWithState drops them only with an event-time timeout; transformWithState
    // whenever its input has a watermark (Spark's FlatMapGroupsWithStateExec / TransformWithStateExec).
    ...((spec.timeout === 'EventTimeTimeout' || spec.api === 'transformWithState') && watermarked
      ? { lateTime: eventTimeOf(compile(quote(watermarked.name), c.schema, ctx).eval, watermarked.dataType) }
      : {}),
  };
  checkUnique(spec.outputSchema.fieldNames);
  return { ...c, schema: spec.outputSchema, stages: [...c.stages, stage] };
}

/** The instant a watermarked column stands for: a timestamp itself, or a window's end. */
function eventTimeOf(ev: Evaluator, type: DataType): Evaluator {
  if (type === TimestampType) return ev;
  return (row) => (ev(row) as { end: Date } | null)?.end ?? null;
}

function checkUnique(names: string[]): void {
  const seen = new Set<string>();
  for (const n of names) {
    if (seen.has(n)) throw new AnalysisError(`The output would have two columns named \`${n}\`. Rename one with .alias(), or drop one first.`);
    seen.add(n);
  }
}

const freshIds = (): Ids => ({ watermark: 0, stateful: 0, source: 0 });

/** A static sub-plan as a leaf: it runs on its own (own operator ids), so its state is not the query's. */
function staticPlan(plan: Analyzed, holder?: { rows?: Row[] }): Analyzed {
  return { schema: plan.schema, leaf: { kind: 'static', plan, ...(holder ? { holder } : {}) }, stages: [] };
}

/**
 * A join: each side resolved (a static side on its own, as a static sub-plan that runs each batch, or once
 * when cached), then the join itself (plan/join.ts): output columns, keys, condition, eviction.
 */
function resolveJoinNode(p: Extract<LogicalPlan, { kind: 'join' }>, ctx: EvalContext, ids: Ids): Analyzed {
  const streaming = { left: isStreaming(p.left), right: isStreaming(p.right) };
  const side = (q: LogicalPlan, isStream: boolean): Analyzed => {
    if (isStream) return resolve(q, ctx, ids);
    // A static side inside a streaming query runs as its own batch plan; in a batch plan it is just a side.
    const a = resolve(q, ctx, streaming.left || streaming.right ? freshIds() : ids);
    return streaming.left || streaming.right ? staticPlan(a) : a;
  };
  const left = side(p.left, streaming.left);
  const right = side(p.right, streaming.right);
  const { schema, stage } = resolveJoin(p.how, p.on, left.schema, right.schema, streaming, ctx);
  const id = streaming.left && streaming.right ? ids.stateful++ : -1;
  return { schema, leaf: { kind: 'join', left, right, join: { ...stage, id } }, stages: [] };
}

function resolveProject(c: Analyzed, exprs: Expr[], ctx: EvalContext): Analyzed {
  const bounds = expandProjection(exprs, c.schema, ctx);
  checkUnique(bounds.map((b) => b.name));
  return { ...c, schema: schemaOf(bounds), stages: withMap(c.stages, projector(bounds)) };
}

/** Every stage of an analyzed plan, those of union branches included (branches first). */
export function allStages(a: Analyzed): Stage[] {
  return [...leafStages(a.leaf), ...a.stages];
}

/**
 * The plans feeding a leaf that belong to this query: a union's branches, a join's two sides. (A static
 * sub-plan runs on its own: it is not one of them.)
 */
export function leafInputs(leaf: Leaf): Analyzed[] {
  return leaf.kind === 'union' ? leaf.branches : leaf.kind === 'join' ? [leaf.left, leaf.right] : [];
}

/** The stages under a leaf: those of its inputs, and a stream-stream join itself. */
function leafStages(leaf: Leaf): Stage[] {
  const under = leafInputs(leaf).flatMap(allStages);
  return leaf.kind === 'join' && leaf.join.id >= 0 ? [...under, leaf.join] : under;
}

/** The stateful stages of an analyzed plan. */
export function statefulStages(a: Analyzed): StatefulStage[] {
  return allStages(a).filter((s): s is StatefulStage => isStatefulStage(s) || s.kind === 'join');
}

/** The streaming sources of an analyzed plan, by index. */
export function sourceLeaves(a: Analyzed): SourceSpec[] {
  const out: SourceSpec[] = [];
  const visit = (x: Analyzed): void => {
    if (x.leaf.kind === 'source') out[x.leaf.index] = x.leaf.spec;
    else leafInputs(x.leaf).forEach(visit);
  };
  visit(a);
  return out;
}

/**
 * A union, as Spark's: by position, or by name (`unionByName`, where `allowMissingColumns` fills a column
 * that a branch lacks with null). Column types must match; names come from the first input. A column is
 * event time after the union when it is in any branch (each branch keeps its own watermark; the query's
 * is their minimum, or maximum by `multipleWatermarkPolicy`).
 */
function resolveUnion(p: Extract<LogicalPlan, { kind: 'union' }>, ctx: EvalContext, ids: Ids): Analyzed {
  const streaming = p.inputs.map(isStreaming);
  if (streaming.some((x) => x) && !streaming.every((x) => x)) {
    throw new AnalysisError(
      'union() of a streaming and a batch DataFrame is not supported (Spark refuses it too): the batch side would be ' +
        'emitted again in every micro-batch, or once at an arbitrary point. To add static rows to a stream, join them ' +
        '(enrichment), or write them to the source topic once.',
    );
  }
  let branches = p.inputs.map((input) => resolve(input, ctx, ids));
  if (p.byName) {
    // Spark's unionByName: the first input's columns, then (allowMissingColumns) any the others add;
    // every input is projected onto that list, with null where it lacks a column.
    const names = [...branches[0]!.schema.fieldNames];
    branches.forEach((b, i) => {
      if (i === 0) return;
      const missing = names.filter((n) => !b.schema.field(n));
      const extra = b.schema.fieldNames.filter((n) => !names.includes(n));
      if ((missing.length || extra.length) && !p.allowMissingColumns) {
        const diff = [
          missing.length ? `lacks ${missing.map((n) => `\`${n}\``).join(', ')}` : '',
          extra.length ? `has ${extra.map((n) => `\`${n}\``).join(', ')} that the first input lacks` : '',
        ].filter(Boolean);
        throw new AnalysisError(
          `unionByName(): input ${i + 1} ${diff.join(' and ')}. Select the same columns on both sides, or pass ` +
            'allowMissingColumns = true to fill the missing ones with null.',
        );
      }
      names.push(...extra);
    });
    branches = branches.map((b) =>
      b.schema.fieldNames.join('\u0000') === names.join('\u0000')
        ? b // already in that order: no per-row projection
        : resolveProject(b, names.map((n): Expr => (b.schema.field(n) ? quote(n) : { kind: 'alias', child: { kind: 'lit', value: null }, name: n })), ctx),
    );
  }
  const first = branches[0]!.schema;
  branches.forEach((b, i) => {
    if (b.schema.fields.length !== first.fields.length) {
      throw new AnalysisError(
        `union(): input ${i + 1} has ${b.schema.fields.length} columns, the first has ${first.fields.length}. A union matches columns by ` +
          'position; select the same columns on both sides, or use unionByName().',
      );
    }
  });
  const fields = first.fields.map((f, col) => {
    let dataType = f.dataType;
    let nullable = f.nullable;
    let watermarkDelayMs = f.watermarkDelayMs;
    branches.forEach((b, i) => {
      const g = b.schema.fields[col]!;
      if (g.dataType.simpleString() !== dataType.simpleString() && g.dataType !== NullType && dataType !== NullType) {
        throw new AnalysisError(
          `union(): column ${col + 1} (\`${f.name}\`) is ${f.dataType.simpleString()} in the first input but ${g.dataType.simpleString()} ` +
            `(\`${g.name}\`) in input ${i + 1}. Cast one side, e.g. col('${g.name}').cast('${f.dataType.simpleString()}')` +
            (g.name !== f.name ? ', or use unionByName() if the columns are in a different order.' : '.'),
        );
      }
      if (dataType === NullType) dataType = g.dataType;
      nullable ||= g.nullable || g.dataType === NullType;
      watermarkDelayMs ??= g.watermarkDelayMs;
    });
    return { ...f, dataType, nullable, ...(watermarkDelayMs !== undefined ? { watermarkDelayMs } : {}) };
  });
  return { schema: new StructType(fields), leaf: { kind: 'union', branches }, stages: [] };
}
