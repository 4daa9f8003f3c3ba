/**
 * A hand-written Pratt parser for Spark SQL's expression grammar (SqlBaseParser.g4's `expression` and
 * `namedExpression`), producing Sluice's expression tree: the same `Expr` the column functions build, so a
 * plan is one plan whichever way it was written (docs/decisions.md, "SQL strings", says why hand-written).
 *
 * Operator precedence, loosest first, as in Spark: OR; AND; NOT; predicates (IS [NOT] NULL, [NOT] IN,
 * [NOT] BETWEEN, [NOT] LIKE/RLIKE); comparisons; + - ||; * / %; unary - +; then `x[i]` and `x.field`.
 */
import { CalendarInterval, addIntervals, intervalOf, intervalUnit, parseInterval } from '../expr/interval.js';
import type { Expr } from '../expr/column.js';
import type { SqlCall } from '../expr/compile.js';
import { formatDate, parseTimestamp } from '../expr/values.js';
import { DataType, LongType, ShortType, ByteType, DoubleType, FloatType, DateType, parseDataType } from '../types/index.js';
import { ParseException, UnsupportedSqlError, where } from './errors.js';
import { sqlCall } from './functions.js';
import { Token, describeToken, tokenize } from './lexer.js';

/**
 * Words that cannot be a column name or an alias without back-quotes: they end or continue an
 * expression (FROM, AND, …). Other keywords (`date`, `timestamp`, `window`, `key`, `value`, `offset`, `user`, …)
 * are common column names, so they are names wherever a name fits, as in Spark (a Kafka row has `offset`).
 */
const RESERVED = new Set(
  (
    'ALL AND ANTI ANY AS ASC BETWEEN BY CASE CAST CLUSTER CROSS DESC DISTINCT DISTRIBUTE DIV ELSE END ESCAPE EXCEPT ' +
    'EXISTS FALSE FETCH FROM FULL GROUP HAVING ILIKE IN INNER INTERSECT IS JOIN LATERAL LEFT LIKE LIMIT MINUS NATURAL ' +
    'NOT NULL ON OR ORDER OUTER OVER PIVOT QUALIFY REGEXP RIGHT RLIKE SELECT SEMI SOME SORT TABLESAMPLE THEN ' +
    'TRUE UNION UNPIVOT USING WHEN WHERE WITH'
  ).split(' '),
);

/** Binding powers: an infix operator binds its left operand if its power is above the caller's. */
const BP = { or: 10, and: 20, not: 25, predicate: 30, comparison: 40, additive: 70, multiplicative: 80, unary: 90, postfix: 100 } as const;

const COMPARISONS: Record<string, Extract<Expr, { kind: 'binary' }>['op']> = {
  '=': '=', '==': '=', '!=': '!=', '<>': '!=', '<': '<', '<=': '<=', '>': '>', '>=': '>=', '<=>': '<=>',
};

const PREDICATE_WORDS = new Set(['IN', 'BETWEEN', 'LIKE', 'RLIKE', 'REGEXP', 'ILIKE']);

/**
 * The parser over one SQL string. Expressions come out as `Expr`; `positions` remembers where each node
 * started, so later checks (a column that is not grouped, …) can point at it too.
 */
export class Parser {
  readonly tokens: Token[];
  private i = 0;
  /** Start offset of each node this parser built. */
  readonly positions = new WeakMap<object, number>();

  constructor(readonly sql: string) {
    this.tokens = tokenize(sql);
  }

  // ------------------------------------------------------------ tokens

