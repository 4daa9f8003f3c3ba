/** JSON for state files and state keys, keeping the types JSON loses: Date → {"$d": ms}, Buffer → {"$b": base64}. */
export function encodeState(v: unknown): string {
  return JSON.stringify(v, function (this: Record<string, unknown>, k, x) {
    const raw = this[k];
    if (raw instanceof Date) return { $d: raw.getTime() };
    if (Buffer.isBuffer(raw)) return { $b: raw.toString('base64') };
    return x;
  });
}

export function decodeState(text: string): unknown {
  return JSON.parse(text, (_k, x) => {
    if (x && typeof x === 'object' && !Array.isArray(x)) {
      if (typeof x.$d === 'number' && Object.keys(x).length === 1) return new Date(x.$d);
      if (typeof x.$b === 'string' && Object.keys(x).length === 1) return Buffer.from(x.$b, 'base64');
    }
    return x;
  });
}
