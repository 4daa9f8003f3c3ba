/**
 * DataFrame: an immutable, lazily evaluated description of a table or a stream (a logical plan). Every
 * transformation returns a new DataFrame; nothing runs until `collect()`/`show()` (batch) or
 * `writeStream.start()` (streaming). Methods that must resolve schemas are async because resolving may
 * ask the Schema Registry.
 */
import { Column, ColumnLike, Expr, colExpr } from '../expr/column.js';
import { avg, count, max, min, sum } from '../expr/aggregates.js';
import { ConnectUnsupportedError } from '../connect/base.js';
import { AnalysisError, EvalContext } from '../expr/compile.js';
import { collectRows } from '../exec/planRunner.js';
import { parseJoinType } from '../plan/join.js';
import { parseDuration } from '../util/duration.js';
import { analyze, Analyzed } from '../plan/analyzer.js';
import { LogicalPlan, isStreaming, planString } from '../plan/logical.js';
import { showString } from '../sinks/show.js';
import { Row, StructType, parseDataType } from '../types/index.js';
import { aggregatesFromDict, conditionFromSql, selectExprs } from '../sql/index.js';
import type { SluiceSession } from './session.js';
import { DataFrameWriter } from './batchWriter.js';
import { DataStreamWriter } from './writer.js';
import { KeyValueGroupedDataFrame } from './keyValueGrouped.js';

export class DataFrame {
  constructor(
    readonly session: SluiceSession,
    readonly plan: LogicalPlan,
  ) {}

  private with(plan: LogicalPlan): DataFrame {
    return new DataFrame(this.session, plan);
  }

  /** True when this DataFrame reads from a streaming source (then only writeStream can run it). */
  get isStreaming(): boolean {
    return isStreaming(this.plan);
  }

  /** Projects columns; `'*'` and `'struct.*'` expand. */
  select(...cols: Array<ColumnLike | ColumnLike[]>): DataFrame {
    const flat = cols.flat();
    if (!flat.length) throw new AnalysisError('select() needs at least one column.');
    return this.with({ kind: 'project', child: this.plan, exprs: flat.map(colExpr) });
  }

  /**
   * Projects columns written in Spark SQL, one expression per string: `"CAST(value AS STRING) AS json"`,
   * `"from_json(json, 'user STRING') AS data"`, `"s.*"`, `"amount * 2 AS double_amount"`. The plan is the
   * one select() with column functions builds. Aggregates alone (`"count(*) AS n"`) aggregate the whole
   * input, as in Spark.
   */
  selectExpr(...exprs: string[]): DataFrame {
    return selectExprs(this, exprs);
  }

  /** Adds or replaces a column. */
  withColumn(name: string, c: Column): DataFrame {
    return this.withColumns({ [name]: c });
  }

  /** Adds or replaces several columns at once; replaced columns keep their position, as in Spark. */
  withColumns(cols: Record<string, Column>): DataFrame {
    const columns = Object.entries(cols).map(([name, c]) => ({ name, expr: c.expr }));
    return this.with({ kind: 'withColumns', child: this.plan, columns });
  }

  /** Renames a column; a name that does not exist is ignored, as in Spark. */
  withColumnRenamed(existing: string, newName: string): DataFrame {
    return this.with({ kind: 'rename', child: this.plan, existing, newName });
  }

  /**
   * Keeps the rows where `condition` is true (null and false drop the row, as in SQL). The condition is a
   * Column (`col('country').eq('US')`) or the same in SQL (`"country = 'US'"`).
   */
  filter(condition: Column | string): DataFrame {
    const c = typeof condition === 'string' ? conditionFromSql(condition) : condition;
    if (!(c instanceof Column)) {
      throw new AnalysisError(`filter() takes a Column condition such as col('country').eq('US'), or a SQL string such as "country = 'US'".`);
    }
    return this.with({ kind: 'filter', child: this.plan, condition: c.expr });
  }

  /** Same as {@link filter}. */
  where(condition: Column | string): DataFrame {
    return this.filter(condition);
  }

  /** Removes columns; names that do not exist are ignored, as in Spark. */
  drop(...names: string[]): DataFrame {
    return this.with({ kind: 'drop', child: this.plan, names });
  }

  /** Transforms each row with a JS function (the escape hatch); the function's output schema must be given. */
  map(fn: (row: Row) => Row, schema: StructType | string): DataFrame {
    const s = typeof schema === 'string' ? parseDataType(schema) : schema;
    if (!(s instanceof StructType)) throw new AnalysisError('map(): the schema must be a struct (a list of fields).');
    return this.with({ kind: 'mapRows', child: this.plan, fn, schema: s, label: fn.name || 'fn' });
  }

