/**
 * Event-time windows, as Spark's `window(timeColumn, windowDuration, slideDuration, startTime)`: a row
 * with event time t belongs to every window [start, end) with start <= t < end, where starts are
 * startTime + k·slide. Tumbling windows (slide = size) give one window per row, sliding windows several.
 */
import { StringType, StructType, TimestampType, type DataType, type Row } from '../types/index.js';
import { epochMicros, fromEpochMicros } from '../types/timestamp.js';
import { Column, ColumnLike, Expr, colExpr } from './column.js';
import { AnalysisError, Bound, EvalContext, SqlCall, compile, registerFunction } from './compile.js';
import { CalendarInterval } from './interval.js';
import { parseDuration } from '../util/duration.js';

export interface WindowSpec {
  sizeMs: number;
  slideMs: number;
  startMs: number;
}

export const WINDOW_TYPE = new StructType().add('start', TimestampType).add('end', TimestampType);

/** Groups by event-time windows: `groupBy(window(col('timestamp'), '10 minutes', '5 minutes'))`. */
export function window(timeColumn: ColumnLike, windowDuration: string, slideDuration?: string, startTime?: string): Column {
  return new Column({
    kind: 'fn',
    name: 'window',
    args: [colExpr(timeColumn)],
    options: { windowDuration, slideDuration: slideDuration ?? windowDuration, startTime: startTime ?? '0 seconds' },
  });
}

export function windowSpec(options: Record<string, unknown>): WindowSpec {
  const sizeMs = parseDuration(String(options.windowDuration), 'windowDuration');
  const slideMs = parseDuration(String(options.slideDuration), 'slideDuration');
  const startMs = parseDuration(String(options.startTime), 'startTime');
  if (sizeMs <= 0 || slideMs <= 0) throw new AnalysisError('window(): durations must be positive.');
  if (slideMs > sizeMs) {
    throw new AnalysisError(`window(): the slide (${options.slideDuration}) must not be longer than the window (${options.windowDuration}); rows would fall between windows.`);
  }
  if (startMs >= slideMs) throw new AnalysisError(`window(): startTime (${options.startTime}) must be less than the slide (${options.slideDuration}).`);
  return { sizeMs, slideMs, startMs };
}

/** The windows containing event time `t` (ms), earliest first. */
export function windowsOf(t: number, w: WindowSpec): Array<{ start: Date; end: Date }> {
  const mod = (((t - w.startMs) % w.slideMs) + w.slideMs) % w.slideMs;
  const lastStart = t - mod;
  const out: Array<{ start: Date; end: Date }> = [];
  for (let s = lastStart - Math.floor((w.sizeMs - 1) / w.slideMs) * w.slideMs; s <= lastStart; s += w.slideMs) {
    if (s + w.sizeMs > t) out.push({ start: new Date(s), end: new Date(s + w.sizeMs) });
  }
  return out;
}

/** Which time-window function `e` calls (maybe aliased), if any: groupBy() treats these keys specially. */
export function timeWindowKind(e: Expr): 'window' | 'session_window' | undefined {
  const inner = e.kind === 'alias' ? e.child : e;
  return inner.kind === 'fn' && (inner.name === 'window' || inner.name === 'session_window') ? inner.name : undefined;
}

/** If `e` is a call of the time-window function `fn` (maybe aliased): the call, its compiled time column, its output name. */
function timeWindowCall(e: Expr, fn: string, schema: StructType, ctx: EvalContext): { options: Record<string, unknown>; args: Expr[]; time: Bound; name: string } | undefined {
  if (timeWindowKind(e) !== fn) return undefined;
  const inner = (e.kind === 'alias' ? e.child : e) as Extract<Expr, { kind: 'fn' }>;
  let time = compile(inner.args[0]!, schema, ctx);
  // A window of windows: window(w, …) over an earlier aggregation's window column means
  // window(window_time(w), …), as Spark's TimeWindowing rewrites it (chained time-window aggregations).
  if (isWindowStruct(time.type)) time = windowTimeOf(time);
  if (time.type !== TimestampType) {
    throw new AnalysisError(`${fn}() needs a timestamp column, but \`${time.name}\` is ${time.type.simpleString()}. Convert it with to_timestamp().`);
  }
  return { options: inner.options ?? {}, args: inner.args, time, name: e.kind === 'alias' ? e.name : fn };
}