  peek(k = 0): Token {
    return this.tokens[Math.min(this.i + k, this.tokens.length - 1)]!;
  }
  next(): Token {
    const t = this.peek();
    if (t.kind !== 'eof') this.i++;
    return t;
  }
  /** Is the token at `k` the (unquoted) word `word`? */
  isWord(word: string, k = 0): boolean {
    const t = this.peek(k);
    return t.kind === 'word' && t.upper === word;
  }
  acceptWord(word: string): Token | undefined {
    return this.isWord(word) ? this.next() : undefined;
  }
  expectWord(word: string, context = ''): Token {
    return this.acceptWord(word) ?? this.fail(`${word}${context}`);
  }
  isOp(op: string, k = 0): boolean {
    const t = this.peek(k);
    return t.kind === 'op' && t.text === op;
  }
  acceptOp(op: string): Token | undefined {
    return this.isOp(op) ? this.next() : undefined;
  }
  expectOp(op: string, context = ''): Token {
    return this.acceptOp(op) ?? this.fail(`'${op}'${context}`);
  }

  /** Throws "expected X, found Y" at the current token. */
  fail(expected: string, at: Token = this.peek()): never {
    const found = at.kind === 'word' && RESERVED.has(at.upper) ? `the keyword ${at.upper}` : describeToken(at);
    throw new ParseException(this.sql, at.start, `Syntax error: expected ${expected}, found ${found}`);
  }
  /** Throws `reason` at offset `pos`. */
  error(pos: number, reason: string): never {
    throw new ParseException(this.sql, pos, reason);
  }
  /** Throws "Sluice cannot run this" at offset `pos`, with the reason. */
  unsupported(pos: number, reason: string): never {
    throw new UnsupportedSqlError(this.sql, pos, reason);
  }
  /** `(at column 5)` for messages that mention a second place. */
  whereIs(pos: number): string {
    return where(this.sql, pos);
  }

  /** Requires the end of the string (a trailing `;` is allowed); `what` names what was parsed, for the message. */
  end(what: string): void {
    this.acceptOp(';');
    if (this.peek().kind !== 'eof') this.fail(`the end of ${what}`);
  }

  private at<E extends Expr>(e: E, pos: number): E {
    this.positions.set(e, pos);
    return e;
  }

  /** Where node `e` started, if this parser built it. */
  positionOf(e: Expr): number | undefined {
    return this.positions.get(e);
  }

  // ------------------------------------------------------------ names

  /** Is the token a name (a non-reserved word or a back-quoted name)? */
  isName(k = 0): boolean {
    const t = this.peek(k);
    return t.kind === 'quoted' || (t.kind === 'word' && !RESERVED.has(t.upper));
  }
  /** A name; `what` says what it names, for the message. */
  name(what: string): string {
    const t = this.peek();
    if (this.isName()) return this.next().text;
    if (t.kind === 'word') this.error(t.start, `Syntax error: ${t.upper} is a keyword; to use it as ${what}, quote it: \`${t.text}\``);
    return this.fail(what);
  }

  // ------------------------------------------------------------ expressions

  /** An expression with an optional alias (`expr AS name`, `expr name`), as in a SELECT list or `expr()`. */
  namedExpression(): Expr {
    const start = this.peek().start;
    const e = this.expression();
    let alias: string | undefined;
    if (this.acceptWord('AS')) {
      if (this.isOp('(')) this.unsupported(this.peek().start, 'Aliases for several columns (AS (a, b)) are not supported: Sluice has no generator functions yet');
      alias = this.name('an alias after AS');
    } else if (this.isName()) {
      alias = this.next().text;
    }
    if (alias === undefined) return e;
    if (e.kind === 'star') this.error(start, `Syntax error: ${e.qualifier ? `${e.qualifier}.*` : '*'} cannot have an alias`);
    return this.at({ kind: 'alias', child: e, name: alias }, start);
  }

