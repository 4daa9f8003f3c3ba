/** `session.streams`: the active queries of a session, as Spark's StreamingQueryManager. */
import type { StreamingQueryListener } from '../exec/progress.js';
import type { StreamingQuery } from '../exec/streamingQuery.js';

const EVENTS = ['onQueryStarted', 'onQueryProgress', 'onQueryIdle', 'onQueryTerminated'] as const;

export class StreamingQueryManager {
  private readonly queries = new Map<string, StreamingQuery>();
  private readonly listeners: StreamingQueryListener[] = [];
  private terminatedWaiters: Array<(q: StreamingQuery) => void> = [];
  private lastTerminated: StreamingQuery | undefined;

  /** `log`: where a failing listener is reported (the session's log). */
  constructor(private readonly log: (line: string) => void = (l) => process.stderr.write(`[sluice] ${l}\n`)) {}

  /** The queries running now. */
  get active(): StreamingQuery[] {
    return [...this.queries.values()].filter((q) => q.isActive);
  }
  /** An active query by id. */
  get(id: string): StreamingQuery | undefined {
    const q = this.queries.get(id);
    return q?.isActive ? q : undefined;
  }
  /** Resolves when any query of the session terminates (at once if one already has, until resetTerminated()). */
  async awaitAnyTermination(timeoutMs?: number): Promise<boolean> {
    const q = this.lastTerminated ?? (await new Promise<StreamingQuery | undefined>((resolve) => {
      this.terminatedWaiters.push(resolve);
      if (timeoutMs !== undefined) setTimeout(() => resolve(undefined), timeoutMs).unref();
    }));
    if (!q) return false;
    if (q.exception) throw q.exception;
    return true;
  }
  resetTerminated(): void {
    this.lastTerminated = undefined;
  }
  addListener(l: StreamingQueryListener): void {
    this.listeners.push(l);
  }
  removeListener(l: StreamingQueryListener): void {
    const i = this.listeners.indexOf(l);
    if (i >= 0) this.listeners.splice(i, 1);
  }
  /**
   * @internal The listeners, each wrapped so that it cannot hurt the query: a listener that throws (or
   * returns a promise that rejects) is logged and the event goes on to the next listener; the query and
   * the process carry on. Spark's listener bus isolates listeners the same way.
   */
  allListeners(): StreamingQueryListener[] {
    return this.listeners.map((l) => this.isolated(l));
  }

  private isolated(l: StreamingQueryListener): StreamingQueryListener {
    const out: StreamingQueryListener = {};
    for (const event of EVENTS) {
      const fn = l[event] as ((e: unknown) => unknown) | undefined;
      if (typeof fn !== 'function') continue;
      const report = (e: unknown): void => {
        const name = l.constructor?.name && l.constructor.name !== 'Object' ? `${l.constructor.name}.` : 'listener ';
        const why = e instanceof Error ? (e.stack ?? e.message) : String(e);
        // The log itself must not throw into the query either.
        try {
          this.log(`WARN A StreamingQueryListener failed in ${name}${event}; the query goes on. Fix the listener. ${why}`);
        } catch {
          /* a log that throws has nowhere to report to */
        }
      };
      (out as Record<string, (e: unknown) => void>)[event] = (e: unknown) => {
        try {
          const r = fn.call(l, e);
          // An async listener: its rejection would be an unhandled rejection, which ends a Node process.
          if (r && typeof (r as Promise<unknown>).then === 'function') (r as Promise<unknown>).then(undefined, report);
        } catch (err) {
          report(err);
        }
      };
    }
    return out;
  }
  /** @internal Queries of this session that ended with an error (`sluice run` exits with the first). */
  readonly failed: StreamingQuery[] = [];

  /** @internal */
  register(q: StreamingQuery): void {
    this.queries.set(q.id, q);
    q.whenTerminated(() => {
      this.queries.delete(q.id);
      this.lastTerminated = q;
      if (q.exception) this.failed.push(q);
      const ws = this.terminatedWaiters;
      this.terminatedWaiters = [];
      for (const w of ws) w(q);
    });
  }
}
