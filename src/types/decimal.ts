/**
 * The run-time value of Spark's `decimal(p,s)`: an exact decimal number, held as a `bigint` of its digits
 * (the unscaled value) and a scale. `12.30` is `Decimal.of(1230n, 2)`.
 *
 * Why not a JS number: a `decimal(38,18)` has 38 significant digits and a number has ~16, so sums of
 * money would drift and grouping keys could merge. Why not a library: what Spark needs of a decimal
 * value (parse, print, compare, rescale with HALF_UP, add, divide-and-round, two's complement bytes for
 * Avro) is a few lines over `bigint`, and no dependency has to agree with Spark's rounding and printing.
 * The decision is in docs/decisions.md ("Decimal values").
 *
 * A value keeps the scale it was made with: within a column every value has the column's scale (Avro
 * decoding and casts set it), so `12.30` prints as `12.30`, as Spark prints it.
 */
export class Decimal {
  private constructor(
    /** The digits without the decimal point, with the sign: `-1.50` → `-150n`. */
    readonly unscaled: bigint,
    /** Digits after the decimal point (0 or more). */
    readonly scale: number,
  ) {}

  /** `Decimal.of(1230n, 2)` is 12.30. A negative scale is folded into the digits (Spark keeps scale ≥ 0). */
  static of(unscaled: bigint | number, scale = 0): Decimal {
    if (!Number.isInteger(scale)) throw new RangeError(`Decimal scale must be an integer, got ${scale}`);
    let u = typeof unscaled === 'bigint' ? unscaled : BigInt(unscaled);
    if (scale < 0) {
      u *= pow10(-scale);
      scale = 0;
    }
    return new Decimal(u, scale);
  }

  /**
   * Parses `12.30`, `-0.5`, `+7`, `1.5e3`, `.25` (Spark's string-to-decimal cast accepts these); null for
   * anything else. The scale is the number of fraction digits written, less the exponent.
   */
  static parse(text: string): Decimal | null {
    const m = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(text.trim());
    if (!m) return null;
    const [, sign, int = '', frac = '', exp] = m;
    if (int === '' && frac === '') return null;
    const e = exp === undefined ? 0 : Number(exp);
    if (!Number.isSafeInteger(e)) return null;
    return Decimal.of(BigInt(`${sign}${int || '0'}${frac}`), frac.length - e);
  }

  /** The decimal a double casts to: its shortest round-trip digits (as Spark's `BigDecimal(double)`); null for NaN/±Infinity. */
  static fromNumber(n: number): Decimal | null {
    return Number.isFinite(n) ? Decimal.parse(String(n)) : null;
  }

  /**
   * A Decimal from what may stand for one: a Decimal; a `{ unscaled, scale }` object (a Decimal that lost its
   * class crossing a worker thread or a structured clone); a number, bigint or numeric string. Else null.
   */
  static from(v: unknown): Decimal | null {
    if (v instanceof Decimal) return v;
    if (v === null || v === undefined) return null;
    switch (typeof v) {
      case 'number':
        return Decimal.fromNumber(v);
      case 'bigint':
        return Decimal.of(v, 0);
      case 'string':
        return Decimal.parse(v);
      case 'boolean':
        return Decimal.of(v ? 1n : 0n, 0);
      case 'object': {
        const o = v as { unscaled?: unknown; scale?: unknown };
        if (typeof o.unscaled === 'bigint' && typeof o.scale === 'number') return Decimal.of(o.unscaled, o.scale);
        return null;
      }
      default:
        return null;
    }
  }

  /**
   * The value from Avro's decimal encoding: big-endian two's complement bytes of the unscaled value (the
   * same for `bytes` and `fixed`; a `fixed` is sign-extended to its size).
   */
  static fromTwosComplement(bytes: Uint8Array, scale: number): Decimal {
    if (bytes.length === 0) throw new RangeError('a decimal needs at least one byte');
    let u = BigInt('0x' + Buffer.from(bytes).toString('hex'));
    if (bytes[0]! & 0x80) u -= 1n << BigInt(8 * bytes.length);
    return Decimal.of(u, scale);
  }

  /**
   * Avro's decimal encoding of the unscaled value: the fewest big-endian two's complement bytes (as Java's
   * `BigInteger.toByteArray`), or exactly `size` bytes, sign-extended, for a `fixed`.
   */
  toTwosComplement(size?: number): Buffer {
    const u = this.unscaled;
    let n = 1;
    while (u < -(1n << BigInt(8 * n - 1)) || u >= 1n << BigInt(8 * n - 1)) n++;
    if (size !== undefined) {
      if (n > size) throw new RangeError(`${this.toPlainString()} needs ${n} bytes, but the fixed type has ${size}`);
      n = size;
    }
    const x = u < 0n ? (1n << BigInt(8 * n)) + u : u;
    return Buffer.from(x.toString(16).padStart(2 * n, '0'), 'hex');
  }