  /**
   * Groups rows by a key for arbitrary state per key (then `.mapGroupsWithState(…)` or
   * `.flatMapGroupsWithState(…)`): by columns — the key is the value, or an array of values for several —
   * or by a function of the row (Spark's `groupByKey(func)`).
   */
  groupByKey<K = unknown>(...by: [(row: Row) => K] | string[]): KeyValueGroupedDataFrame<K> {
    const key = typeof by[0] === 'function' ? { fn: by[0] as (row: Row) => unknown } : { columns: by as string[] };
    return new KeyValueGroupedDataFrame<K>(this, key, (plan) => this.with(plan));
  }

  /** Sorts rows (batch only, or after an aggregation in complete mode). */
  orderBy(...cols: Array<ColumnLike | { col: ColumnLike; ascending: boolean }>): DataFrame {
    return this.with({
      kind: 'sort',
      child: this.plan,
      keys: cols.map((c) => (typeof c === 'object' && !(c instanceof Column) ? { expr: colExpr(c.col), ascending: c.ascending } : { expr: colExpr(c), ascending: true })),
    });
  }
  sort(...cols: Array<ColumnLike | { col: ColumnLike; ascending: boolean }>): DataFrame {
    return this.orderBy(...cols);
  }

  /**
   * Declares `column` the event time and `delay` how late data may arrive. After each batch the watermark
   * becomes max(event time seen) − delay (never going back); the next batch drops rows older than it and
   * closes windows that end before it. Place it before the aggregation or dedupe it should bound.
   */
  withWatermark(column: string, delay: string): DataFrame {
    return this.with({ kind: 'watermark', child: this.plan, column, delay, delayMs: parseDuration(delay, 'watermark delay') });
  }

  /** Groups rows for aggregation: `groupBy(window(col('ts'), '5 minutes'), 'user_id').agg(count('*'))`. */
  groupBy(...cols: Array<ColumnLike | ColumnLike[]>): GroupedData {
    return new GroupedData(this, cols.flat().map(colExpr));
  }
  groupby(...cols: Array<ColumnLike | ColumnLike[]>): GroupedData {
    return this.groupBy(...cols);
  }

  /** Aggregates the whole input (one group): `df.agg(count('*'))`, `df.agg({ amount: 'sum' })`. */
  agg(...aggs: Array<Column | Column[] | Record<string, string>>): DataFrame {
    return this.groupBy().agg(...aggs);
  }

  /**
   * Names this DataFrame for `session.sql()`: `SELECT … FROM name`. A view of a stream is a streaming
   * view; the view holds the plan, not data (as Spark's temp views). Replaces a view of the same name.
   */
  createOrReplaceTempView(name: string): void {
    this.session.registerTempView(name, this, true);
  }

  /** As {@link createOrReplaceTempView}, but fails when a view of that name exists (Spark's TempTableAlreadyExistsException). */
  createTempView(name: string): void {
    this.session.registerTempView(name, this, false);
  }

  /**
   * Drops rows whose `columns` (all columns by default) were seen before. On a stream the seen keys are
   * state: with a watermark and the event-time column among the keys, keys older than the watermark are
   * forgotten; otherwise they are kept forever.
   */
  dropDuplicates(columns?: string[]): DataFrame {
    return this.with({ kind: 'dedupe', child: this.plan, ...(columns ? { columns } : {}), withinWatermark: false });
  }
  drop_duplicates(columns?: string[]): DataFrame {
    return this.dropDuplicates(columns);
  }
  distinct(): DataFrame {
    return this.dropDuplicates();
  }
  /** Drops rows whose `columns` were seen within the watermark delay (Spark 3.5+); state is bounded by the delay. */
  dropDuplicatesWithinWatermark(columns?: string[]): DataFrame {
    return this.with({ kind: 'dedupe', child: this.plan, ...(columns ? { columns } : {}), withinWatermark: true });
  }

