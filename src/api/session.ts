/** SluiceSession: the entry point, as Spark's SparkSession (builder, conf, readStream, streams). */
import { MemoryTable } from '../sinks/memory.js';
import { MemoryStream } from '../sources/memory.js';
import { AnalysisError } from '../expr/compile.js';
import { SqlError, sqlQuery } from '../sql/index.js';
import { Row, StructType, parseSchema } from '../types/index.js';
import { DataFrame } from './dataframe.js';
import { StreamingQueryManager } from './manager.js';
import { DataFrameReader, DataStreamReader } from './reader.js';
import { SparkConnectBackend } from '../connect/backend.js';
import { parseConnectUrl } from '../connect/base.js';

export class RuntimeConfig {
  private readonly values = new Map<string, string>();
  get(key: string, fallback?: string): string | undefined {
    return this.values.get(key) ?? fallback;
  }
  set(key: string, value: string | number | boolean): void {
    this.values.set(key, String(value));
  }
  unset(key: string): void {
    this.values.delete(key);
  }
  getAll(): Record<string, string> {
    return Object.fromEntries(this.values);
  }
}

class Builder {
  private name = 'sluice';
  private readonly settings: Record<string, string> = {};
  private remoteUrl: string | undefined;
  appName(name: string): this {
    this.name = name;
    return this;
  }
  /** Sets a session option, e.g. `sluice.sql.streaming.checkpointLocation`. */
  config(key: string, value: string | number | boolean): this {
    this.settings[key] = String(value);
    return this;
  }
  /**
   * Runs this session's DataFrames on Apache Spark through Spark Connect (`sc://host:15002`, Spark 3.5),
   * instead of in this process: the same DataFrame code, compiled to Spark's plan. `spark.*` settings given
   * with config() are sent to the server. Locally, `sluice up --spark` starts a server on 127.0.0.1.
   */
  remote(url: string): this {
    parseConnectUrl(url); // a malformed address fails here, not at the first query
    this.remoteUrl = url;
    return this;
  }
  /** Returns the process's session (one per remote address), created on first call (Spark's getOrCreate). */
  getOrCreate(): SluiceSession {
    const url = this.remoteUrl;
    const s = url ? (remoteSessions.get(url) ?? remoteSessions.set(url, new SluiceSession(this.name, url)).get(url)!) : (active ??= new SluiceSession(this.name));
    for (const [k, v] of Object.entries(this.settings)) s.conf.set(k, v);
    return s;
  }
}

let active: SluiceSession | undefined;
const remoteSessions = new Map<string, SluiceSession>();

/** @internal The sessions builder().getOrCreate() made and that are not stopped: the local one, and one per remote address (`sluice run` waits for their queries). */
export function builtSessions(): SluiceSession[] {
  return [...(active ? [active] : []), ...remoteSessions.values()];
}

/** A temp view or memory-sink table, as `session.catalog.listTables()` lists it. */
export interface TableInfo {
  readonly name: string;
  /** `TEMPORARY` for a temp view; `MEMORY` for a memory-sink query's table. */
  readonly tableType: 'TEMPORARY' | 'MEMORY';
  readonly isTemporary: boolean;
  readonly isStreaming: boolean;
}

/** The names `session.sql()` can read from (a small part of Spark's `spark.catalog`). */
export class Catalog {
  constructor(private readonly session: SluiceSession) {}
  /** Removes a temp view; true if there was one. */
  dropTempView(name: string): boolean {
    return this.session.dropTempView(name);
  }
  /** Temp views, then memory-sink tables. */
  listTables(): TableInfo[] {
    return this.session.listTables();
  }
  /** Whether session.sql() can read `name` (a temp view or a memory-sink table; case-insensitive). */
  tableExists(name: string): boolean {
    return this.session.listTables().some((t) => t.name.toLowerCase() === name.toLowerCase());
  }
}

export class SluiceSession {
  readonly conf = new RuntimeConfig();
  /** The session's queries; a listener that fails is reported to `log`. */
  readonly streams = new StreamingQueryManager((l) => this.log(l));
  private readonly tables = new Map<string, MemoryTable>();
  /** Temp views by lower-case name (Spark's names are case-insensitive). */
  private readonly views = new Map<string, { name: string; df: DataFrame }>();
  /** Temp views and tables known to session.sql(). */
  readonly catalog = new Catalog(this);
  /** Where show(), printSchema() and the console sink print. Replace to capture output. */
  out: (text: string) => void = (t) => process.stdout.write(t);
  /** Where the engine logs warnings and errors. */
  log: (line: string) => void = (l) => process.stderr.write(`[sluice] ${l}\n`);

  /** Set when the session runs on Spark through Spark Connect (builder().remote(url)). */
  readonly remote: SparkConnectBackend | undefined;

  constructor(
    readonly appName = 'sluice',
    remoteUrl?: string,
  ) {
    this.remote = remoteUrl ? new SparkConnectBackend(remoteUrl, () => this.conf.getAll(), (l) => this.log(l), () => this.streams.allListeners()) : undefined;
  }

  static builder(): Builder {
    return new Builder();
  }

  /** Declares a streaming source. */
  get readStream(): DataStreamReader {
    return new DataStreamReader(this);
  }

