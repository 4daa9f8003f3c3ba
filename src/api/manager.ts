/** `session.streams`: the active queries of a session, as Spark's StreamingQueryManager. */
import type { StreamingQueryListener } from '../exec/progress.js';
import type { StreamingQuery } from '../exec/microBatch.js';

export class StreamingQueryManager {
  private readonly queries = new Map<string, StreamingQuery>();
  private readonly listeners: StreamingQueryListener[] = [];
  private terminatedWaiters: Array<(q: StreamingQuery) => void> = [];
  private lastTerminated: StreamingQuery | undefined;

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
  /** @internal */
  allListeners(): StreamingQueryListener[] {
    return this.listeners;
  }
  /** @internal */
  register(q: StreamingQuery): void {
    this.queries.set(q.id, q);
    q.whenTerminated(() => {
      this.queries.delete(q.id);
      this.lastTerminated = q;
      const ws = this.terminatedWaiters;
      this.terminatedWaiters = [];
      for (const w of ws) w(q);
    });
  }
}
