/**
 * Spark datetime patterns (`yyyy-MM-dd HH:mm:ss.SSS`, quoted literals like `'T'`) for to_timestamp,
 * to_date, unix_timestamp and date_format. Sluice's session time zone is UTC (docs/decisions.md).
 */

type Token = { field: string; width: number } | { literal: string };

const cache = new Map<string, Token[]>();

function tokenize(pattern: string): Token[] {
  const hit = cache.get(pattern);
  if (hit) return hit;
  const tokens: Token[] = [];
  let i = 0;
  while (i < pattern.length) {
    const ch = pattern[i]!;
    if (ch === "'") {
      const end = pattern.indexOf("'", i + 1);
      const lit = end < 0 ? pattern.slice(i + 1) : pattern.slice(i + 1, end);
      tokens.push({ literal: lit === '' ? "'" : lit });
      i = end < 0 ? pattern.length : end + 1;
    } else if (/[yMdHhmsSaEXxZ]/.test(ch)) {
      let j = i;
      while (pattern[j] === ch) j++;
      tokens.push({ field: ch, width: j - i });
      i = j;
    } else {
      tokens.push({ literal: ch });
      i++;
    }
  }
  cache.set(pattern, tokens);
  return tokens;
}

const pad = (n: number, w: number): string => String(n).padStart(w, '0');
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];

export function formatWithPattern(d: Date, pattern: string): string {
  let out = '';
  for (const t of tokenize(pattern)) {
    if ('literal' in t) {
      out += t.literal;
      continue;
    }
    const w = t.width;
    switch (t.field) {
      case 'y':
        out += w === 2 ? pad(d.getUTCFullYear() % 100, 2) : pad(d.getUTCFullYear(), w);
        break;
      case 'M':
        out += pad(d.getUTCMonth() + 1, w);
        break;
      case 'd':
        out += pad(d.getUTCDate(), w);
        break;
      case 'H':
        out += pad(d.getUTCHours(), w);
        break;
      case 'h':
        out += pad(d.getUTCHours() % 12 || 12, w);
        break;
      case 'm':
        out += pad(d.getUTCMinutes(), w);
        break;
      case 's':
        out += pad(d.getUTCSeconds(), w);
        break;
      case 'S':
        out += pad(d.getUTCMilliseconds(), 3).padEnd(w, '0').slice(0, w);
        break;
      case 'a':
        out += d.getUTCHours() < 12 ? 'AM' : 'PM';
        break;
      case 'E':
        out += DAYS[d.getUTCDay()];
        break;
      default:
        out += w >= 3 ? '+00:00' : 'Z';
    }
  }
  return out;
}

/** Parses `s` with `pattern`; null when it does not match (Spark returns null too). */
export function parseWithPattern(s: string, pattern: string): Date | null {
  let pos = 0;
  let y = 1970,
    mo = 1,
    d = 1,
    h = 0,
    mi = 0,
    sec = 0,
    ms = 0;
  let pm: boolean | undefined;
  for (const t of tokenize(pattern)) {
    if ('literal' in t) {
      if (!s.startsWith(t.literal, pos)) return null;
      pos += t.literal.length;
      continue;
    }
    if (t.field === 'a') {
      const m = /^(AM|PM)/i.exec(s.slice(pos));
      if (!m) return null;
      pm = m[1]!.toUpperCase() === 'PM';
      pos += 2;
      continue;
    }
    if (t.field === 'X' || t.field === 'Z' || t.field === 'x') {
      const m = /^(Z|[+-]\d{2}:?\d{2})/.exec(s.slice(pos));
      if (!m) return null;
      pos += m[0].length;
      continue;
    }
    // A one-letter field takes as many digits as are there; a repeated one takes exactly its width.
    const re = t.width === 1 ? /^\d{1,4}/ : new RegExp(`^\\d{${t.field === 'S' ? `1,${t.width}` : t.width}}`);
    const m = re.exec(s.slice(pos));
    if (!m) return null;
    pos += m[0].length;
    const n = Number(m[0]);
    switch (t.field) {
      case 'y':
        y = t.width === 2 ? 2000 + n : n;
        break;
      case 'M':
        mo = n;
        break;
      case 'd':
        d = n;
        break;
      case 'H':
      case 'h':
        h = n;
        break;
      case 'm':
        mi = n;
        break;
      case 's':
        sec = n;
        break;
      case 'S':
        ms = Number(m[0].padEnd(3, '0').slice(0, 3));
        break;
    }
  }
  if (pos !== s.length) return null;
  if (pm !== undefined) h = (h % 12) + (pm ? 12 : 0);
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 59) return null;
  return new Date(Date.UTC(y, mo - 1, d, h, mi, sec, ms));
}