  /** Number of significant digits of the unscaled value (0 has 1), as Java's `BigDecimal.precision()`. */
  get precision(): number {
    return (this.unscaled < 0n ? -this.unscaled : this.unscaled).toString().length;
  }

  /** Whether the value fits `decimal(precision, scale)` at its own scale (no more than `precision` digits). */
  fits(precision: number): boolean {
    const a = this.unscaled < 0n ? -this.unscaled : this.unscaled;
    return a < pow10(precision);
  }

  /**
   * The same value at another scale: more digits are exact; fewer are rounded HALF_UP (away from zero at
   * .5), which is Spark's rounding when a decimal changes precision (`Decimal.changePrecision`).
   */
  rescale(scale: number): Decimal {
    if (scale === this.scale) return this;
    if (scale > this.scale) return Decimal.of(this.unscaled * pow10(scale - this.scale), scale);
    return Decimal.of(divHalfUp(this.unscaled, pow10(this.scale - scale)), scale);
  }

  /**
   * This value as a `decimal(precision, scale)` value: rounded HALF_UP to `scale`, or null if it then has
   * more than `precision` digits (Spark's non-ANSI cast gives null on overflow).
   */
  toPrecision(precision: number, scale: number): Decimal | null {
    const r = this.rescale(scale);
    return r.fits(precision) ? r : null;
  }

  /** The exact sum, at the larger of the two scales. */
  add(other: Decimal): Decimal {
    const s = Math.max(this.scale, other.scale);
    return Decimal.of(this.rescale(s).unscaled + other.rescale(s).unscaled, s);
  }

  /** Numeric order (12.3 and 12.30 are equal): negative, zero or positive. */
  compareTo(other: Decimal): number {
    const s = Math.max(this.scale, other.scale);
    const a = this.rescale(s).unscaled;
    const b = other.rescale(s).unscaled;
    return a < b ? -1 : a > b ? 1 : 0;
  }

  /** Numeric equality, as Spark's `Decimal.equals`: 12.3 equals 12.30. */
  equals(other: unknown): boolean {
    return other instanceof Decimal && this.compareTo(other) === 0;
  }

  /** The nearest double. */
  toNumber(): number {
    return Number(this.toPlainString());
  }

  /** All digits, never an exponent: `12.30`, `-0.05`, `0.00000001`. What `show()` prints (Spark's ToPrettyString). */
  toPlainString(): string {
    const neg = this.unscaled < 0n;
    const digits = (neg ? -this.unscaled : this.unscaled).toString();
    if (this.scale === 0) return (neg ? '-' : '') + digits;
    const padded = digits.padStart(this.scale + 1, '0');
    const cut = padded.length - this.scale;
    return `${neg ? '-' : ''}${padded.slice(0, cut)}.${padded.slice(cut)}`;
  }

  /**
   * Java's `BigDecimal.toString()`, which Spark's non-ANSI `CAST(d AS STRING)` and `to_json` use: plain,
   * unless the exponent would be below -6, then scientific (`1E-8`, `1.00E-8`, `0E-8`).
   */
  toString(): string {
    const neg = this.unscaled < 0n;
    const digits = (neg ? -this.unscaled : this.unscaled).toString();
    const adjusted = -this.scale + (digits.length - 1);
    if (this.scale === 0 || adjusted >= -6) return this.toPlainString();
    const mantissa = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    return `${neg ? '-' : ''}${mantissa}E${adjusted}`;
  }

  /** In JSON (rows written with JSON.stringify), a string with every digit: a JSON number would be read back as a double. */
  toJSON(): string {
    return this.toPlainString();
  }

  /** `+d` and `d < e` use the double; string contexts (and `d + e`, as for a Date) use the string. */
  [Symbol.toPrimitive](hint: string): string | number {
    return hint === 'number' ? this.toNumber() : this.toString();
  }
}

const POW10: bigint[] = [];
/** 10^n as a bigint (cached: rescaling asks for the same few powers for every row). */
export function pow10(n: number): bigint {
  if (n < 64) return (POW10[n] ??= 10n ** BigInt(n));
  return 10n ** BigInt(n);
}

/** a / b rounded HALF_UP (ties away from zero); b > 0. */
export function divHalfUp(a: bigint, b: bigint): bigint {
  const q = a / b; // truncates toward zero
  const r = a - q * b;
  const twice = (r < 0n ? -r : r) * 2n;
  if (twice >= b) return a < 0n ? q - 1n : q + 1n;
  return q;
}