  /** An expression whose operators bind tighter than `minBp` (Pratt's loop). */
  expression(minBp = 0): Expr {
    const start = this.peek().start;
    let left = this.prefix();
    for (;;) {
      const t = this.peek();
      if (t.kind === 'op') {
        const cmp = COMPARISONS[t.text];
        if (cmp) {
          if (BP.comparison <= minBp) break;
          this.next();
          const right = this.operand(BP.comparison, t);
          left = this.at({ kind: 'binary', op: cmp, left, right }, start);
          continue;
        }
        if (t.text === '+' || t.text === '-' || t.text === '||') {
          if (BP.additive <= minBp) break;
          this.next();
          const right = this.operand(BP.additive, t);
          left =
            t.text === '||'
              ? this.at({ kind: 'fn', name: 'concat', args: [left, right] }, start)
              : this.at({ kind: 'binary', op: t.text, left, right }, start);
          continue;
        }
        if (t.text === '*' || t.text === '/' || t.text === '%') {
          if (BP.multiplicative <= minBp) break;
          this.next();
          const right = this.operand(BP.multiplicative, t);
          left = this.at({ kind: 'binary', op: t.text, left, right }, start);
          continue;
        }
        if (t.text === '[') {
          left = this.subscript(left, start);
          continue;
        }
        if (t.text === '.') {
          // Field of a computed struct (`from_json(v, 's')`.a) — names like a.b.c were read as one name.
          this.next();
          // As in a.b.c, any word is a field name after a dot (`….end`).
          const f = this.peek();
          if (f.kind !== 'word' && f.kind !== 'quoted') this.fail('a field name after .');
          left = this.at({ kind: 'field', child: left, name: this.next().text }, start);
          continue;
        }
        if (t.text === '&' || t.text === '|' || t.text === '^') this.unsupported(t.start, `The bitwise operator ${t.text} is not in Sluice yet`);
        if (t.text === '::') this.unsupported(t.start, 'The :: cast is Spark 4 syntax; write CAST(x AS type)');
        if (t.text === '&&') this.error(t.start, 'Syntax error: SQL writes AND, not &&');
        break;
      }
      if (t.kind !== 'word') break;
      if (t.upper === 'AND' || t.upper === 'OR') {
        const bp = t.upper === 'AND' ? BP.and : BP.or;
        if (bp <= minBp) break;
        this.next();
        const right = this.operand(bp, t);
        left = this.at({ kind: 'binary', op: t.upper === 'AND' ? 'and' : 'or', left, right }, start);
        continue;
      }
      const negated = t.upper === 'NOT' && this.peek(1).kind === 'word' && PREDICATE_WORDS.has(this.peek(1).upper);
      if (t.upper === 'IS' || PREDICATE_WORDS.has(t.upper) || negated) {
        if (BP.predicate <= minBp) break;
        left = this.predicate(left, start);
        continue;
      }
      if (t.upper === 'DIV') this.unsupported(t.start, 'Integer division (DIV) is not in Sluice yet; write floor(a / b)');
      break;
    }
    return left;
  }

  /** The right operand of an infix operator `op`. */
  private operand(bp: number, op: Token): Expr {
    // A bare * is a star only where a list of columns fits (SELECT *, count(*)), never an operand.
    if (this.peek().kind === 'eof' || this.isOp('*')) this.fail(`an expression after ${op.kind === 'word' ? op.upper : `'${op.text}'`}`);
    return this.expression(bp);
  }

