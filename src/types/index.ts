/**
 * Sluice's type system: Spark SQL's data types, with the JavaScript value each one holds at run time.
 *
 * | Spark type   | JS value in a row                                   |
 * |--------------|-----------------------------------------------------|
 * | string       | `string`                                            |
 * | int, long, short, byte, double, float | `number` (long is exact up to 2^53) |
 * | boolean      | `boolean`                                           |
 * | timestamp    | `Date`; a `MicrosDate` (a Date) when it has microseconds |
 * | decimal(p,s) | `Decimal` (exact: bigint digits + scale)            |
 * | date         | `string` `YYYY-MM-DD` (a calendar day has no instant)|
 * | binary       | `Buffer`                                            |
 * | struct       | plain object                                        |
 * | array        | array                                               |
 * | map          | plain object (string keys)                          |
 * Every type admits `null`.
 */

export type Row = Record<string, unknown>;

export { Decimal } from './decimal.js';
export { MicrosDate, epochMicros, fromEpochMicros, microsOfMilli } from './timestamp.js';

export abstract class DataType {
  /** Spark's short name, as printed by printSchema (`string`, `struct<...>`). */
  abstract simpleString(): string;
  /** Type equality by structure. */
  equals(other: DataType): boolean {
    return this.simpleString() === other.simpleString();
  }
  toString(): string {
    return this.simpleString();
  }
}

class Atomic extends DataType {
  constructor(private readonly name: string) {
    super();
  }
  simpleString(): string {
    return this.name;
  }
}

export const StringType = new Atomic('string');
export const IntegerType = new Atomic('int');
export const LongType = new Atomic('bigint');
export const ShortType = new Atomic('smallint');
export const ByteType = new Atomic('tinyint');
export const DoubleType = new Atomic('double');
export const FloatType = new Atomic('float');
export const BooleanType = new Atomic('boolean');
export const TimestampType = new Atomic('timestamp');
export const DateType = new Atomic('date');
export const BinaryType = new Atomic('binary');
/** The type of a `null` literal; it fits any column. */
export const NullType = new Atomic('void');

/**
 * Spark's `decimal(precision, scale)`: at most `precision` digits, `scale` of them after the point
 * (1 ≤ precision ≤ 38, 0 ≤ scale ≤ precision). Values are {@link Decimal}s.
 */
export class DecimalType extends DataType {
  static readonly MAX_PRECISION = 38;
  static readonly MAX_SCALE = 38;
  /** `decimal` without arguments is `decimal(10,0)`, as in Spark (`DecimalType.USER_DEFAULT`). */
  static readonly USER_DEFAULT = new DecimalType(10, 0);
  constructor(
    readonly precision = 10,
    readonly scale = 0,
  ) {
    super();
    if (!Number.isInteger(precision) || precision < 1 || precision > DecimalType.MAX_PRECISION) {
      throw new SchemaError(`decimal(${precision},${scale}): precision must be 1 to ${DecimalType.MAX_PRECISION}.`);
    }
    if (!Number.isInteger(scale) || scale < 0 || scale > precision) {
      throw new SchemaError(`decimal(${precision},${scale}): scale must be 0 to the precision (${precision}).`);
    }
  }
  /** Spark's `DecimalType.bounded`: precision and scale capped at 38 (result types of sum and avg). */
  static bounded(precision: number, scale: number): DecimalType {
    return new DecimalType(Math.min(precision, DecimalType.MAX_PRECISION), Math.min(scale, DecimalType.MAX_SCALE));
  }
  simpleString(): string {
    return `decimal(${this.precision},${this.scale})`;
  }
}

export class ArrayType extends DataType {
  constructor(
    readonly elementType: DataType,
    readonly containsNull = true,
  ) {
    super();
  }
  simpleString(): string {
    return `array<${this.elementType.simpleString()}>`;
  }
}

export class MapType extends DataType {
  constructor(
    readonly keyType: DataType,
    readonly valueType: DataType,
  ) {
    super();
  }
  simpleString(): string {
    return `map<${this.keyType.simpleString()},${this.valueType.simpleString()}>`;
  }
}

