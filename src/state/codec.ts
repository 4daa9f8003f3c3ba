import { Decimal, MicrosDate } from '../types/index.js';

/**
 * JSON for state files and state keys, keeping the types JSON loses: Date → {"$d": ms}, Buffer → {"$b": base64},
 * a timestamp with microseconds → {"$d": ms, "$us": 0–999}, Decimal → {"$dec": "12.30"} (every digit and the
 * scale, so a state key or a sum read back is the same decimal, exactly), NaN/±Infinity → {"$n": "NaN"} (JSON
 * would make them null, merging four groups into one).
 *
 * State keys are compared as these strings, so the text must never change for the same value. The fast
 * paths below (a hand-written encoder for rows' plain shapes, and a reviver-free parse) produce and read
 * exactly what `JSON.stringify`/`JSON.parse` with the replacer/reviver do (`slowEncode`/`slowDecode`, kept
 * for anything unusual and checked against in tests); they exist because keys are encoded and decoded for
 * every row and every state scan, where the replacer/reviver calls were most of a windowed batch's time.
 */
export function encodeState(v: unknown): string {
  return enc(v);
}

function enc(v: unknown): string {
  switch (typeof v) {
    case 'string':
      return JSON.stringify(v);
    case 'number':
      // NaN and ±Infinity are values, not null: Spark groups them apart (and NaN with NaN).
      return Number.isFinite(v) ? String(v) : `{"$n":"${String(v)}"}`;
    case 'boolean':
      return v ? 'true' : 'false';
    case 'object': {
      if (v === null) return 'null';
      if (v instanceof Date) {
        const t = v.getTime();
        // "$us" only when there are microseconds: keys and files written before µs existed keep their text.
        if (v instanceof MicrosDate && Number.isFinite(t)) return `{"$d":${t},"$us":${v.microsOfMilli}}`;
        return Number.isFinite(t) ? `{"$d":${t}}` : '{"$d":null}';
      }
      if (v instanceof Decimal) return `{"$dec":"${v.toPlainString()}"}`;
      if (Buffer.isBuffer(v)) return `{"$b":"${v.toString('base64')}"}`;
      if (Array.isArray(v)) {
        let out = '[';
        for (let i = 0; i < v.length; i++) {
          const x = v[i];
          if (i) out += ',';
          out += x === undefined || typeof x === 'function' || typeof x === 'symbol' ? 'null' : enc(x);
        }
        return out + ']';
      }
      const proto = Object.getPrototypeOf(v);
      if ((proto === Object.prototype || proto === null) && typeof (v as { toJSON?: unknown }).toJSON !== 'function') {
        let out = '{';
        let first = true;
        for (const k in v) {
          if (!Object.prototype.hasOwnProperty.call(v, k)) continue;
          const x = (v as Record<string, unknown>)[k];
          if (x === undefined || typeof x === 'function' || typeof x === 'symbol') continue;
          out += (first ? '' : ',') + JSON.stringify(k) + ':' + enc(x);
          first = false;
        }
        return out + '}';
      }
      return slowEncode(v);
    }
    default:
      return slowEncode(v);
  }
}

/** The reference encoding (JSON.stringify with a replacer). */
export function slowEncode(v: unknown): string {
  return JSON.stringify(v, function (this: Record<string, unknown>, k, x) {
    const raw = this[k];
    if (raw instanceof MicrosDate) return { $d: raw.getTime(), $us: raw.microsOfMilli };
    if (raw instanceof Date) return { $d: Number.isFinite(raw.getTime()) ? raw.getTime() : null }; // an invalid Date
    if (raw instanceof Decimal) return { $dec: raw.toPlainString() };
    if (Buffer.isBuffer(raw)) return { $b: raw.toString('base64') };
    if (typeof raw === 'number' && !Number.isFinite(raw)) return { $n: String(raw) };
    return x;
  });
}

export function decodeState(text: string): unknown {
  const v = JSON.parse(text);
  // Most keys hold no Date or Buffer: then there is nothing to revive.
  return text.includes('"$') ? revive(v) : v;
}

function revive(x: unknown): unknown {
  if (x === null || typeof x !== 'object') return x;
  if (Array.isArray(x)) {
    for (let i = 0; i < x.length; i++) x[i] = revive(x[i]);
    return x;
  }
  const o = x as Record<string, unknown>;
  for (const k of Object.keys(o)) o[k] = revive(o[k]);
  const keys = Object.keys(o);
  if (keys.length === 1) {
    if (keys[0] === '$d' && typeof o.$d === 'number') return new Date(o.$d);
    if (keys[0] === '$b' && typeof o.$b === 'string') return Buffer.from(o.$b, 'base64');
    if (keys[0] === '$dec' && typeof o.$dec === 'string') return Decimal.parse(o.$dec) ?? o;
    if (keys[0] === '$n' && typeof o.$n === 'string') return nonFinite(o.$n) ?? o;
  } else if (keys.length === 2 && typeof o.$d === 'number' && typeof o.$us === 'number') {
    return new MicrosDate(o.$d, o.$us);
  }
  return o;
}

/** The reference decoding (JSON.parse with a reviver). */
export function slowDecode(text: string): unknown {
  return JSON.parse(text, (_k, x) => {
    if (x && typeof x === 'object' && !Array.isArray(x)) {
      if (typeof x.$d === 'number' && Object.keys(x).length === 1) return new Date(x.$d);
      if (typeof x.$b === 'string' && Object.keys(x).length === 1) return Buffer.from(x.$b, 'base64');
      if (typeof x.$dec === 'string' && Object.keys(x).length === 1) return Decimal.parse(x.$dec) ?? x;
      if (typeof x.$n === 'string' && Object.keys(x).length === 1) return nonFinite(x.$n) ?? x;
      if (typeof x.$d === 'number' && typeof x.$us === 'number' && Object.keys(x).length === 2) return new MicrosDate(x.$d, x.$us);
    }
    return x;
  });
}

/** NaN, Infinity or -Infinity from their encoded names; undefined for anything else. */
function nonFinite(name: string): number | undefined {
  return name === 'NaN' ? NaN : name === 'Infinity' ? Infinity : name === '-Infinity' ? -Infinity : undefined;
}
