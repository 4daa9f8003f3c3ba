/** The `option(k, v)` / `options({...})` half of readStream and writeStream: string values, as in Spark. */
export abstract class WithOptions {
  protected readonly opts: Record<string, string> = {};
  /** Sets an option; numbers and booleans are converted to strings, as Spark does. */
  option(key: string, value: string | number | boolean): this {
    this.opts[key] = String(value);
    return this;
  }
  options(map: Record<string, string | number | boolean>): this {
    for (const [k, v] of Object.entries(map)) this.option(k, v);
    return this;
  }
}
