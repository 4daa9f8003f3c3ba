/**
 * Sluice's logical plan → Spark Connect relations (relations.proto, expressions.proto of Spark 3.5).
 *
 * The plan is data (DESIGN §9), so this is a tree walk: each LogicalPlan node becomes the relation Spark's
 * own DataFrame API would send, each Expr the expression PySpark's Connect client builds for the same
 * call. What needs JavaScript on the server (map functions, user state functions, foreachBatch, foreach,
 * in-process MemoryStreams) cannot run on Spark and is refused here, before anything is submitted, with
 * the reason and the nearest thing that does run there.
 *
 * Avro with the registry: Spark reads Confluent-framed records only as raw Avro (it cannot read the
 * schema id), so `fromAvro` becomes `from_avro(substring(value, 6, length(value) - 5), <writer schema>)`,
 * guarded so a record written with another schema id fails the query with the reason instead of decoding
 * as garbage; `toAvro` becomes `concat(<5-byte header>, to_avro(struct, <schema>))` with the schema
 * registered here first. See docs/decisions.md "Spark Connect backend".
 */
import { AnalysisError } from '../expr/compile.js';
import { compile as compileExpr } from '../expr/compile.js';
import type { BinaryOp, Expr } from '../expr/column.js';
import { analyze } from '../plan/analyzer.js';
import type { JoinType, LogicalPlan } from '../plan/logical.js';
import type { FromAvroOptions, ToAvroOptions } from '../serde/avro.js';
import { sparkToAvroSchema } from '../serde/avro.js';
import { registryClient } from '../serde/registry.js';
import { CalendarInterval } from '../expr/interval.js';
import { Decimal, DataType, StructType, epochMicros } from '../types/index.js';
import { parseDuration } from '../util/duration.js';
import { localRelation } from './arrow.js';
import { ConnectUnsupportedError, type Msg } from './base.js';
import { sparkKafkaOptions } from './kafkaOptions.js';
import { sparkDdl, sparkSchemaJson } from './types.js';

/** Spark's own names for Sluice's binary operators, as its Connect planner resolves them. */
const BINARY: Record<BinaryOp, string> = {
  '+': '+',
  '-': '-',
  '*': '*',
  '/': '/',
  '%': '%',
  '=': '==',
  '!=': '!=', // not a Spark function: compiled as not(==), as PySpark does
  '<=>': '<=>',
  '<': '<',
  '<=': '<=',
  '>': '>',
  '>=': '>=',
  and: 'and',
  or: 'or',
};

const JOIN_TYPES: Record<JoinType, string> = {
  inner: 'JOIN_TYPE_INNER',
  left_outer: 'JOIN_TYPE_LEFT_OUTER',
  right_outer: 'JOIN_TYPE_RIGHT_OUTER',
  full_outer: 'JOIN_TYPE_FULL_OUTER',
  left_semi: 'JOIN_TYPE_LEFT_SEMI',
  left_anti: 'JOIN_TYPE_LEFT_ANTI',
};

const fn = (name: string, ...args: Msg[]): Msg => ({ unresolved_function: { function_name: name, arguments: args } });
const attr = (name: string): Msg => ({ unresolved_attribute: { unparsed_identifier: name } });

/** A literal, typed as Sluice types it (values.ts literalType): whole numbers are int (long past 32 bits), others double. */
export function literal(v: unknown): Msg {
  if (v === null || v === undefined) return { literal: { null: { null: {} } } };
  if (typeof v === 'string') return { literal: { string: v } };
  if (typeof v === 'boolean') return { literal: { boolean: v } };
  if (typeof v === 'number') {
    if (Number.isInteger(v)) return { literal: Math.abs(v) <= 2_147_483_647 ? { integer: v } : { long: String(v) } };
    return { literal: { double: v } };
  }
  if (typeof v === 'bigint') return { literal: { long: v.toString() } };
  if (v instanceof Date) return { literal: { timestamp: String(epochMicros(v)) } };
  if (v instanceof Decimal) return { literal: { decimal: { value: v.toString(), precision: Math.max(v.precision, v.scale, 1), scale: v.scale } } };
  if (v instanceof Uint8Array) return { literal: { binary: Buffer.from(v) } };
  if (v instanceof CalendarInterval) {
    return { literal: { calendar_interval: { months: v.months, days: v.days, microseconds: String(Math.round(v.ms * 1000)) } } };
  }
  if (Array.isArray(v)) return fn('array', ...v.map(literal));
  throw new AnalysisError(`lit(${String(v)}): Spark Connect has no literal for a ${typeof v}; use struct() or a typed column.`);
}