  private predicate(left: Expr, start: number): Expr {
    if (this.acceptWord('IS')) {
      const not = !!this.acceptWord('NOT');
      if (this.acceptWord('NULL') || this.acceptWord('UNKNOWN')) return this.at({ kind: 'isNull', child: left, negated: not }, start);
      const tf = this.acceptWord('TRUE') ?? this.acceptWord('FALSE');
      if (tf) {
        // x IS TRUE is never null: x <=> true.
        const e = this.at({ kind: 'binary', op: '<=>', left, right: { kind: 'lit', value: tf.upper === 'TRUE' } }, start);
        return not ? this.at({ kind: 'not', child: e }, start) : e;
      }
      if (this.acceptWord('DISTINCT')) {
        this.expectWord('FROM', ' after IS [NOT] DISTINCT');
        const right = this.expression(BP.predicate);
        const same = this.at({ kind: 'binary', op: '<=>', left, right }, start);
        return not ? same : this.at({ kind: 'not', child: same }, start);
      }
      return this.fail(`NULL, NOT NULL, TRUE, FALSE or DISTINCT FROM after IS${not ? ' NOT' : ''}`);
    }
    const not = !!this.acceptWord('NOT');
    const t = this.next();
    let e: Expr;
    switch (t.upper) {
      case 'IN': {
        const open = this.expectOp('(', ' after IN');
        if (this.isWord('SELECT') || this.isWord('WITH')) {
          this.unsupported(this.peek().start, 'Subqueries (IN (SELECT …)) are not supported: make the inner query a temp view and join it: ' +
              '`FROM a LEFT SEMI JOIN v ON a.x = v.y` keeps the rows of a that are IN it (NOT IN: LEFT ANTI JOIN)');
        }
        const values: Expr[] = [];
        if (!this.isOp(')')) {
          do values.push(this.expression()); while (this.acceptOp(','));
        }
        if (!this.acceptOp(')')) this.fail(`',' or ')' to close the IN list opened at ${this.whereIs(open.start)}`);
        if (!values.length) this.error(open.start, 'Syntax error: IN () needs at least one value');
        e = this.at({ kind: 'in', child: left, values }, start);
        break;
      }
      case 'BETWEEN': {
        // x BETWEEN lo AND hi is x >= lo AND x <= hi, as Column.between() builds it.
        const lo = this.expression(BP.predicate);
        this.expectWord('AND', ` in ${t.upper} … AND …`);
        const hi = this.expression(BP.predicate);
        e = this.at(
          { kind: 'binary', op: 'and', left: { kind: 'binary', op: '>=', left, right: lo }, right: { kind: 'binary', op: '<=', left, right: hi } },
          start,
        );
        break;
      }
      case 'LIKE':
      case 'RLIKE':
      case 'REGEXP': {
        if (this.isWord('ANY') || this.isWord('ALL') || this.isWord('SOME')) this.unsupported(this.peek().start, `${t.upper} ${this.peek().upper} (…) is not in Sluice yet; combine several ${t.upper}s with OR / AND`);
        const pattern = this.expression(BP.predicate);
        if (this.isWord('ESCAPE')) this.unsupported(this.peek().start, 'LIKE … ESCAPE is not in Sluice yet; the escape character is \\ (as Spark\'s default)');
        e = this.at({ kind: 'fn', name: t.upper === 'LIKE' ? 'like' : 'rlike', args: [left, pattern] }, start);
        break;
      }
      default: // ILIKE
        return this.unsupported(t.start, 'ILIKE is not in Sluice yet; write lower(x) LIKE lower(pattern)');
    }
    return not ? this.at({ kind: 'not', child: e }, start) : e;
  }

  /** `x[i]` / `m['key']`: an array element (0-based) or a map value, as Column.getItem(). */
  private subscript(left: Expr, start: number): Expr {
    const open = this.next();
    const key = this.expression();
    if (!this.acceptOp(']')) this.fail(`']' to close the '[' at ${this.whereIs(open.start)}`);
    if (key.kind !== 'lit' || (typeof key.value !== 'string' && typeof key.value !== 'number')) {
      this.unsupported(open.start + 1, 'Sluice reads x[key] only with a literal key (a number or a string)');
    }
    return this.at({ kind: 'fn', name: 'get_item', args: [left, key] }, start);
  }

