/** Parses Spark interval strings (`10 minutes`, `5 seconds`, `1 hour 30 minutes`, `interval 2 days`) into ms. */
const UNITS: Record<string, number> = {
  ms: 1,
  millisecond: 1,
  milliseconds: 1,
  s: 1000,
  sec: 1000,
  second: 1000,
  seconds: 1000,
  m: 60_000,
  min: 60_000,
  minute: 60_000,
  minutes: 60_000,
  h: 3_600_000,
  hour: 3_600_000,
  hours: 3_600_000,
  d: 86_400_000,
  day: 86_400_000,
  days: 86_400_000,
  week: 604_800_000,
  weeks: 604_800_000,
};

export function parseDuration(text: string | number, what = 'duration'): number {
  if (typeof text === 'number') return text;
  const src = text.trim().toLowerCase().replace(/^interval\s+/, '');
  const re = /(\d+(?:\.\d+)?)\s*([a-z]+)/g;
  let total = 0;
  let matched = '';
  for (let m = re.exec(src); m; m = re.exec(src)) {
    const unit = UNITS[m[2]!];
    if (unit === undefined) break;
    total += Number(m[1]) * unit;
    matched += m[0];
  }
  if (!matched || matched.replace(/\s/g, '') !== src.replace(/\s/g, '')) {
    throw new RangeError(
      `Cannot read ${what} "${text}". Write it as Spark does: "10 seconds", "5 minutes", "1 hour", "500 milliseconds".`,
    );
  }
  return total;
}
