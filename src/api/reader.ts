/** `session.readStream`: declares a streaming source (format + options), as Spark's DataStreamReader. */
import { StructType, parseSchema } from '../types/index.js';
import { sourceSchema } from '../sources/index.js';
import { DataFrame } from './dataframe.js';
import { WithOptions } from './options.js';
import type { SluiceSession } from './session.js';

export class DataStreamReader extends WithOptions {
  private fmt: string | undefined;
  private userSchema: StructType | undefined;

  constructor(private readonly session: SluiceSession) {
    super();
  }

  /** `kafka`, `rate` (or `memory` through session.memoryStream). */
  format(source: string): this {
    this.fmt = source;
    return this;
  }
  schema(schema: StructType | string): this {
    this.userSchema = typeof schema === 'string' ? parseSchema(schema) : schema;
    return this;
  }
  /** Returns the streaming DataFrame. No connection is made until a query starts. */
  load(): DataFrame {
    if (!this.fmt) throw new Error('readStream: call .format("kafka") (or another source) before .load().');
    const spec = { format: this.fmt, options: { ...this.opts }, ...(this.userSchema ? { userSchema: this.userSchema } : {}) };
    sourceSchema(spec); // unknown formats and bad options fail here, not at start()
    return new DataFrame(this.session, { kind: 'streamingSource', spec });
  }
}