  /** What can start an expression. */
  private prefix(): Expr {
    const t = this.peek();
    const start = t.start;
    switch (t.kind) {
      case 'number':
        this.next();
        return this.number(t, false);
      case 'string': {
        // Adjacent strings are one ('a' 'b' is 'ab'), as in Spark.
        let text = this.next().text;
        while (this.peek().kind === 'string') text += this.next().text;
        return this.at({ kind: 'lit', value: text }, start);
      }
      case 'binary':
        this.next();
        return this.at({ kind: 'lit', value: Buffer.from(t.text, 'hex') }, start);
      case 'quoted':
        return this.nameOrCall();
      case 'eof':
        return this.fail('an expression');
      case 'op':
        return this.prefixOperator(t);
      case 'word':
        break;
    }
    switch (t.upper) {
      case 'NULL':
        this.next();
        return this.at({ kind: 'lit', value: null }, start);
      case 'TRUE':
      case 'FALSE':
        this.next();
        return this.at({ kind: 'lit', value: t.upper === 'TRUE' }, start);
      case 'NOT': {
        this.next();
        return this.at({ kind: 'not', child: this.operand(BP.not, t) }, start);
      }
      case 'CASE':
        return this.caseWhen();
      case 'CAST':
        return this.cast();
      case 'EXISTS':
        return this.unsupported(start, 'Subqueries (EXISTS) are not supported: make the inner query a temp view and join it: ' +
            '`FROM a LEFT SEMI JOIN v ON <condition>` keeps the rows for which one EXISTS (NOT EXISTS: LEFT ANTI JOIN)');
      case 'INTERVAL':
        if (this.peek(1).kind === 'number' || this.peek(1).kind === 'string' || this.isOp('-', 1) || this.isOp('+', 1)) return this.interval();
        break;
      case 'TIMESTAMP':
      case 'TIMESTAMP_LTZ':
      case 'TIMESTAMP_NTZ':
      case 'DATE':
        if (this.peek(1).kind === 'string') return this.typedLiteral();
        break;
      case 'TRY_CAST':
        // Sluice's casts are Spark's non-ANSI ones: a value that does not convert is null, as TRY_CAST promises.
        if (this.isOp('(', 1)) return this.cast();
        break;
    }
    if (RESERVED.has(t.upper)) return this.fail('an expression');
    return this.nameOrCall();
  }

  private prefixOperator(t: Token): Expr {
    const start = t.start;
    switch (t.text) {
      case '(': {
        this.next();
        if (this.isWord('SELECT') || this.isWord('WITH')) {
          this.unsupported(this.peek().start, 'Subqueries are not supported: make the inner query a temp view, and select from it or JOIN it');
        }
        const e = this.expression();
        if (this.isOp(',')) this.unsupported(this.peek().start, 'Row values (a, b, …) are not supported; use struct(a, b, …)');
        if (!this.acceptOp(')')) this.fail(`')' to close the '(' at ${this.whereIs(start)}`);
        return e;
      }
      case '*':
        this.next();
        return this.at({ kind: 'star' }, start);
      case '-': {
        this.next();
        // -1 is the literal -1 (Spark's grammar reads a signed number as one literal).
        if (this.peek().kind === 'number') return this.number(this.next(), true, start);
        return this.at({ kind: 'neg', child: this.operand(BP.unary, t) }, start);
      }
      case '+':
        this.next();
        return this.operand(BP.unary, t);
      case '!':
        this.next();
        return this.at({ kind: 'not', child: this.operand(BP.not, t) }, start);
      case '~':
        return this.unsupported(start, 'The bitwise operator ~ is not in Sluice yet');
      default:
        return this.fail('an expression');
    }
  }

  /**
   * A number literal with Spark's types: an integer is int (bigint when it does not fit), `L` bigint,
   * `S` smallint, `Y` tinyint; a decimal or exponent is a double (Sluice has no decimal type); `D` / `F`
   * double / float. A typed value that a JS number would type otherwise is wrapped in a cast.
   */
  private number(t: Token, negative: boolean, start = t.start): Expr {
    let value = Number(t.text);
    if (negative) value = -value;
    const fractional = /[.eE]/.test(t.text);
    const suffix = t.suffix ?? '';
    const typed: Record<string, DataType> = { L: LongType, S: ShortType, Y: ByteType, D: DoubleType, F: FloatType, BD: DoubleType };
    let to: DataType | undefined = typed[suffix];
    if (['L', 'S', 'Y'].includes(suffix) && fractional) this.error(t.start, `Syntax error: ${t.text}${suffix} is not a whole number`);
    if (!to && fractional && Number.isInteger(value)) to = DoubleType; // 1.0 is not the int 1
    if (to === DoubleType && !Number.isInteger(value)) to = undefined; // lit(1.5) is already a double
    const lit: Expr = this.at({ kind: 'lit', value }, start);
    return to ? this.at({ kind: 'cast', child: lit, to }, start) : lit;
  }