/** A Sluice function call whose Spark form differs from `name(args…)`; undefined when it is the same. */
type Special = (e: Extract<Expr, { kind: 'fn' }>, c: Compiler) => Promise<Msg> | Msg;

const SPECIAL: Record<string, Special> = {
  // window(col, '10 minutes') keeps its durations in options (expr/window.ts); Spark takes them as arguments.
  window: async (e, c) => {
    const o = e.options ?? {};
    const d = (k: string): Msg => literal(sparkDuration(o[k] as string | number, k));
    return fn('window', await c.expr(e.args[0]!), d('windowDuration'), d('slideDuration'), d('startTime'));
  },
  session_window: async (e, c) => {
    const gap = e.options?.gapDuration;
    if (gap === undefined) {
      c.warn("session_window with a gap column: on Spark each row's gap is parsed by Spark's interval parser, which refuses Sluice's short units ('5s', '2 min'): write them as '5 seconds', '2 minutes', or the row's session is null there.");
    }
    return fn('session_window', ...(await c.exprs(e.args)), ...(gap !== undefined ? [literal(sparkDuration(gap as string | number, 'gapDuration'))] : []));
  },
  get_item: async (e, c) => ({ unresolved_extract_value: { child: await c.expr(e.args[0]!), extraction: await c.expr(e.args[1]!) } }),
  count_distinct: async (e, c) => ({ unresolved_function: { function_name: 'count', arguments: await c.exprs(e.args), is_distinct: true } }),
  approx_count_distinct: async (e, c) => fn('approx_count_distinct', await c.expr(e.args[0]!), literal(Number(e.options?.rsd ?? 0.05))),
  from_json: async (e, c) => {
    const { schema, ...options } = e.options ?? {};
    const args = [await c.expr(e.args[0]!), literal(sparkDdl(schema as DataType))];
    const pairs = Object.entries(options).flatMap(([k, v]) => [literal(k), literal(String(v))]);
    return fn('from_json', ...args, ...(pairs.length ? [fn('map', ...pairs)] : []));
  },
  from_avro: (e, c) => c.fromAvro(e),
  to_avro: (e, c) => c.toAvro(e),
};

/**
 * Sluice's durations (`10 seconds`, `5s`, `2 min`, `1h`) as Spark's interval parser takes them. Spark refuses
 * the short units Sluice accepts ("invalid unit 'sec'"), so every duration goes as microseconds.
 */
export function sparkDuration(text: string | number, what: string): string {
  return sparkMicros(parseDuration(text, what));
}

/** A duration in ms as whole microseconds (Spark's interval parser refuses a fraction on any unit but seconds). */
const sparkMicros = (ms: number): string => `${Math.round(ms * 1000)} microseconds`;

/** What compiling a query needs besides the plan. */
export interface CompileContext {
  /** Lines to tell the user (options Spark ignores, behaviour that differs): the session's log. */
  warn(line: string): void;
  /**
   * Whether toAvro may register its schema in the registry now. Only when the plan is about to run (a query
   * start, a collect): explaining a plan or asking its schema must not add subject versions. Without it the
   * header carries schema id 0, which nothing will read.
   */
  register?: boolean;
}

/** One compilation of one plan (a fresh Compiler per action: what it registers or persists belongs to that run). */
export class Compiler {
  /** The plan node whose expressions are being compiled (to_avro needs its input's types). Children are compiled one after another, so it is never shared. */
  private input: LogicalPlan | undefined;
  /** Relations under `cache()`: the backend asks Spark to persist them before running the plan. */
  readonly toPersist: Msg[] = [];
  constructor(private readonly ctx: CompileContext) {}

  /** Tells the user something about how the plan runs on Spark. */
  warn(line: string): void {
    this.ctx.warn(line);
  }

  /** Expressions in order (sequentially: see `input`). */
  async exprs(es: Expr[]): Promise<Msg[]> {
    const out: Msg[] = [];
    for (const e of es) out.push(await this.expr(e));
    return out;
  }