  /**
   * The rows of this DataFrame and then those of `others`, matched by column **position** (Spark's union;
   * duplicates are kept — follow with dropDuplicates() for SQL's UNION). Streams union with streams only.
   * Each input keeps its own watermark; the query's watermark is their minimum (`sluice.sql.streaming.
   * multipleWatermarkPolicy` = `max` to follow the fastest input instead).
   */
  union(...others: DataFrame[]): DataFrame {
    return this.unionOf(others, false, false);
  }
  /** Same as {@link union} (Spark's old name). */
  unionAll(...others: DataFrame[]): DataFrame {
    return this.union(...others);
  }
  /** As {@link union}, but columns are matched by **name**; `allowMissingColumns` fills the ones an input lacks with null. */
  unionByName(other: DataFrame, allowMissingColumns = false): DataFrame {
    return this.unionOf([other], true, allowMissingColumns);
  }
  /**
   * Joins with another DataFrame, as Spark's `join(other, on, how)`:
   * - `on` a column name or names: a USING join — rows whose columns of that name are equal; each key column
   *   appears once in the output;
   * - `on` a Column: a condition, e.g. `col('o.order_id').eq(col('p.order_id'))` or
   *   `expr("o.order_id = p.order_id AND p.ts BETWEEN o.ts AND o.ts + INTERVAL 10 MINUTES")`; name the sides with
   *   {@link alias} when they share column names;
   * - `how`: `inner` (default), `left`/`left_outer`, `right`/`right_outer`, `full`/`outer`/`full_outer`,
   *   `left_semi`/`semi`, `left_anti`/`anti`.
   * On streams: stream-static joins are stateless (the static side is read again every batch unless cached);
   * stream-stream joins buffer both sides in state, bounded by watermarks and a time range (ARCHITECTURE.md).
   */
  join(other: DataFrame, on?: string | string[] | Column, how = 'inner'): DataFrame {
    if (other.session !== this.session) throw new AnalysisError('join(): both DataFrames must come from the same session.');
    const joinOn = on === undefined ? { condition: { kind: 'lit', value: true } as const } : typeof on === 'string' ? { using: [on] } : Array.isArray(on) ? { using: on } : { condition: on.expr };
    return this.with({ kind: 'join', left: this.plan, right: other.plan, how: parseJoinType(how), on: joinOn });
  }

  /** A cartesian product (every pair): Spark's `crossJoin`. Refused between two streams. */
  crossJoin(other: DataFrame): DataFrame {
    return this.join(other);
  }

  /** Names this DataFrame, so that its columns can be referred to as `name.column` (Spark's `df.alias`). */
  alias(name: string): DataFrame {
    return this.with({ kind: 'alias', child: this.plan, name });
  }

  private unionOf(others: DataFrame[], byName: boolean, allowMissingColumns: boolean): DataFrame {
    if (!others.length) throw new AnalysisError('union() needs at least one other DataFrame.');
    if (others.some((o) => o.session !== this.session)) throw new AnalysisError('union(): all DataFrames must come from the same session.');
    return this.with({ kind: 'union', inputs: [this.plan, ...others.map((o) => o.plan)], byName, allowMissingColumns });
  }

  /** @internal Resolves the plan (asks the registry for schemas where needed). */
  async analyze(ctx: EvalContext = { batchTimestampMs: Date.now() }): Promise<Analyzed> {
    return analyze(this.plan, ctx);
  }

  /** The resolved schema. */
  async schema(): Promise<StructType> {
    if (this.session.remote) return this.session.remote.schema(this.plan);
    return (await this.analyze()).schema;
  }

  /** Prints the schema tree, as Spark's printSchema(). (`(await df.schema()).treeString()` gives the text.) */
  async printSchema(): Promise<void> {
    this.session.out((await this.schema()).treeString());
  }

  /** The plan, as text (Sluice's logical plan; on a Spark Connect session, {@link sparkPlan} gives Spark's). */
  explain(): string {
    const text = planString(this.plan);
    this.session.out(text + '\n');
    return text;
  }

  /** Spark's plan for this DataFrame, on a Spark Connect session: `mode` simple (default), extended, formatted, cost or codegen. */
  async sparkPlan(mode = 'simple'): Promise<string> {
    if (!this.session.remote) throw new AnalysisError('sparkPlan() needs a Spark Connect session (SluiceSession.builder().remote("sc://…")); explain() shows the plan here.');
    return this.session.remote.explain(this.plan, mode);
  }

  private requireBatch(what: string): void {
    if (this.isStreaming) {
      throw new AnalysisError(
        `${what}() cannot run on a streaming DataFrame: a stream never ends. Start it with writeStream ` +
          '(format("console") to look at it, or format("memory") and session.table(name) to query it).',
      );
    }
  }

  /** Runs a batch DataFrame and returns its rows. */
  async collect(): Promise<Row[]> {
    this.requireBatch('collect');
    if (this.session.remote) return this.session.remote.collect(this.plan);
    const a = await this.analyze();
    // A batch is one pass: aggregations emit every group (complete mode, no watermark), state lives only
    // for this call, in memory.
    return collectRows(a);
  }

  async count(): Promise<number> {
    if (this.session.remote) {
      this.requireBatch('count');
      return this.session.remote.count(this.plan);
    }
    return (await this.collect()).length;
  }

  /** Prints the first rows as a table, as Spark's show(). */
  async show(numRows = 20, truncate: boolean | number = true): Promise<void> {
    if (this.session.remote) {
      this.requireBatch('show');
      this.session.out(await this.session.remote.showString(this.plan, numRows, truncate));
      return;
    }
    const [rows, schema] = await Promise.all([this.collect(), this.schema()]);
    this.session.out(showString(rows, schema, numRows, truncate));
  }

