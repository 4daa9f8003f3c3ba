/**
 * Column expressions are data: a tree the analyzer can check and resolve against a schema before a
 * query runs (DESIGN §1). `Column` is the fluent, PySpark-shaped wrapper users hold.
 */
import { DataType, parseDataType } from '../types/index.js';

export type BinaryOp =
  | '+'
  | '-'
  | '*'
  | '/'
  | '%'
  | '='
  | '!='
  | '<=>'
  | '<'
  | '<='
  | '>'
  | '>='
  | 'and'
  | 'or';

export type Expr =
  | { kind: 'col'; name: string }
  | { kind: 'star'; qualifier?: string }
  | { kind: 'lit'; value: unknown }
  | { kind: 'alias'; child: Expr; name: string }
  | { kind: 'cast'; child: Expr; to: DataType }
  | { kind: 'binary'; op: BinaryOp; left: Expr; right: Expr }
  | { kind: 'not'; child: Expr }
  | { kind: 'neg'; child: Expr }
  | { kind: 'isNull'; child: Expr; negated: boolean }
  | { kind: 'in'; child: Expr; values: Expr[] }
  | { kind: 'case'; branches: Array<[Expr, Expr]>; otherwise?: Expr }
  | { kind: 'field'; child: Expr; name: string }
  | { kind: 'fn'; name: string; args: Expr[]; options?: Record<string, unknown> };

/** Anything a function accepts as a column: a Column, or a column name. */
export type ColumnLike = Column | string;

export class Column {
  constructor(readonly expr: Expr) {}

  /** Renames the column (`AS`). */
  alias(name: string): Column {
    return new Column({ kind: 'alias', child: this.expr, name });
  }
  /** Same as {@link alias}. */
  as(name: string): Column {
    return this.alias(name);
  }
  name(name: string): Column {
    return this.alias(name);
  }
  /** Converts to another type with Spark's (non-ANSI) cast rules: a value that does not convert becomes null. */
  cast(to: DataType | string): Column {
    return new Column({ kind: 'cast', child: this.expr, to: typeof to === 'string' ? parseDataType(to) : to });
  }
  astype(to: DataType | string): Column {
    return this.cast(to);
  }

  plus(o: unknown): Column {
    return bin('+', this, o);
  }
  minus(o: unknown): Column {
    return bin('-', this, o);
  }
  multiply(o: unknown): Column {
    return bin('*', this, o);
  }
  divide(o: unknown): Column {
    return bin('/', this, o);
  }
  mod(o: unknown): Column {
    return bin('%', this, o);
  }
  negate(): Column {
    return new Column({ kind: 'neg', child: this.expr });
  }

  eq(o: unknown): Column {
    return bin('=', this, o);
  }
  equalTo(o: unknown): Column {
    return this.eq(o);
  }
  neq(o: unknown): Column {
    return bin('!=', this, o);
  }
  notEqual(o: unknown): Column {
    return this.neq(o);
  }
  /** Null-safe equality (`<=>`): null <=> null is true. */
  eqNullSafe(o: unknown): Column {
    return bin('<=>', this, o);
  }
  lt(o: unknown): Column {
    return bin('<', this, o);
  }
  leq(o: unknown): Column {
    return bin('<=', this, o);
  }
  gt(o: unknown): Column {
    return bin('>', this, o);
  }
  geq(o: unknown): Column {
    return bin('>=', this, o);
  }
  between(lo: unknown, hi: unknown): Column {
    return this.geq(lo).and(this.leq(hi));
  }

  and(o: unknown): Column {
    return bin('and', this, o);
  }
  or(o: unknown): Column {
    return bin('or', this, o);
  }
  not(): Column {
    return new Column({ kind: 'not', child: this.expr });
  }

  isNull(): Column {
    return new Column({ kind: 'isNull', child: this.expr, negated: false });
  }
  isNotNull(): Column {
    return new Column({ kind: 'isNull', child: this.expr, negated: true });
  }
  /** True when the value equals one of `values` (SQL `IN`, with SQL's null rules). */
  isin(...values: unknown[]): Column {
    const flat = values.length === 1 && Array.isArray(values[0]) ? (values[0] as unknown[]) : values;
    return new Column({ kind: 'in', child: this.expr, values: flat.map((v) => toExpr(v)) });
  }

