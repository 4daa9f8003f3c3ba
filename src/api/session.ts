/** SluiceSession: the entry point, as Spark's SparkSession (builder, conf, readStream, streams). */
import { MemoryTable } from '../sinks/memory.js';
import { MemoryStream } from '../sources/memory.js';
import { Row, StructType, parseSchema } from '../types/index.js';
import { DataFrame } from './dataframe.js';
import { StreamingQueryManager } from './manager.js';
import { DataStreamReader } from './reader.js';

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
  appName(name: string): this {
    this.name = name;
    return this;
  }
  /** Sets a session option, e.g. `sluice.sql.streaming.checkpointLocation`. */
  config(key: string, value: string | number | boolean): this {
    this.settings[key] = String(value);
    return this;
  }
  /** Returns the process's session, created on first call (Spark's getOrCreate). */
  getOrCreate(): SluiceSession {
    const s = (active ??= new SluiceSession(this.name));
    for (const [k, v] of Object.entries(this.settings)) s.conf.set(k, v);
    return s;
  }
}

let active: SluiceSession | undefined;

export class SluiceSession {
  readonly conf = new RuntimeConfig();
  /** The session's queries; a listener that fails is reported to `log`. */
  readonly streams = new StreamingQueryManager((l) => this.log(l));
  private readonly tables = new Map<string, MemoryTable>();
  /** Where show(), printSchema() and the console sink print. Replace to capture output. */
  out: (text: string) => void = (t) => process.stdout.write(t);
  /** Where the engine logs warnings and errors. */
  log: (line: string) => void = (l) => process.stderr.write(`[sluice] ${l}\n`);

  constructor(readonly appName = 'sluice') {}

  static builder(): Builder {
    return new Builder();
  }

  /** Declares a streaming source. */
  get readStream(): DataStreamReader {
    return new DataStreamReader(this);
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

  /** The output table of a memory-sink query, as a batch DataFrame. */
  table(name: string): DataFrame {
    const t = this.tables.get(name);
    if (!t || !t.schema) {
      const known = [...this.tables.keys()];
      throw new Error(`No table "${name}" yet${known.length ? ` (known: ${known.join(', ')})` : ''}: a memory-sink query names its table with .queryName(), and it exists once the first batch is written.`);
    }
    return new DataFrame(this, { kind: 'local', rows: t.rows, schema: t.schema, name });
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
  }
}