  async relation(p: LogicalPlan): Promise<Msg> {
    switch (p.kind) {
      case 'streamingSource': {
        if (p.spec.instance || p.spec.format === 'memory') {
          throw new ConnectUnsupportedError(
            'A memoryStream()',
            'its rows are added by this process, and the query would run on the Spark cluster',
            'Produce the rows to a Kafka topic and read that (readStream.format("kafka")), or use format("rate") for generated rows.',
          );
        }
        return { read: { is_streaming: true, data_source: this.dataSource(p.spec.format, p.spec.options, p.spec.userSchema) } };
      }
      case 'batchSource':
        return { read: { is_streaming: false, data_source: { ...this.dataSource(p.spec.format, p.spec.options, p.spec.userSchema), paths: [...p.spec.paths] } } };
      case 'local':
        // Rows without columns (SELECT 1 with no FROM reads one such row): Arrow cannot carry a row count
        // without a column, so Spark gets range(n) with its one column dropped.
        if (!p.schema.fields.length) return { drop: { input: { range: { start: '0', end: String(p.rows.length), step: '1' } }, column_names: ['id'] } };
        return { local_relation: localRelation(p.rows, p.schema) };
      case 'cache': {
        // Spark caches by plan: the backend persists this relation (AnalyzePlan persist) before the plan runs,
        // so a cached static side is read once there too, not again every batch.
        const child = await this.relation(p.child);
        this.toPersist.push(child);
        return child;
      }
      case 'alias':
        return { subquery_alias: { input: await this.relation(p.child), alias: p.name } };
      case 'project':
        return { project: { input: await this.relation(p.child), expressions: await this.exprsOf(p, p.exprs) } };
      case 'filter':
        return { filter: { input: await this.relation(p.child), condition: (await this.exprsOf(p, [p.condition]))[0] } };
      case 'withColumns': {
        const values = await this.exprsOf(p, p.columns.map((c) => c.expr));
        return { with_columns: { input: await this.relation(p.child), aliases: values.map((expr, i) => ({ expr, name: [p.columns[i]!.name] })) } };
      }
      case 'drop':
        return { drop: { input: await this.relation(p.child), column_names: p.names } };
      case 'rename':
        return { with_columns_renamed: { input: await this.relation(p.child), rename_columns_map: { [p.existing]: p.newName } } };
      case 'sort': {
        const keys = await this.exprsOf(p, p.keys.map((k) => k.expr));
        return {
          sort: {
            input: await this.relation(p.child),
            is_global: true,
            order: keys.map((child, i) => {
              const asc = p.keys[i]!.ascending;
              // Spark's defaults: ascending puts nulls first, descending last.
              return { child, direction: asc ? 'SORT_DIRECTION_ASCENDING' : 'SORT_DIRECTION_DESCENDING', null_ordering: asc ? 'SORT_NULLS_FIRST' : 'SORT_NULLS_LAST' };
            }),
          },
        };
      }
      case 'watermark':
        return { with_watermark: { input: await this.relation(p.child), event_time: p.column, delay_threshold: sparkMicros(p.delayMs) } };
      case 'aggregate':
        return {
          aggregate: {
            input: await this.relation(p.child),
            group_type: 'GROUP_TYPE_GROUPBY',
            grouping_expressions: await this.exprsOf(p, p.groupBy),
            aggregate_expressions: await this.exprsOf(p, p.aggs),
          },
        };
      case 'dedupe':
        return {
          deduplicate: {
            input: await this.relation(p.child),
            ...(p.columns ? { column_names: p.columns } : { all_columns_as_keys: true }),
            within_watermark: p.withinWatermark,
          },
        };
      case 'join': {
        const left = await this.relation(p.left);
        const right = await this.relation(p.right);
        return {
          join: {
            left,
            right,
            join_type: JOIN_TYPES[p.how],
            ...('using' in p.on ? { using_columns: p.on.using } : { join_condition: (await this.exprsOf(p, [p.on.condition]))[0] }),
          },
        };
      }
      case 'union': {
        const inputs: Msg[] = [];
        for (const i of p.inputs) inputs.push(await this.relation(i));
        // Spark's union is UNION ALL; a chain of two-input set operations, left-deep, as Dataset.union builds.
        return inputs.slice(1).reduce<Msg>(
          (left, right) => ({
            set_op: { left_input: left, right_input: right, set_op_type: 'SET_OP_TYPE_UNION', is_all: true, by_name: p.byName, allow_missing_columns: p.allowMissingColumns },
          }),
          inputs[0]!,
        );
      }
      case 'mapRows':
        throw new ConnectUnsupportedError(
          `map(${p.label}) (a JavaScript function of each row)`,
          'Spark runs on the JVM and cannot call a function of this process for each row',
          'Write the step with column expressions (select, withColumn, filter with col(), when(), …), which Spark runs itself; or run this query locally.',
        );
      case 'groupState':
        throw new ConnectUnsupportedError(
          `${p.spec.api} (per-key state in a JavaScript function)`,
          "Spark would have to call this process's function for every group in every batch",
          'Where the state is a count, sum, latest value or window, use groupBy().agg() (with window() or session_window()) or dropDuplicatesWithinWatermark; otherwise run this query locally.',
        );
    }
  }

