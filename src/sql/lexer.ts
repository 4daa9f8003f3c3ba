/**
 * Splits a SQL string into tokens, each with its offset so every error can point at it. Follows Spark's
 * lexer (SqlBaseLexer.g4) in its default mode: `'…'` and `"…"` are both string literals (with backslash
 * escapes), back-quotes quote identifiers, numbers take Spark's suffixes (`10L`, `1.5D`, …), and
 * `--` / `/* … *\/` are comments.
 */
import { ParseException } from './errors.js';

export type TokenKind =
  /** A word: a keyword or an identifier; the parser decides which from where it stands. */
  | 'word'
  /** A back-quoted identifier: never a keyword. */
  | 'quoted'
  | 'string'
  | 'number'
  /** `X'0A1B'` */
  | 'binary'
  | 'op'
  | 'eof';

export interface Token {
  readonly kind: TokenKind;
  /** The identifier, the string's value (escapes resolved), the operator, or the number's digits. */
  readonly text: string;
  /** Upper-case `text` of a word, for keyword checks. */
  readonly upper: string;
  /** Offset of the first character, and one past the last, in the SQL string. */
  readonly start: number;
  readonly end: number;
  /** Numbers: the suffix (`L`, `S`, `Y`, `D`, `F`, `BD`), upper case, or ''. */
  readonly suffix?: string;
}

// Longest first, so `<=>` is not read as `<=` then `>`. `->` and `=>` are lexed only to be refused by name.
const OPERATORS = ['<=>', '<>', '!=', '<=', '>=', '==', '||', '&&', '->', '=>', '::', '=', '<', '>', '+', '-', '*', '/', '%', '(', ')', '[', ']', ',', '.', ':', ';', '!', '~', '&', '|', '^', '{', '}'];

const ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', b: '\b', '0': '\0', Z: '\x1a' };

/** Tokenizes `sql`; the last token is always `eof`. */
export function tokenize(sql: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const n = sql.length;
  const fail = (at: number, why: string): never => {
    throw new ParseException(sql, at, why);
  };
  const push = (kind: TokenKind, text: string, start: number, end: number, suffix?: string): void => {
    tokens.push({ kind, text, upper: kind === 'word' ? text.toUpperCase() : text, start, end, ...(suffix !== undefined ? { suffix } : {}) });
  };
  const prevEndsValue = (): boolean => {
    const p = tokens[tokens.length - 1];
    return !!p && (p.kind === 'word' || p.kind === 'quoted' || (p.kind === 'op' && (p.text === ')' || p.text === ']')));
  };

  while (i < n) {
    const ch = sql[i]!;
    if (/\s/.test(ch)) {
      i++;
      continue;
    }
    if (sql.startsWith('--', i)) {
      while (i < n && sql[i] !== '\n') i++;
      continue;
    }
    if (sql.startsWith('/*', i)) {
      const close = sql.indexOf('*/', i + 2);
      if (close < 0) fail(i, 'this comment is not closed: expected */');
      i = close + 2;
      continue;
    }
    const start = i;
    // Strings: '…' or "…" (Spark's default: double quotes make strings, not identifiers); r'…' is raw.
    const raw = (ch === 'r' || ch === 'R') && (sql[i + 1] === "'" || sql[i + 1] === '"');
    if (ch === "'" || ch === '"' || raw) {
      if (raw) i++;
      const q = sql[i]!;
      i++;
      let text = '';
      for (;;) {
        if (i >= n) fail(start, `this string is not closed: expected ${q} before the end of the input`);
        const c = sql[i]!;
        if (c === q) {
          i++;
          break;
        }
        if (c === '\\' && !raw && i + 1 < n) {
          const e = sql[i + 1]!;
          if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(sql.slice(i + 2, i + 6))) {
            text += String.fromCharCode(parseInt(sql.slice(i + 2, i + 6), 16));
            i += 6;
            continue;
          }
          // Spark keeps `\%` and `\_` as written: they are LIKE-pattern escapes, not string escapes.
          text += e === '%' || e === '_' ? c + e : (ESCAPES[e] ?? e);
          i += 2;
          continue;
        }
        text += c;
        i++;
      }
      push('string', text, start, i);
      continue;
    }
    // Binary literal X'CAFE'.
    if ((ch === 'x' || ch === 'X') && sql[i + 1] === "'") {
      const close = sql.indexOf("'", i + 2);
      if (close < 0) fail(start, "this binary literal is not closed: expected '");
      const hex = sql.slice(i + 2, close);
      if (!/^([0-9a-fA-F]{2})*$/.test(hex)) fail(i + 2, 'expected pairs of hexadecimal digits in a binary literal');
      i = close + 1;
      push('binary', hex, start, i);
      continue;
    }
    // Numbers: 12, 1.5, .5, 1e3, with Spark's suffixes. `a.5` is not a number: a dot after a name is field access.
    if (/[0-9]/.test(ch) || (ch === '.' && /[0-9]/.test(sql[i + 1] ?? '') && !prevEndsValue())) {
      const m = /^(\d*\.?\d*)(?:[eE][+-]?\d+)?/.exec(sql.slice(i))!;
      i += m[0].length;
      const sm = /^(BD|[LSYDF])(?![A-Za-z0-9_])/i.exec(sql.slice(i));
      const suffix = sm ? sm[1]!.toUpperCase() : '';
      if (sm) i += sm[0].length;
      if (/[A-Za-z_]/.test(sql[i] ?? '')) {
        fail(i, `unexpected '${sql[i]}' after the number ${sql.slice(start, i)}: separate words with a space`);
      }
      push('number', m[0], start, i, suffix);
      continue;
    }
    if (/[\p{L}_]/u.test(ch)) {
      const m = /^[\p{L}_][\p{L}\p{N}_]*/u.exec(sql.slice(i))!;
      i += m[0].length;
      push('word', m[0], start, i);
      continue;
    }
    if (ch === '`') {
      let text = '';
      i++;
      for (;;) {
        if (i >= n) fail(start, 'this quoted name is not closed: expected `');
        if (sql[i] === '`') {
          if (sql[i + 1] === '`') {
            text += '`'; // `` inside back-quotes is one back-quote
            i += 2;
            continue;
          }
          i++;
          break;
        }
        text += sql[i];
        i++;
      }
      push('quoted', text, start, i);
      continue;
    }
    const op = OPERATORS.find((o) => sql.startsWith(o, i));
    if (!op) fail(i, `unexpected character '${ch}'`);
    i += op!.length;
    push('op', op!, start, i);
  }
  push('eof', '', n, n);
  return tokens;
}

/** How a token reads in a message: `')'`, `keyword FROM`, `end of input`. */
export function describeToken(t: Token): string {
  switch (t.kind) {
    case 'eof':
      return 'end of input';
    case 'string':
      return `the string '${t.text}'`;
    case 'quoted':
      return `\`${t.text}\``;
    case 'number':
      return `the number ${t.text}${t.suffix ?? ''}`;
    case 'binary':
      return `X'${t.text}'`;
    default:
      return `'${t.text}'`;
  }
}