export interface StructField {
  readonly name: string;
  readonly dataType: DataType;
  readonly nullable: boolean;
  /** Set on the event-time column of `withWatermark` (and columns derived from it, like its window). */
  readonly watermarkDelayMs?: number;
  /**
   * The name of the DataFrame this column comes from (`df.alias('o')`, or the side of a join), so that
   * `col('o.id')` finds it. Kept by joins; a projection makes new columns without one, as Spark's.
   */
  readonly qualifier?: string;
  /**
   * A join output column renamed because both sides have a column of that name (`o.id` and `p.id`): its
   * name on its own side, so that a bare `col('id')` is reported as ambiguous, with both names.
   */
  readonly sideName?: string;
}

export class StructType extends DataType {
  readonly fields: readonly StructField[];
  constructor(fields: readonly StructField[] = []) {
    super();
    this.fields = fields;
  }
  /** Returns a new struct with one more field (the Spark builder style: `new StructType().add(...)`). */
  add(name: string, dataType: DataType | string, nullable = true): StructType {
    const type = typeof dataType === 'string' ? parseDataType(dataType) : dataType;
    return new StructType([...this.fields, { name, dataType: type, nullable }]);
  }
  get fieldNames(): string[] {
    return this.fields.map((f) => f.name);
  }
  field(name: string): StructField | undefined {
    return this.fields.find((f) => f.name === name);
  }
  simpleString(): string {
    return `struct<${this.fields.map((f) => `${f.name}:${f.dataType.simpleString()}`).join(',')}>`;
  }
  /** The tree printed by `printSchema()`, exactly in Spark's layout. */
  treeString(): string {
    const lines = ['root'];
    const walk = (type: DataType, prefix: string): void => {
      if (type instanceof StructType) {
        for (const f of type.fields) {
          lines.push(`${prefix}-- ${f.name}: ${typeName(f.dataType)} (nullable = ${f.nullable})`);
          walk(f.dataType, `${prefix}    |`);
        }
      } else if (type instanceof ArrayType) {
        lines.push(`${prefix}-- element: ${typeName(type.elementType)} (containsNull = ${type.containsNull})`);
        walk(type.elementType, `${prefix}    |`);
      } else if (type instanceof MapType) {
        lines.push(`${prefix}-- key: ${typeName(type.keyType)}`);
        lines.push(`${prefix}-- value: ${typeName(type.valueType)} (valueContainsNull = true)`);
        walk(type.valueType, `${prefix}    |`);
      }
    };
    walk(this, ' |');
    return lines.join('\n') + '\n';
  }
}

/** In printSchema, nested types print their kind only; their fields follow on the next lines. */
function typeName(t: DataType): string {
  if (t instanceof StructType) return 'struct';
  if (t instanceof ArrayType) return 'array';
  if (t instanceof MapType) return 'map';
  if (t === LongType) return 'long';
  if (t === IntegerType) return 'integer';
  if (t === ShortType) return 'short';
  if (t === ByteType) return 'byte';
  return t.simpleString();
}

const ATOMIC_NAMES: Record<string, DataType> = {
  string: StringType,
  varchar: StringType,
  int: IntegerType,
  integer: IntegerType,
  bigint: LongType,
  long: LongType,
  smallint: ShortType,
  short: ShortType,
  tinyint: ByteType,
  byte: ByteType,
  double: DoubleType,
  float: FloatType,
  real: FloatType,
  boolean: BooleanType,
  bool: BooleanType,
  timestamp: TimestampType,
  date: DateType,
  binary: BinaryType,
  void: NullType,
};

/**
 * Parses a Spark type string (`bigint`, `array<string>`, `struct<a:int,b:string>`, `map<string,int>`)
 * or a DDL field list (`a INT, b STRING`) into a DataType.
 */
export function parseDataType(text: string): DataType {
  const p = new TypeParser(text);
  const t = p.looksLikeFieldList() ? p.fieldList(true) : p.type();
  p.end();
  return t;
}

/** Parses a DDL schema `user_id STRING, ts TIMESTAMP` into a StructType. */
export function parseSchema(ddl: string): StructType {
  const t = parseDataType(ddl);
  if (!(t instanceof StructType)) throw new SchemaError(`"${ddl}" is a single type, not a list of fields`);
  return t;
}

export class SchemaError extends Error {
  override name = 'SchemaError';
}