  /** `TIMESTAMP '2025-01-01 12:00:00'`, `DATE '2025-01-01'`. */
  private typedLiteral(): Expr {
    const kw = this.next();
    const s = this.next();
    // parseTimestamp lets Date.UTC roll 2025-02-30 over to March; a literal must name a real day.
    const day = /^\s*(\d{4})-(\d{1,2})-(\d{1,2})/.exec(s.text);
    const real = day && realDay(Number(day[1]), Number(day[2]), Number(day[3]));
    if (kw.upper === 'DATE') {
      if (!real || !/^\s*\d{4}-\d{1,2}-\d{1,2}\s*$/.test(s.text)) this.error(s.start, `Syntax error: '${s.text}' is not a date; write DATE 'yyyy-MM-dd'`);
      // A date value is its 'yyyy-MM-dd' string (types/index.ts): lit('2025-01-01').cast('date').
      return this.at({ kind: 'cast', child: this.at({ kind: 'lit', value: formatDate(parseTimestamp(s.text)!) }, s.start), to: DateType }, kw.start);
    }
    const ts = real ? parseTimestamp(s.text) : null;
    if (!ts) this.error(s.start, `Syntax error: '${s.text}' is not a timestamp; write TIMESTAMP 'yyyy-MM-dd HH:mm:ss' (optionally with .SSS and a zone such as Z or +02:00)`);
    return this.at({ kind: 'lit', value: ts }, kw.start);
  }

  /**
   * `INTERVAL 1 HOUR`, `interval 10 minutes`, `INTERVAL 1 DAY 2 HOURS`, `INTERVAL '1' HOUR`,
   * `INTERVAL -5 SECONDS`, `INTERVAL '1 hour 30 minutes'`: a CalendarInterval literal, as `interval('…')`.
   */
  private interval(): Expr {
    const kw = this.next();
    // The whole interval in one string, with no unit after it.
    if (this.peek().kind === 'string' && !this.isUnit(1)) {
      const s = this.next();
      try {
        return this.at({ kind: 'lit', value: parseInterval(s.text) }, kw.start);
      } catch (e) {
        return this.error(s.start, `Syntax error: ${(e as Error).message}`);
      }
    }
    let total: CalendarInterval | undefined;
    do {
      const amountAt = this.peek();
      const sign = this.acceptOp('-') ? -1 : (this.acceptOp('+'), 1);
      const a = this.peek();
      if (a.kind !== 'number' && a.kind !== 'string') this.fail('a number after INTERVAL, as in INTERVAL 10 MINUTES');
      if (a.kind === 'string' && !/^\s*[+-]?\d+(\.\d+)?\s*$/.test(a.text)) this.error(a.start, `Syntax error: '${a.text}' is not a number of units`);
      const amount = sign * Number(a.text.trim());
      this.next();
      const unit = this.peek();
      if (!this.isUnit()) this.fail('an interval unit (YEAR, MONTH, WEEK, DAY, HOUR, MINUTE, SECOND, MILLISECOND, MICROSECOND)');
      this.next();
      if (this.isWord('TO')) this.unsupported(this.peek().start, `Interval ranges (${unit.upper} TO …) are not in Sluice yet; write INTERVAL '1 hour 30 minutes' or INTERVAL 1 HOUR 30 MINUTES`);
      let part: CalendarInterval;
      try {
        part = intervalOf(amount, unit.text);
      } catch (e) {
        return this.error(amountAt.start, `Syntax error: ${(e as Error).message}`);
      }
      total = total ? addIntervals(total, part) : part;
    } while (this.moreIntervalParts());
    return this.at({ kind: 'lit', value: total }, kw.start);
  }

