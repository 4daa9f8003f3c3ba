/**
 * Sluice's type system: Spark SQL's data types, with the JavaScript value each one holds at run time.
 *
 * | Spark type   | JS value in a row                                   |
 * |--------------|-----------------------------------------------------|
 * | string       | `string`                                            |
 * | int, long, short, byte, double, float | `number` (long is exact up to 2^53) |
 * | boolean      | `boolean`                                           |
 * | timestamp    | `Date` (millisecond precision)                      |
 * | date         | `string` `YYYY-MM-DD` (a calendar day has no instant)|
 * | binary       | `Buffer`                                            |
 * | struct       | plain object                                        |
 * | array        | array                                               |
 * | map          | plain object (string keys)                          |
 * Every type admits `null`.
 */

export type Row = Record<string, unknown>;

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
    if (name === 'decimal' && this.peek() === '(') {
      // Decimals are held as JS numbers: Sluice has no arbitrary-precision decimal yet.
      while (this.peek() !== ')' && this.peek() !== '') this.pos++;
      this.expect(')');
      return DoubleType;
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

export function isNumeric(t: DataType): boolean {
  return ([IntegerType, LongType, ShortType, ByteType, DoubleType, FloatType] as DataType[]).includes(t);
}

export function isIntegral(t: DataType): boolean {
  return ([IntegerType, LongType, ShortType, ByteType] as DataType[]).includes(t);
}
