/**
 * Errors in SQL strings. Spark's ParseException prints the statement with dashes and carets under the
 * offending token; Sluice keeps the idea (the string, a caret under the position) but says in words
 * what was expected and what was found, and gives line and column counted from 1.
 */
import { AnalysisError } from '../expr/compile.js';

/** Where `offset` (0-based) is in `sql`: line and column counted from 1. */
export function lineAndColumn(sql: string, offset: number): { line: number; column: number } {
  const before = sql.slice(0, offset);
  const line = before.split('\n').length;
  const column = offset - (before.lastIndexOf('\n') + 1) + 1;
  return { line, column };
}

/** The line of `sql` holding `offset`, with a caret under it (tabs kept so the caret lines up). */
export function caretAt(sql: string, offset: number): string {
  const { line, column } = lineAndColumn(sql, offset);
  const text = sql.split('\n')[line - 1] ?? '';
  const pad = text.slice(0, column - 1).replace(/[^\t]/g, ' ');
  return `  ${text}\n  ${pad}^`;
}

/** Where in the string, for a message: `column 13`, or `line 2, column 5` when the string has several lines. */
export function where(sql: string, offset: number): string {
  const { line, column } = lineAndColumn(sql, offset);
  return sql.includes('\n') ? `line ${line}, column ${column}` : `column ${column}`;
}

/**
 * An error about a place in a SQL string: the message says what is wrong, where (line and column from 1),
 * and shows the string with a caret under that place. It is an AnalysisError: like every analysis error,
 * it is thrown before any query starts.
 */
export class SqlError extends AnalysisError {
  override name = 'SqlError';
  /** 1-based line and column of the position. */
  readonly line: number;
  readonly column: number;
  constructor(
    /** The whole SQL string. */
    readonly sql: string,
    /** 0-based offset in `sql` the message is about. */
    readonly position: number,
    /** What is wrong, in words (`expected ')' to close '(' at column 5, found end of input`). */
    readonly reason: string,
  ) {
    super(`${reason} (at ${where(sql, position)})\n\n${caretAt(sql, position)}\n`);
    ({ line: this.line, column: this.column } = lineAndColumn(sql, position));
  }
}

/** A SQL string that does not parse, as Spark's ParseException. */
export class ParseException extends SqlError {
  override name = 'ParseException';
}

/** A SQL string that parses, but asks for something Sluice does not do (a JOIN, an INSERT, …): the reason is given. */
export class UnsupportedSqlError extends SqlError {
  override name = 'UnsupportedSqlError';
}
