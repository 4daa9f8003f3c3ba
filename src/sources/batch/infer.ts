/**
 * Type widening for schema inference, as Spark's TypeCoercion.findTightestCommonType and the JSON/CSV
 * inference rules built on it (JsonInferSchema.compatibleType, CSVInferSchema.compatibleType).
 */
import {
  ArrayType, ByteType, DataType, DateType, DecimalType, DoubleType, FloatType, IntegerType, LongType, NullType, ShortType,
  StringType, StructField, StructType, TimestampType,
} from '../../types/index.js';

/** Spark's numericPrecedence: a wider type holds every value of a narrower one (approximately, for floats). */
const NUMERIC_PRECEDENCE: DataType[] = [ByteType, ShortType, IntegerType, LongType, FloatType, DoubleType];

/** Spark's DecimalType.forType: the decimal that holds every value of an integral type. */
export function decimalForIntegral(t: DataType): DecimalType | undefined {
  if (t === ByteType) return new DecimalType(3, 0);
  if (t === ShortType) return new DecimalType(5, 0);
  if (t === IntegerType) return new DecimalType(10, 0);
  if (t === LongType) return new DecimalType(20, 0);
  return undefined;
}

function isWiderThan(d: DecimalType, other: DecimalType): boolean {
  return d.precision - d.scale >= other.precision - other.scale && d.scale >= other.scale;
}

/** TypeCoercion.findTightestCommonType: the type both widen to without losing values; undefined if none. */
export function tightestCommonType(a: DataType, b: DataType): DataType | undefined {
  if (a.equals(b)) return a;
  if (a === NullType) return b;
  if (b === NullType) return a;
  const ia = NUMERIC_PRECEDENCE.indexOf(a);
  const ib = NUMERIC_PRECEDENCE.indexOf(b);
  if (ia >= 0 && ib >= 0) return NUMERIC_PRECEDENCE[Math.max(ia, ib)];
  if (a instanceof DecimalType && decimalForIntegral(b) && isWiderThan(a, decimalForIntegral(b)!)) return a;
  if (b instanceof DecimalType && decimalForIntegral(a) && isWiderThan(b, decimalForIntegral(a)!)) return b;
  if ((a === TimestampType && b === DateType) || (a === DateType && b === TimestampType)) return TimestampType;
  return undefined;
}

/** Two decimals widened: integer digits and scale of the wider, or double past 38 digits. */
export function widerDecimal(a: DecimalType, b: DecimalType): DataType {
  const scale = Math.max(a.scale, b.scale);
  const range = Math.max(a.precision - a.scale, b.precision - b.scale);
  return range + scale > DecimalType.MAX_PRECISION ? DoubleType : new DecimalType(range + scale, scale);
}

const byName = (x: StructField, y: StructField): number => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0);

/** JsonInferSchema.compatibleType: the type two inferred types merge to; anything irreconcilable is a string. */
export function jsonCompatibleType(a: DataType, b: DataType): DataType {
  const tight = tightestCommonType(a, b);
  if (tight) return tight;
  if ((a === DoubleType && b instanceof DecimalType) || (a instanceof DecimalType && b === DoubleType)) return DoubleType;
  if (a instanceof DecimalType && b instanceof DecimalType) return widerDecimal(a, b);
  if (a instanceof StructType && b instanceof StructType) return mergeStructs(a, b);
  if (a instanceof ArrayType && b instanceof ArrayType) {
    return new ArrayType(jsonCompatibleType(a.elementType, b.elementType), a.containsNull || b.containsNull);
  }
  const da = decimalForIntegral(a);
  if (da && b instanceof DecimalType) return jsonCompatibleType(da, b);
  const db = decimalForIntegral(b);
  if (db && a instanceof DecimalType) return jsonCompatibleType(a, db);
  return StringType;
}

/** Two structs merged by field name, fields sorted by name (Spark sorts inferred JSON fields). */
export function mergeStructs(a: StructType, b: StructType): StructType {
  const fields = new Map<string, StructField>();
  for (const f of a.fields) fields.set(f.name, f);
  for (const f of b.fields) {
    const prev = fields.get(f.name);
    fields.set(f.name, prev ? { name: f.name, dataType: jsonCompatibleType(prev.dataType, f.dataType), nullable: true } : f);
  }
  return new StructType([...fields.values()].sort(byName));
}

/** A struct of these fields, sorted by name. */
export function sortedStruct(fields: StructField[]): StructType {
  return new StructType([...fields].sort(byName));
}

/** CSVInferSchema.compatibleType: dates and timestamps mixed are strings; else tightest, then CSV's own rules. */
export function csvCompatibleType(a: DataType, b: DataType): DataType | undefined {
  if ((a === DateType && b === TimestampType) || (a === TimestampType && b === DateType)) return StringType;
  const tight = tightestCommonType(a, b);
  if (tight) return tight;
  if (a === StringType || b === StringType) return StringType;
  const da = decimalForIntegral(a);
  if (da && b instanceof DecimalType) return csvCompatibleType(da, b);
  const db = decimalForIntegral(b);
  if (db && a instanceof DecimalType) return csvCompatibleType(a, db);
  if ((a === DoubleType && b instanceof DecimalType) || (a instanceof DecimalType && b === DoubleType)) return DoubleType;
  if (a instanceof DecimalType && b instanceof DecimalType) return widerDecimal(a, b);
  return undefined;
}

/** The number of significant digits of an integer written in decimal (`-007` has 1; `0` has 1). */
export function integerDigits(text: string): number {
  const digits = text.replace(/^[+-]/, '').replace(/^0+/, '');
  return Math.max(digits.length, 1);
}