  /**
   * Writes this batch DataFrame once (Spark's DataFrameWriter): `df.write.format('json').mode('append').save(path)`,
   * `df.write.format('kafka').option('topic', t).save()`. Inside foreachBatch it writes the micro-batch to
   * several places. A streaming DataFrame is written with {@link writeStream}.
   */
  get write(): DataFrameWriter {
    if (this.isStreaming) throw new AnalysisError("'write' can not be called on a streaming DataFrame: use writeStream to start a streaming query.");
    if (this.session.remote) {
      throw new ConnectUnsupportedError(
        'df.write',
        "Sluice's batch writer runs in this process: it would bring every row from Spark here and write from here",
        'Write from Spark with a streaming query: the same source read with readStream and trigger({ availableNow: true }) writes what is there and stops; or collect() the rows you need.',
      );
    }
    return new DataFrameWriter(this);
  }

  /** The entry point for starting a streaming query. */
  get writeStream(): DataStreamWriter {
    if (!this.isStreaming) {
      throw new AnalysisError("writeStream can only be used on a streaming DataFrame (one from session.readStream). Use collect() or show() for a batch one.");
    }
    return new DataStreamWriter(this);
  }

  /**
   * A DataFrame whose rows are computed once, at the first run that needs them, and kept in memory (Spark's
   * `cache()`): every DataFrame derived from it, and every micro-batch of a stream-static join that uses it,
   * reads the kept rows instead of reading its source again. Use the returned DataFrame — unlike Spark,
   * `cache()` does not change `this` (a DataFrame is immutable): `const users = session.read.json(p).cache()`.
   * Batch DataFrames only (a stream has no end to cache).
   */
  cache(): DataFrame {
    if (this.plan.kind === 'cache') return this;
    // Local rows (a foreachBatch batch, createDataFrame) are in memory already: kept at once, without running
    // anything. A copy of the list, so rows added later to it (a memory-sink table) do not enter the cache.
    const holder = this.plan.kind === 'local' ? { rows: this.plan.rows.slice() } : {};
    return this.with({ kind: 'cache', child: this.plan, holder });
  }

  /** The same as {@link cache}: Sluice keeps rows in memory only, so Spark's storage levels do not apply. */
  persist(): DataFrame {
    return this.cache();
  }

  /**
   * Drops the kept rows of a cached DataFrame (Spark's `unpersist()`), and returns a DataFrame that reads its
   * source anew each time it runs. `this`, if used again, computes and keeps its rows again at its next run.
   * On a DataFrame that is not cached, it does nothing.
   */
  unpersist(): DataFrame {
    if (this.plan.kind !== 'cache') return this;
    delete this.plan.holder.rows;
    // On Spark the cache is Spark's, matched by plan: release it there too (in the background; a failure is logged).
    if (this.session.remote) void this.session.remote.unpersist(this.plan.child).catch((e: Error) => this.session.log(`WARN unpersist on Spark: ${e.message}`));
    return this.with(this.plan.child);
  }
}

/** The result of groupBy(): aggregate it with agg() or a shortcut. */
export class GroupedData {
  constructor(
    private readonly df: DataFrame,
    private readonly keys: Expr[],
  ) {}
  /**
   * One output row per group: the keys, then each aggregate (`count('*').alias('n')`, `avg('x')`,
   * `expr('count(*) AS n')`, …), or PySpark's dictionary form `{ amount: 'sum', '*': 'count' }`.
   */
  agg(...aggs: Array<Column | Column[] | Record<string, string>>): DataFrame {
    const flat = aggs.flatMap((a) => (a instanceof Column ? [a] : Array.isArray(a) ? a : aggregatesFromDict(a)));
    if (!flat.length) throw new AnalysisError('agg() needs at least one aggregate, e.g. count("*").');
    return new DataFrame(this.df.session, { kind: 'aggregate', child: this.df.plan, groupBy: this.keys, aggs: flat.map((c) => c.expr) });
  }
  /** Rows per group, in a column named `count`. */
  count(): DataFrame {
    return this.agg(count().alias('count'));
  }
  sum(...cols: string[]): DataFrame {
    return this.agg(...cols.map((c) => sum(c)));
  }
  avg(...cols: string[]): DataFrame {
    return this.agg(...cols.map((c) => avg(c)));
  }
  min(...cols: string[]): DataFrame {
    return this.agg(...cols.map((c) => min(c)));
  }
  max(...cols: string[]): DataFrame {
    return this.agg(...cols.map((c) => max(c)));
  }
}