class TypeParser {
  private pos = 0;
  constructor(private readonly src: string) {}

  looksLikeFieldList(): boolean {
    return /^\s*[`\w]+\s*:?\s+\S/.test(this.src) || /^\s*[`\w]+\s*:/.test(this.src);
  }

  private skip(): void {
    while (this.pos < this.src.length && /\s/.test(this.src[this.pos]!)) this.pos++;
  }
  private peek(): string {
    this.skip();
    return this.src[this.pos] ?? '';
  }
  private expect(ch: string): void {
    if (this.peek() !== ch) this.fail(`expected "${ch}"`);
    this.pos++;
  }
  private ident(): string {
    this.skip();
    if (this.src[this.pos] === '`') {
      const end = this.src.indexOf('`', this.pos + 1);
      if (end < 0) this.fail('unclosed backtick');
      const name = this.src.slice(this.pos + 1, end);
      this.pos = end + 1;
      return name;
    }
    const m = /^[A-Za-z_][\w]*/.exec(this.src.slice(this.pos));
    if (!m) this.fail('expected a name');
    this.pos += m![0].length;
    return m![0];
  }
  private fail(why: string): never {
    throw new SchemaError(
      `Cannot parse type "${this.src}": ${why} at position ${this.pos}. ` +
        `Use Spark's type syntax, e.g. "user_id STRING, ts TIMESTAMP" or "struct<a:int,b:array<string>>".`,
    );
  }
  private int(): number {
    this.skip();
    const m = /^\d+/.exec(this.src.slice(this.pos));
    if (!m) this.fail('expected a number');
    this.pos += m![0].length;
    return Number(m![0]);
  }
  end(): void {
    if (this.peek() !== '') this.fail('unexpected text');
  }

  type(): DataType {
    const name = this.ident().toLowerCase();
    if (name === 'array') {
      this.expect('<');
      const el = this.type();
      this.expect('>');
      return new ArrayType(el);
    }
    if (name === 'map') {
      this.expect('<');
      const k = this.type();
      this.expect(',');
      const v = this.type();
      this.expect('>');
      return new MapType(k, v);
    }
    if (name === 'struct') {
      this.expect('<');
      const s = this.fieldList(false);
      this.expect('>');
      return s;
    }
    if (name === 'decimal' || name === 'dec' || name === 'numeric') {
      // Spark: DECIMAL is decimal(10,0), DECIMAL(p) is decimal(p,0).
      if (this.peek() !== '(') return DecimalType.USER_DEFAULT;
      this.pos++;
      const precision = this.int();
      let scale = 0;
      if (this.peek() === ',') {
        this.pos++;
        scale = this.int();
      }
      this.expect(')');
      return new DecimalType(precision, scale);
    }
    const t = ATOMIC_NAMES[name];
    if (!t) this.fail(`unknown type "${name}"`);
    return t!;
  }

  fieldList(topLevel: boolean): StructType {
    const fields: StructField[] = [];
    if (!topLevel && this.peek() === '>') return new StructType(fields);
    for (;;) {
      const name = this.ident();
      if (this.peek() === ':') this.pos++;
      const dataType = this.type();
      let nullable = true;
      const rest = this.src.slice(this.pos);
      const nn = /^\s*not\s+null/i.exec(rest);
      if (nn) {
        nullable = false;
        this.pos += nn[0].length;
      }
      fields.push({ name, dataType, nullable });
      if (this.peek() !== ',') break;
      this.pos++;
    }
    return new StructType(fields);
  }
}

/**
 * Types whose values are JS numbers. Spark counts decimal as numeric too, but its values are
 * {@link Decimal}s, not numbers: see {@link isDecimal}.
 */
export function isNumeric(t: DataType): boolean {
  return ([IntegerType, LongType, ShortType, ByteType, DoubleType, FloatType] as DataType[]).includes(t);
}

export function isIntegral(t: DataType): boolean {
  return ([IntegerType, LongType, ShortType, ByteType] as DataType[]).includes(t);
}

/** Whether `t` is a `decimal(p,s)` (values are {@link Decimal}s). */
export function isDecimal(t: DataType): t is DecimalType {
  return t instanceof DecimalType;
}