  /** Declares a batch source: files (json, csv, parquet) or a Kafka topic's current contents. */
  get read(): DataFrameReader {
    return new DataFrameReader(this);
  }

  /** A batch DataFrame of in-memory rows. */
  createDataFrame(rows: Row[], schema: StructType | string): DataFrame {
    const s = typeof schema === 'string' ? parseSchema(schema) : schema;
    return new DataFrame(this, { kind: 'local', rows, schema: s });
  }

  /** A stream fed by the program (`addData`), for tests and lessons; `toDF()` gives its DataFrame. */
  memoryStream(schema: StructType | string): MemoryStream & { toDF(): DataFrame } {
    const s = typeof schema === 'string' ? parseSchema(schema) : schema;
    const stream = new MemoryStream(s);
    return Object.assign(stream, {
      toDF: (): DataFrame => new DataFrame(this, { kind: 'streamingSource', spec: { format: 'memory', options: {}, instance: stream } }),
    });
  }

  /** A temp view (`df.createOrReplaceTempView(name)`), or the output table of a memory-sink query as a batch DataFrame. */
  table(name: string): DataFrame {
    const view = this.views.get(name.toLowerCase());
    if (view) return view.df;
    const t = this.tables.get(name) ?? [...this.tables.entries()].find(([n]) => n.toLowerCase() === name.toLowerCase())?.[1];
    if (!t || !t.schema) {
      const known = [...this.tables.keys()];
      throw new Error(`No table "${name}" yet${known.length ? ` (known: ${known.join(', ')})` : ''}: a memory-sink query names its table with .queryName(), and it exists once the first batch is written.`);
    }
    return new DataFrame(this, { kind: 'local', rows: t.rows, schema: t.schema, name });
  }

  /**
   * Runs a Spark SQL query over temp views and memory-sink tables, as `spark.sql()`:
   * `SELECT … FROM view [[INNER|LEFT|RIGHT|FULL|SEMI|ANTI|CROSS] JOIN view2 ON … | USING (…)]… [WHERE …]
   * [GROUP BY …] [HAVING …]`, UNION [ALL], ORDER BY. The result is a DataFrame with the same plan the
   * DataFrame methods would build — streaming when a view it reads is. Statements Sluice cannot run
   * (INSERT, subqueries, …) are refused with the reason, and errors point at their position in the string.
   */
  sql(query: string): DataFrame {
    return sqlQuery(query, {
      table: (name, pos) => {
        if (this.views.has(name.toLowerCase()) || this.listTables().some((t) => t.name.toLowerCase() === name.toLowerCase())) return this.table(name);
        const known = this.listTables().map((t) => t.name);
        throw new SqlError(
          query,
          pos,
          `Table or view \`${name}\` not found${known.length ? ` (known: ${known.join(', ')})` : ' (there are no temp views yet)'}. ` +
            `Name a DataFrame for SQL with df.createOrReplaceTempView('${name}'); a memory-sink query's table is named by .queryName()`,
        );
      },
      oneRow: () => this.createDataFrame([{}], new StructType([])),
    });
  }

  /** @internal df.createOrReplaceTempView / createTempView. */
  registerTempView(name: string, df: DataFrame, replace: boolean): void {
    if (df.session !== this) throw new AnalysisError(`createTempView('${name}'): the DataFrame belongs to another session.`);
    if (!/^[\p{L}_][\p{L}\p{N}_]*$/u.test(name)) {
      throw new AnalysisError(
        `createTempView('${name}'): a view name is letters, digits and underscores, starting with a letter (Spark refuses qualified names such as db.view too).`,
      );
    }
    const key = name.toLowerCase();
    if (!replace && this.views.has(key)) {
      throw new AnalysisError(`Temporary view '${name}' already exists. Use createOrReplaceTempView('${name}') to replace it.`);
    }
    this.views.set(key, { name, df });
  }

  /** @internal catalog.dropTempView */
  dropTempView(name: string): boolean {
    return this.views.delete(name.toLowerCase());
  }

  /** @internal catalog.listTables */
  listTables(): TableInfo[] {
    const views = [...this.views.values()].map((v): TableInfo => ({ name: v.name, tableType: 'TEMPORARY', isTemporary: true, isStreaming: v.df.isStreaming }));
    const tables = [...this.tables.entries()]
      .filter(([n, t]) => t.schema && !this.views.has(n.toLowerCase()))
      .map(([n]): TableInfo => ({ name: n, tableType: 'MEMORY', isTemporary: false, isStreaming: false }));
    return [...views, ...tables];
  }

  /** @internal The memory sink's table, created on first use. */
  memoryTable(name: string): MemoryTable {
    let t = this.tables.get(name);
    if (!t) {
      t = new MemoryTable();
      this.tables.set(name, t);
    }
    return t;
  }

  /** Stops every active query. */
  async stop(): Promise<void> {
    await Promise.all(this.streams.active.map((q) => q.stop()));
    if (active === this) active = undefined;
    if (this.remote) {
      this.remote.close();
      if (remoteSessions.get(this.remote.url) === this) remoteSessions.delete(this.remote.url);
    }
  }
}