/** If `e` is a window() call (maybe aliased), its time column and spec. */
export function asWindow(e: Expr, schema: StructType, ctx: EvalContext): { time: Bound; spec: WindowSpec; name: string } | undefined {
  const call = timeWindowCall(e, 'window', schema, ctx);
  return call && { time: call.time, spec: windowSpec(call.options), name: call.name };
}

/**
 * A duration argument of a SQL call: a string (`'10 minutes'`, as the column functions take it) or an
 * interval literal (`INTERVAL 10 MINUTES`, which Spark accepts too) of fixed length.
 */
function sqlDuration(c: SqlCall, i: number, what: string): string {
  const e = c.args[i]!;
  if (e.kind === 'lit' && e.value instanceof CalendarInterval) {
    if (e.value.months) c.fail(`the ${what} must have a fixed length; a month has none. Write it in days`, i);
    return `${e.value.days * 86_400_000 + e.value.ms} milliseconds`;
  }
  return c.literal<string>(i, `the ${what} (a string such as '10 minutes')`, 'string');
}

// Outside groupBy, a tumbling window is a plain struct column; a sliding one would multiply rows.
registerFunction('window', {
  // window(ts, '10 minutes'[, slide[, startTime]]): the column function keeps the durations in options.
  fromSql(c) {
    if (c.args.length < 2 || c.args.length > 4) c.fail(`window() takes a time column and 1 to 3 durations, got ${c.args.length} argument(s)`);
    const windowDuration = sqlDuration(c, 1, 'window duration');
    const slideDuration = c.args.length > 2 ? sqlDuration(c, 2, 'slide duration') : windowDuration;
    const startTime = c.args.length > 3 ? sqlDuration(c, 3, 'start time') : '0 seconds';
    return { kind: 'fn', name: 'window', args: [c.args[0]!], options: { windowDuration, slideDuration, startTime } };
  },
  bind({ args, options }) {
    const spec = windowSpec(options);
    if (spec.slideMs !== spec.sizeMs) {
      throw new AnalysisError('A sliding window() gives several windows per row: use it in groupBy(), where each window is a group.');
    }
    const time = args[0]!;
    if (time.type !== TimestampType) throw new AnalysisError(`window() needs a timestamp column, but \`${time.name}\` is ${time.type.simpleString()}.`);
    const ev = time.eval;
    return {
      type: WINDOW_TYPE,
      eval: (row) => {
        const t = ev(row) as Date | null;
        return t == null ? null : windowsOf(t.getTime(), spec)[0];
      },
      ...(time.watermarkDelayMs !== undefined ? { watermarkDelayMs: time.watermarkDelayMs } : {}),
    };
  },
});

/**
 * Session windows, as Spark's `session_window(timeColumn, gapDuration)`: each row opens a session
 * [t, t + gap); sessions of the same group that overlap or touch (a start at or before the other's end)
 * merge into one, so a session closes once no row came for `gap`. Only meaningful in groupBy().
 *
 * The gap is a duration (`'5 minutes'`) or, as in Spark, a string column giving each row its own gap
 * (`when(col('device').eq('tv'), lit('30 minutes')).otherwise(lit('5 minutes'))`); a row whose gap is
 * null, not a duration, or not positive opens no session and is left out (counted in progress).
 */
export function session_window(timeColumn: ColumnLike, gapDuration: string | Column): Column {
  if (gapDuration instanceof Column) {
    return new Column({ kind: 'fn', name: 'session_window', args: [colExpr(timeColumn), gapDuration.expr] });
  }
  return new Column({ kind: 'fn', name: 'session_window', args: [colExpr(timeColumn)], options: { gapDuration } });
}
export const sessionWindow = session_window;