  private dataSource(format: string, options: Readonly<Record<string, string>>, userSchema: StructType | undefined): Msg {
    const opts = format === 'kafka' ? sparkKafkaOptions(options, this.ctx.warn) : { ...options };
    return { format, options: opts, ...(userSchema ? { schema: sparkSchemaJson(userSchema) } : {}) };
  }

  private async exprsOf(node: LogicalPlan, exprs: Expr[]): Promise<Msg[]> {
    const outer = this.input;
    this.input = node;
    try {
      return await this.exprs(exprs);
    } finally {
      this.input = outer;
    }
  }

  async expr(e: Expr): Promise<Msg> {
    switch (e.kind) {
      case 'col':
        return attr(e.name);
      case 'star':
        return { unresolved_star: e.qualifier ? { unparsed_target: `${e.qualifier}.*` } : {} };
      case 'lit':
        return literal(e.value);
      case 'alias':
        return { alias: { expr: await this.expr(e.child), name: [e.name] } };
      case 'cast':
        return { cast: { expr: await this.expr(e.child), type_str: sparkDdl(e.to) } };
      case 'binary': {
        const [l, r] = [await this.expr(e.left), await this.expr(e.right)];
        return e.op === '!=' ? fn('not', fn('==', l, r)) : fn(BINARY[e.op], l, r);
      }
      case 'not':
        return fn('not', await this.expr(e.child));
      case 'neg':
        return fn('negative', await this.expr(e.child));
      case 'isNull':
        return fn(e.negated ? 'isnotnull' : 'isnull', await this.expr(e.child));
      case 'in':
        return fn('in', await this.expr(e.child), ...(await this.exprs(e.values)));
      case 'case': {
        const args: Msg[] = [];
        for (const [cond, value] of e.branches) args.push(await this.expr(cond), await this.expr(value));
        if (e.otherwise) args.push(await this.expr(e.otherwise));
        return fn('when', ...args);
      }
      case 'field':
        return { unresolved_extract_value: { child: await this.expr(e.child), extraction: literal(e.name) } };
      case 'fn': {
        const special = SPECIAL[e.name];
        if (special) return special(e, this);
        return fn(e.name, ...(await this.exprs(e.args)));
      }
    }
  }

  /**
   * fromAvro with a registry: Spark decodes with one schema, given as text, and cannot read the 5-byte
   * header. The subject's schema is fetched now; a subject with several versions is refused (records
   * written with an older version would need Avro schema resolution, which Spark's from_avro with one
   * schema does not do), and each record's header is checked on the server, so one written later with
   * another schema fails the query with that reason rather than decoding wrongly.
   */
  async fromAvro(e: Extract<Expr, { kind: 'fn' }>): Promise<Msg> {
    const o = (e.options ?? {}) as FromAvroOptions;
    const value = await this.expr(e.args[0]!);
    const permissive = o.mode === 'PERMISSIVE';
    if (o.mode === undefined || o.mode === 'DEADLETTER') {
      this.ctx.warn(
        'fromAvro: Spark has no dead-letter route. A record that cannot be decoded fails the query on Spark (from_avro mode FAILFAST); ' +
          'locally it would go to the dead-letter destination. With mode: "PERMISSIVE" Spark gives a struct of nulls for a body that does not decode.',
      );
    }
    const options = literalMap({ mode: permissive ? 'PERMISSIVE' : 'FAILFAST' });
    const fail = (...parts: Msg[]): Msg => fn('raise_error', fn('concat', ...parts));
    // A tombstone (null value) is not an Avro record. Locally it goes to the dead letters by default; Spark has
    // none, so it fails the query, saying so — unless tombstones: 'keep' or PERMISSIVE make it a null struct.
    const isValue = e.args[0]!.kind === 'col' && e.args[0]!.name === 'value';
    const tombstone =
      !isValue || o.tombstones === 'keep' || permissive
        ? literal(null)
        : fail(literal("fromAvro: a tombstone (a record with a null value) is not an Avro record, and Spark has no dead-letter route for it. Pass tombstones: 'keep' to read it as null."));
    if (!o.registry) {
      if (o.schema === undefined) throw new AnalysisError('fromAvro needs a reader schema: give { schema }, or { registry, subject } / { registry, schemaId }.');
      return fn('from_avro', fn('when', fn('isnull', value), tombstone, value), literal(typeof o.schema === 'string' ? o.schema : JSON.stringify(o.schema)), options);
    }
    const client = registryClient(o.registry);
    let schema: { id: number; schema: string; schemaType?: string };
    if (o.schemaId !== undefined) schema = await client.getById(o.schemaId);
    else if (o.subject) {
      const versions = await client.listVersions(o.subject);
      if (versions.length > 1) {
        throw new ConnectUnsupportedError(
          `fromAvro of subject "${o.subject}" (${versions.length} schema versions)`,
          "Spark's from_avro decodes every record with one schema and cannot read the schema id in each record's header, so records written with the older versions would decode wrongly",
          'Read a topic written with one schema (one subject version), pin the writer schema with { schemaId }, or run this query locally, where each record is read with its own writer schema.',
        );
      }
      schema = await client.getVersion(o.subject);
    } else throw new AnalysisError('fromAvro with a registry needs { subject } or { schemaId } to know the schema.');
    if (schema.schemaType && schema.schemaType !== 'AVRO') {
      throw new AnalysisError(`fromAvro: ${o.subject ?? `schema id ${o.schemaId}`} holds a ${schema.schemaType} schema, not Avro.`);
    }
    if (o.schema !== undefined) {
      this.ctx.warn('fromAvro: on Spark the records are decoded with the registry schema; the reader schema given in { schema } is not applied.');
    }
    const header = frameHeader(schema.id);
    // Another schema id: Spark would decode it with this schema, wrongly. PERMISSIVE gives null, as an undecodable record does.
    const otherId = permissive
      ? literal(null)
      : fail(
          literal(`fromAvro: a record was not written with schema id ${schema.id} (the only version of its subject when the query started); its header is 0x`),
          fn('hex', fn('substring', value, literal(1), literal(5))),
          literal('. Spark decodes with one schema: restart the query so it reads the new schema, or run it locally.'),
        );
    // substring on binary is 1-based: bytes 1–5 are the header, the Avro body starts at byte 6.
    const body = fn(
      'when',
      fn('isnull', value),
      tombstone,
      fn('==', fn('substring', value, literal(1), literal(5)), literal(header)),
      fn('substring', value, literal(6), fn('-', fn('length', value), literal(5))),
      otherId,
    );
    return fn('from_avro', body, literal(schema.schema), options);
  }