  /** After `INTERVAL 1 HOUR`: does another `[-]amount unit` follow (`30 MINUTES`)? */
  private moreIntervalParts(): boolean {
    const signed = this.isOp('-') || this.isOp('+') ? 1 : 0;
    const a = this.peek(signed);
    return (a.kind === 'number' || a.kind === 'string') && this.isUnit(signed + 1);
  }

  private isUnit(k = 0): boolean {
    const t = this.peek(k);
    return t.kind === 'word' && intervalUnit(t.text) !== undefined;
  }

  /** CASE WHEN c THEN v … [ELSE v] END, and CASE x WHEN v THEN r … END (x = v as conditions). */
  private caseWhen(): Expr {
    const kw = this.next();
    const operand = this.isWord('WHEN') ? undefined : this.expression();
    const branches: Array<[Expr, Expr]> = [];
    while (this.acceptWord('WHEN')) {
      const w = this.expression();
      this.expectWord('THEN', ' after CASE … WHEN condition');
      const v = this.expression();
      branches.push([operand ? { kind: 'binary', op: '=', left: operand, right: w } : w, v]);
    }
    if (!branches.length) this.fail('WHEN after CASE');
    const otherwise = this.acceptWord('ELSE') ? this.expression() : undefined;
    if (!this.acceptWord('END')) this.fail(`${otherwise ? '' : 'WHEN, ELSE or '}END to close the CASE at ${this.whereIs(kw.start)}`);
    return this.at(otherwise ? { kind: 'case', branches, otherwise } : { kind: 'case', branches }, kw.start);
  }