/** If `e` is a session_window() call (maybe aliased): its time column, and its gap — fixed, or per row. */
export function asSessionWindow(
  e: Expr,
  schema: StructType,
  ctx: EvalContext,
): { time: Bound; gapMs: number | ((row: Row) => number | null); name: string } | undefined {
  const call = timeWindowCall(e, 'session_window', schema, ctx);
  if (!call) return undefined;
  if (call.args[1]) {
    const gap = compile(call.args[1], schema, ctx);
    if (gap.type !== StringType) {
      throw new AnalysisError(
        `session_window(): a gap column must give a duration string such as '5 minutes', but \`${gap.name}\` is ${gap.type.simpleString()}.`,
      );
    }
    const ev = gap.eval;
    const parsed = new Map<string, number | null>(); // a handful of distinct gaps, parsed once each
    const gapOf = (row: Row): number | null => {
      const text = ev(row) as string | null;
      if (text == null) return null;
      let ms = parsed.get(text);
      if (ms === undefined) {
        try {
          ms = parseDuration(text, 'gapDuration');
        } catch {
          ms = null;
        }
        parsed.set(text, ms);
      }
      return ms !== null && ms > 0 ? ms : null;
    };
    return { time: call.time, gapMs: gapOf, name: call.name };
  }
  const gap = String(call.options.gapDuration);
  const gapMs = parseDuration(gap, 'gapDuration');
  if (!(gapMs > 0)) throw new AnalysisError(`session_window(): the gap (${gap}) must be positive.`);
  return { time: call.time, gapMs, name: call.name };
}

registerFunction('session_window', {
  // session_window(ts, '5 minutes') keeps the gap in options; a gap that is an expression stays an argument.
  fromSql(c) {
    if (c.args.length !== 2) c.fail(`session_window() takes a time column and a gap, got ${c.args.length} argument(s)`);
    const gap = c.args[1]!;
    if (gap.kind !== 'lit') return { kind: 'fn', name: 'session_window', args: [c.args[0]!, gap] };
    return { kind: 'fn', name: 'session_window', args: [c.args[0]!], options: { gapDuration: sqlDuration(c, 1, 'gap duration') } };
  },
  bind() {
    throw new AnalysisError(
      'session_window() only makes sense in groupBy(): a session is known only once rows of the same group are merged. ' +
        "Write groupBy(session_window(col('ts'), '5 minutes'), …).agg(…).",
    );
  },
});

/** Whether a type is a time window's struct<start: timestamp, end: timestamp>. */
export function isWindowStruct(t: DataType): boolean {
  return t.simpleString() === WINDOW_TYPE.simpleString();
}

/**
 * `window_time(w)`, as Spark's: the window's end minus 1 microsecond — the last instant inside the window
 * (its end is exclusive) — as a timestamp that keeps the window's watermark. It is the event time of an
 * aggregation's output row: the next aggregation windows it again (`window(window_time(w), '1 hour')`), and
 * an operator after it judges lateness by it.
 */
export function window_time(windowColumn: ColumnLike): Column {
  return new Column({ kind: 'fn', name: 'window_time', args: [colExpr(windowColumn)] });
}
export const windowTime = window_time;

function windowTimeOf(w: Bound): Bound {
  const ev = w.eval;
  return {
    ...w,
    name: `window_time(${w.name})`,
    type: TimestampType,
    eval: (row) => {
      const win = ev(row) as { end: Date } | null;
      return win == null ? null : fromEpochMicros(epochMicros(win.end) - 1);
    },
  };
}

registerFunction('window_time', {
  bind({ args }) {
    const w = args[0];
    if (args.length !== 1 || !w) throw new AnalysisError('window_time() takes one argument: a window column (the `window` of a window() or session_window() aggregation).');
    if (!isWindowStruct(w.type)) {
      throw new AnalysisError(
        `window_time(\`${w.name}\`): the input is not a window column, it is ${w.type.simpleString()}. Pass the struct<start, end> column a ` +
          "groupBy(window(…)) or groupBy(session_window(…)) produced, e.g. window_time(col('window')).",
      );
    }
    const b = windowTimeOf(w);
    return { type: b.type, nullable: b.nullable, eval: b.eval, ...(w.watermarkDelayMs !== undefined ? { watermarkDelayMs: w.watermarkDelayMs } : {}) };
  },
});