  /** Adds a branch to a `when(...)` chain. */
  when(condition: Column, value: unknown): Column {
    if (this.expr.kind !== 'case' || this.expr.otherwise) {
      throw new TypeError('when() can only follow when(): start the chain with the function when(cond, value).');
    }
    return new Column({ ...this.expr, branches: [...this.expr.branches, [condition.expr, toExpr(value)]] });
  }
  /** The value of a `when(...)` chain when no branch matched (null without it). */
  otherwise(value: unknown): Column {
    if (this.expr.kind !== 'case' || this.expr.otherwise) {
      throw new TypeError('otherwise() can only follow when(...) once.');
    }
    return new Column({ ...this.expr, otherwise: toExpr(value) });
  }

  /** A field of a struct column. */
  getField(name: string): Column {
    return new Column({ kind: 'field', child: this.expr, name });
  }
  getItem(key: string | number): Column {
    return new Column({ kind: 'fn', name: 'get_item', args: [this.expr, { kind: 'lit', value: key }] });
  }

  contains(o: unknown): Column {
    return fn('contains', this, o);
  }
  startswith(o: unknown): Column {
    return fn('startswith', this, o);
  }
  endswith(o: unknown): Column {
    return fn('endswith', this, o);
  }
  /** SQL LIKE with `%` and `_`. */
  like(pattern: string): Column {
    return fn('like', this, pattern);
  }
  rlike(regex: string): Column {
    return fn('rlike', this, regex);
  }
  substr(pos: number, len: number): Column {
    return fn('substring', this, pos, len);
  }

  toString(): string {
    return exprName(this.expr);
  }
}

function bin(op: BinaryOp, l: Column, r: unknown): Column {
  return new Column({ kind: 'binary', op, left: l.expr, right: toExpr(r) });
}

function fn(name: string, ...args: unknown[]): Column {
  return new Column({ kind: 'fn', name, args: args.map((a) => toExpr(a)) });
}

/** A value used where a column is expected becomes a literal; a Column stays itself. */
export function toExpr(v: unknown): Expr {
  if (v instanceof Column) return v.expr;
  return { kind: 'lit', value: v };
}

/** A column name or Column, as functions take them (`count('id')`, `upper(col('a'))`). */
export function colExpr(c: ColumnLike): Expr {
  if (c instanceof Column) return c.expr;
  if (c === '*') return { kind: 'star' };
  if (c.endsWith('.*')) return { kind: 'star', qualifier: c.slice(0, -2) };
  return { kind: 'col', name: c };
}

function litName(v: unknown): string {
  if (v === null || v === undefined) return 'NULL';
  if (v instanceof Date) return `TIMESTAMP '${v.toISOString()}'`;
  return String(v);
}

/** The output name Spark gives an unaliased expression (`upper(name)`, `(a + 1)`). */
export function exprName(e: Expr): string {
  switch (e.kind) {
    case 'col':
      return e.name.includes('.') ? e.name.slice(e.name.lastIndexOf('.') + 1) : e.name;
    case 'star':
      return e.qualifier ? `${e.qualifier}.*` : '*';
    case 'lit':
      return litName(e.value);
    case 'alias':
      return e.name;
    case 'cast':
      return exprName(e.child);
    case 'binary':
      return `(${exprName(e.left)} ${e.op.toUpperCase()} ${exprName(e.right)})`;
    case 'not':
      return `(NOT ${exprName(e.child)})`;
    case 'neg':
      return `(- ${exprName(e.child)})`;
    case 'isNull':
      return `(${exprName(e.child)} IS ${e.negated ? 'NOT ' : ''}NULL)`;
    case 'in':
      return `(${exprName(e.child)} IN (${e.values.map(exprName).join(', ')}))`;
    case 'case':
      return `CASE ${e.branches.map(([c, v]) => `WHEN ${exprName(c)} THEN ${exprName(v)}`).join(' ')}${
        e.otherwise ? ` ELSE ${exprName(e.otherwise)}` : ''
      } END`;
    case 'field':
      return e.name;
    case 'fn':
      return `${e.name}(${e.args.map(exprName).join(', ')})`;
  }
}