  /** toAvro with a registry: the schema is derived (or given) and registered here; Spark writes the body, the header is prepended. */
  async toAvro(e: Extract<Expr, { kind: 'fn' }>): Promise<Msg> {
    const o = (e.options ?? {}) as ToAvroOptions;
    const data = await this.expr(e.args[0]!);
    let schemaText: string;
    let id: number | undefined;
    if (o.autoRegister === false && o.schema === undefined) {
      if (!o.registry || !o.subject) throw new AnalysisError('toAvro with autoRegister: false needs { registry, subject }.');
      const latest = await registryClient(o.registry).getVersion(o.subject);
      schemaText = latest.schema;
      id = latest.id;
    } else if (o.schema !== undefined) {
      schemaText = typeof o.schema === 'string' ? o.schema : JSON.stringify(o.schema);
    } else {
      schemaText = JSON.stringify(sparkToAvroSchema(await this.typeOf(e.args[0]!), o.recordName, o.recordNamespace));
    }
    const avro = fn('to_avro', data, literal(schemaText));
    if (!o.registry) return avro;
    if (!o.subject) throw new AnalysisError('toAvro with a registry needs { subject } (TopicNameStrategy: "<topic>-value").');
    // Registered only when the plan is about to run: explaining it or asking its schema adds no version.
    id ??= this.ctx.register ? await registryClient(o.registry).register(o.subject, schemaText) : 0;
    // A null struct stays null (a tombstone), as locally.
    return fn('when', fn('isnull', data), literal(null), fn('concat', literal(frameHeader(id)), avro));
  }

  /** The Sluice type of an expression over the current node's input, from a local analysis of that input. */
  private async typeOf(e: Expr): Promise<DataType> {
    const node = this.input;
    const child = node && 'child' in node ? node.child : undefined;
    if (!child) throw new AnalysisError('toAvro on Spark Connect: cannot tell the type of its column here; give the writer schema with { schema }.');
    const ctx = { batchTimestampMs: Date.now() };
    const analyzed = await analyze(child, ctx);
    return compileExpr(e, analyzed.schema, ctx).type;
  }
}

/** Confluent's wire-format header: magic byte 0, then the schema id as 4 bytes big-endian. */
function frameHeader(id: number): Buffer {
  const b = Buffer.alloc(5);
  b.writeUInt32BE(id, 1);
  return b;
}

function literalMap(m: Record<string, string>): Msg {
  return fn('map', ...Object.entries(m).flatMap(([k, v]) => [literal(k), literal(v)]));
}
