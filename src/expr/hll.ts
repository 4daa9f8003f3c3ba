/**
 * HyperLogLog (Flajolet et al.) with HLL++'s small-range correction (linear counting), for
 * approx_count_distinct. Registers are a Buffer (one byte each), so the sketch is stored in state as is.
 * Hash: MurmurHash3 x86_32 of the value's string form (32-bit: fine below ~10^8 distinct values).
 * HLL++'s empirical bias-correction tables are not used; the standard error is 1.04/√m.
 */
import { castToString } from './values.js';

/** Spark's choice of precision for a relative standard deviation (HyperLogLogPlusPlus). */
export function relativeSdToPrecision(rsd: number): number {
  if (!(rsd > 0 && rsd < 1)) throw new RangeError(`approx_count_distinct: rsd must be between 0 and 1, got ${rsd}.`);
  const p = Math.ceil((2 * Math.log(1.106 / rsd)) / Math.log(2));
  if (p < 4) throw new RangeError(`approx_count_distinct: rsd ${rsd} is too large (at most 0.39).`);
  return Math.min(p, 16);
}

function murmur3(s: string, seed = 0x9747b28c): number {
  const data = Buffer.from(s, 'utf8');
  let h = seed >>> 0;
  const n = data.length;
  const blocks = n >> 2;
  for (let i = 0; i < blocks; i++) {
    let k = data.readUInt32LE(i * 4);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) >>> 0;
  }
  const tail = blocks * 4;
  const rem = n & 3;
  if (rem > 0) {
    let k = 0;
    if (rem === 3) k ^= data[tail + 2]! << 16;
    if (rem >= 2) k ^= data[tail + 1]! << 8;
    k ^= data[tail]!;
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
  }
  h ^= n;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** An empty sketch with 2^p registers. */
export function hllEmpty(p: number): Buffer {
  return Buffer.alloc(1 << p);
}

export function hllAdd(registers: Buffer, value: unknown): void {
  const p = Math.log2(registers.length);
  const h = murmur3(castToString(value) ?? '');
  const idx = h >>> (32 - p);
  const rest = (h << p) >>> 0;
  // rank = position of the first 1-bit in the remaining 32-p bits (1-based)
  const rank = rest === 0 ? 32 - p + 1 : Math.clz32(rest) + 1;
  if (rank > registers[idx]!) registers[idx] = rank;
}

/** The union of two sketches of the same precision: register-wise max (into `a`). */
export function hllMerge(a: Buffer, b: Buffer): Buffer {
  for (let i = 0; i < a.length; i++) if (b[i]! > a[i]!) a[i] = b[i]!;
  return a;
}

export function hllEstimate(registers: Buffer): number {
  const m = registers.length;
  const alpha = m === 16 ? 0.673 : m === 32 ? 0.697 : m === 64 ? 0.709 : 0.7213 / (1 + 1.079 / m);
  let sum = 0;
  let zeros = 0;
  for (const r of registers) {
    sum += 2 ** -r;
    if (r === 0) zeros++;
  }
  const e = (alpha * m * m) / sum;
  if (e <= 2.5 * m && zeros > 0) return Math.round(m * Math.log(m / zeros)); // linear counting
  const two32 = 2 ** 32;
  if (e > two32 / 30) return Math.round(-two32 * Math.log(1 - e / two32));
  return Math.round(e);
}