  /** CAST(x AS type): the type is Spark's type syntax, read by types/index.ts's parseDataType. */
  private cast(): Expr {
    const kw = this.next();
    const open = this.expectOp('(', ` after ${kw.upper}`);
    const child = this.expression();
    this.expectWord('AS', ` in ${kw.upper}(… AS type)`);
    const typeStart = this.peek();
    // The type runs to the ')' that closes CAST( — decimal(10, 2) has its own parentheses.
    let depth = 0;
    let j = this.i;
    for (;; j++) {
      const t = this.tokens[j]!;
      if (t.kind === 'eof') {
        this.i = j;
        this.fail(`')' to close the ${kw.upper}( at ${this.whereIs(open.start)}`);
      }
      if (t.kind === 'op' && t.text === '(') depth++;
      if (t.kind === 'op' && t.text === ')') {
        if (depth === 0) break;
        depth--;
      }
    }
    const close = this.tokens[j]!;
    const text = this.sql.slice(typeStart.start, close.start);
    if (!text.trim()) this.fail('a type (STRING, INT, TIMESTAMP, ARRAY<…>, STRUCT<…>, MAP<…, …>)', typeStart);
    let to: DataType;
    try {
      if (/^\s*[`\w]+\s*:?\s+\S/.test(text) && !/^\s*(struct|array|map)\s*</i.test(text)) throw new Error('expected one type, not a list of fields at position 0.');
      to = parseDataType(text);
    } catch (e) {
      // SchemaError says "… at position N" within the type text; point there in the whole string.
      const m = /: (.*) at position (\d+)\./.exec((e as Error).message) ?? /(.*) at position (\d+)\./.exec((e as Error).message);
      const why = m ? m[1]! : (e as Error).message;
      this.error(typeStart.start + (m ? Number(m[2]) : 0), `Syntax error in the type of ${kw.upper}: ${why} (Spark's type syntax: STRING, BIGINT, ARRAY<STRING>, STRUCT<a: INT, b: STRING>, MAP<STRING, INT>)`);
    }
    this.i = j + 1;
    return this.at({ kind: 'cast', child, to: to! }, kw.start);
  }

  /** A column name (`a`, `a.b.c`, `` `a b`.c ``), a star (`s.*`), or a function call `f(…)`. */
  private nameOrCall(): Expr {
    const first = this.next();
    const start = first.start;
    if (this.isOp('(')) return this.call(first);
    // current_timestamp and current_date are also written without parentheses.
    if (first.kind === 'word' && (first.upper === 'CURRENT_TIMESTAMP' || first.upper === 'CURRENT_DATE')) {
      return this.at({ kind: 'fn', name: first.text.toLowerCase(), args: [] }, start);
    }
    const parts = [first.text];
    while (this.isOp('.') && (this.isName(1) || this.peek(1).kind === 'word' || this.isOp('*', 1))) {
      this.next();
      if (this.acceptOp('*')) return this.at({ kind: 'star', qualifier: joinName(parts) }, start);
      // After a dot any word is a field name: window.end, s.from.
      const part = this.next();
      if (this.isOp('(')) this.unsupported(part.start, `Qualified function names (${parts.join('.')}.${part.text}(…)) are not supported; call ${part.text}(…)`);
      parts.push(part.text);
    }
    return this.at({ kind: 'col', name: joinName(parts) }, start);
  }

  /** `name(args…)`, `count(*)`, `count(DISTINCT x)`; the node comes from the function's definition. */
  private call(nameTok: Token): Expr {
    const open = this.next();
    const distinct = !!this.acceptWord('DISTINCT');
    if (!distinct) this.acceptWord('ALL');
    const args: Expr[] = [];
    const argPos: number[] = [];
    if (!this.isOp(')')) {
      do {
        argPos.push(this.peek().start);
        if (this.isOp('=>', 1)) this.unsupported(this.peek().start, 'Named arguments (name => value) are not in Sluice yet; pass arguments by position');
        args.push(this.expression());
      } while (this.acceptOp(','));
    }
    if (!this.acceptOp(')')) this.fail(`',' or ')' to close ${nameTok.text}( at ${this.whereIs(open.start)}`);
    if (this.isWord('OVER')) {
      this.unsupported(this.peek().start, 'Window functions (OVER) are not supported on streams (Spark refuses them too); for time windows, GROUP BY window(ts, \'5 minutes\')');
    }
    if (this.isWord('FILTER') && this.isOp('(', 1)) this.unsupported(this.peek().start, 'Aggregate FILTER (WHERE …) is not in Sluice yet; write sum(CASE WHEN cond THEN x END)');
    const self = this;
    const site: SqlCall = {
      name: nameTok.text,
      args,
      fail(message: string, argIndex?: number): never {
        const pos = argIndex !== undefined && argPos[argIndex] !== undefined ? argPos[argIndex]! : nameTok.start;
        throw new ParseException(self.sql, pos, `${nameTok.text}(): ${message}`);
      },
      literal<T extends string | number>(i: number, what: string, type: 'string' | 'number'): T {
        let e = args[i];
        if (e?.kind === 'cast' && e.child.kind === 'lit') e = e.child; // 10L
        if (!e || e.kind !== 'lit' || typeof e.value !== type) return this.fail(`${what} must be a ${type} literal`, i);
        return e.value as T;
      },
    };
    return this.at(sqlCall(site, distinct), nameTok.start);
  }
}

/** Is y-m-d a day of the calendar (not 2025-02-30)? */
function realDay(y: number, m: number, d: number): boolean {
  const t = new Date(Date.UTC(y, m - 1, d));
  return t.getUTCFullYear() === y && t.getUTCMonth() === m - 1 && t.getUTCDate() === d;
}

/** `a`, `b` → `a.b`; a part with a dot in it keeps its back-quotes (`` `a.b`.c ``), as col() reads names. */
function joinName(parts: string[]): string {
  return parts.map((p) => (p.includes('.') ? '`' + p + '`' : p)).join('.');
}

/** Parses one expression, with an optional alias (`count(*) AS n`), as Spark's `expr()` does. */
export function parseNamedExpression(sql: string): Expr {
  const p = new Parser(sql);
  const e = p.namedExpression();
  p.end('the expression');
  return e;
}

/** Parses one expression without an alias (a filter condition). */
export function parseExpression(sql: string): Expr {
  const p = new Parser(sql);
  const e = p.expression();
  if (p.isWord('AS') || p.isName()) p.fail('the end of the condition (an alias has no meaning here)');
  p.end('the expression');
  return e;
}
