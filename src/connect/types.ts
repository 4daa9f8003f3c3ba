/**
 * Sluice types written the way Spark 3.5 parses them. `simpleString()` (`struct<a:int>`) is Sluice's
 * display form: Spark's parser refuses a struct field name with a space, a dash or a dot unless quoted, and
 * a relation's schema field (Read.DataSource, LocalRelation) does not take the `struct<…>` form at all.
 * So: JSON (DataType.json, what PySpark sends) for schemas, and DDL with quoted names for casts.
 */
import { ArrayType, DataType, DecimalType, MapType, StructType } from '../types/index.js';

const quote = (name: string): string => `\`${name.replace(/`/g, '``')}\``;

/**
 * Spark's DDL type string, field names quoted: `struct<\`a b\`:int>`. Fields are left nullable: Spark refuses
 * to cast a nullable field to a NOT NULL one, and nullable is what Sluice's parsed types say anyway.
 */
export function sparkDdl(t: DataType): string {
  if (t instanceof StructType) return `struct<${t.fields.map((f) => `${quote(f.name)}:${sparkDdl(f.dataType)}`).join(',')}>`;
  if (t instanceof ArrayType) return `array<${sparkDdl(t.elementType)}>`;
  if (t instanceof MapType) return `map<${sparkDdl(t.keyType)},${sparkDdl(t.valueType)}>`;
  return t.simpleString();
}

const JSON_NAMES: Record<string, string> = { int: 'integer', bigint: 'long', smallint: 'short', tinyint: 'byte', void: 'null' };

/** Spark's JSON form of a type (DataType.json): what Read.DataSource.schema and LocalRelation.schema accept. */
export function sparkJsonType(t: DataType): unknown {
  if (t instanceof StructType) {
    return { type: 'struct', fields: t.fields.map((f) => ({ name: f.name, type: sparkJsonType(f.dataType), nullable: f.nullable, metadata: {} })) };
  }
  if (t instanceof ArrayType) return { type: 'array', elementType: sparkJsonType(t.elementType), containsNull: t.containsNull };
  if (t instanceof MapType) return { type: 'map', keyType: sparkJsonType(t.keyType), valueType: sparkJsonType(t.valueType), valueContainsNull: true };
  if (t instanceof DecimalType) return `decimal(${t.precision},${t.scale})`;
  const s = t.simpleString();
  return JSON_NAMES[s] ?? s;
}

export const sparkSchemaJson = (t: StructType): string => JSON.stringify(sparkJsonType(t));
