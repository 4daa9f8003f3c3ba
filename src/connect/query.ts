/**
 * A streaming query running on Spark, seen through Spark Connect's StreamingQueryCommand: the same
 * handle as a local query (exec/streamingQuery.ts). Spark 3.5's Connect has no listener for clients, so
 * status and progress are asked every second while the query is active (and after every command), and
 * the getters return the last answer.
 */
import type { DiagnosisSnapshot, Finding } from '../exec/diagnose.js';
import { StreamingQueryException } from '../exec/microBatch.js';
import type { StreamingQueryProgress, StreamingQueryStatus } from '../exec/progress.js';
import type { StreamingQuery } from '../exec/streamingQuery.js';
import { SparkConnectClient, SparkConnectError, type Msg } from './client.js';

const POLL_MS = 1000;

export class RemoteStreamingQuery implements StreamingQuery {
  recentProgress: StreamingQueryProgress[] = [];
  status: StreamingQueryStatus = { message: 'Initializing sources', isDataAvailable: false, isTriggerActive: false };
  isActive = true;
  exception: Error | null = null;
  private plan = '';
  private readonly onTerminated: Array<() => void> = [];
  private timer: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;

  constructor(
    private readonly client: SparkConnectClient,
    readonly id: string,
    readonly runId: string,
    readonly name: string | null,
  ) {
    this.schedule();
  }

  get lastProgress(): StreamingQueryProgress | null {
    return this.recentProgress[this.recentProgress.length - 1] ?? null;
  }

  private async command(command: Msg): Promise<Msg> {
    const responses = await this.client.execute({ command: { streaming_query_command: { query_id: { id: this.id, run_id: this.runId }, ...command } } });
    const r = responses.find((x) => x.streaming_query_command_result)?.streaming_query_command_result as Msg | undefined;
    return r ?? {};
  }

  private schedule(): void {
    if (!this.isActive) return;
    this.timer = setTimeout(() => void this.refresh().finally(() => this.schedule()), POLL_MS);
    this.timer.unref();
  }

  /** Asks Spark for the query's status and progress now (the getters then return them). */
  refresh(): Promise<void> {
    return (this.refreshing ??= this.fetch().finally(() => (this.refreshing = undefined)));
  }

  private async fetch(): Promise<void> {
    try {
      const s = (await this.command({ status: true })).status as Msg | undefined;
      if (s) {
        this.status = { message: String(s.status_message ?? ''), isDataAvailable: Boolean(s.is_data_available), isTriggerActive: Boolean(s.is_trigger_active) };
      }
      const p = (await this.command({ recent_progress: true })).recent_progress as Msg | undefined;
      const json = (p?.recent_progress_json as string[] | undefined) ?? [];
      this.recentProgress = json.map(progressOf);
      if (s && !s.is_active) await this.terminated();
    } catch (e) {
      // The server went away: the query is gone with it.
      if (e instanceof SparkConnectError && e.grpcCode === 14) {
        this.exception ??= e;
        await this.terminated(false);
      }
    }
  }

  private async terminated(askWhy = true): Promise<void> {
    if (!this.isActive) return;
    this.isActive = false;
    clearTimeout(this.timer);
    if (askWhy) {
      const ex = (await this.command({ exception: true }).catch(() => ({}) as Msg)).exception as Msg | undefined;
      if (ex?.exception_message) {
        this.exception = new StreamingQueryException(
          `Query ${this.name ?? this.id} failed on Spark${ex.error_class ? ` [${String(ex.error_class)}]` : ''}: ${String(ex.exception_message)}`,
        );
      }
    }
    for (const cb of this.onTerminated.splice(0)) cb();
  }

  async awaitTermination(timeoutMs?: number): Promise<boolean> {
    const r = await this.command({ await_termination: timeoutMs === undefined ? {} : { timeout_ms: String(timeoutMs) } });
    const done = Boolean((r.await_termination as Msg | undefined)?.terminated);
    if (done) await this.refresh().then(() => this.terminated());
    if (done && this.exception) throw this.exception;
    return done;
  }

  async processAllAvailable(): Promise<void> {
    try {
      await this.command({ process_all_available: true });
    } catch (e) {
      await this.refresh();
      await this.terminated();
      throw this.exception ?? e;
    }
    await this.refresh();
  }

  async stop(): Promise<void> {
    if (this.isActive) await this.command({ stop: true });
    await this.refresh();
    await this.terminated();
  }

  /** Spark's plan for the query (its last batch's, once one ran): `explain(true)` on Spark. */
  async explainPlan(extended = false): Promise<string> {
    const r = await this.command({ explain: { extended } });
    this.plan = String((r.explain as Msg | undefined)?.result ?? '');
    return this.plan;
  }

  explain(): string {
    return [`== Spark Connect ==`, `server: ${this.client.address}`, `query: ${this.name ?? ''} id=${this.id} runId=${this.runId}`, '', this.plan || '(call await query.explainPlan() for Spark\'s plan)'].join('\n');
  }

  async diagnose(): Promise<Finding[]> {
    return notHere('diagnose()');
  }

  async diagnosisSnapshot(): Promise<DiagnosisSnapshot> {
    return notHere('diagnosisSnapshot()');
  }

  /** Kafka sources: the latest offsets Spark saw minus where the last batch ended, summed. */
  async lag(): Promise<number | undefined> {
    await this.refresh();
    let total: number | undefined;
    for (const s of (this.lastProgress?.sources ?? []) as Array<{ endOffset?: unknown; latestOffset?: unknown }>) {
      const end = parseOffsets(s.endOffset);
      const latest = parseOffsets(s.latestOffset);
      if (!end || !latest) continue;
      for (const [tp, off] of latest) total = (total ?? 0) + Math.max(0, off - (end.get(tp) ?? 0));
    }
    return total;
  }

  whenTerminated(cb: () => void): void {
    if (!this.isActive) cb();
    else this.onTerminated.push(cb);
  }
}

/**
 * Spark's progress JSON, in the shape of Sluice's StreamingQueryProgress. Spark 3.5's JSON leaves out the
 * totals its Scala object computes (numInputRows, inputRowsPerSecond, processedRowsPerSecond are sums over
 * the sources): they are added here from the sources, as Spark computes them.
 */
function progressOf(json: string): StreamingQueryProgress {
  const p = JSON.parse(json) as Record<string, unknown> & { sources?: Array<Record<string, unknown>> };
  const sum = (k: string): number => (p.sources ?? []).reduce((n, s) => n + (Number(s[k]) || 0), 0);
  p.numInputRows ??= sum('numInputRows');
  p.inputRowsPerSecond ??= sum('inputRowsPerSecond');
  p.processedRowsPerSecond ??= sum('processedRowsPerSecond');
  return p as unknown as StreamingQueryProgress;
}

function notHere(what: string): never {
  throw new SparkConnectError(
    `${what} reads the engine state of a query running in this process; this query runs on Spark. ` +
      "Use query.status, query.lastProgress (Spark's progress: numInputRows, eventTime.watermark, stateOperators) and await query.explainPlan(), or Spark's UI.",
  );
}

/** Spark's Kafka offsets in progress: `{"topic":{"0":12,"1":7}}` (a string or already parsed). */
function parseOffsets(v: unknown): Map<string, number> | undefined {
  try {
    const o = (typeof v === 'string' ? JSON.parse(v) : v) as Record<string, Record<string, number>> | undefined;
    if (!o || typeof o !== 'object') return undefined;
    const m = new Map<string, number>();
    for (const [topic, parts] of Object.entries(o)) for (const [p, off] of Object.entries(parts)) m.set(`${topic}/${p}`, Number(off));
    return m;
  } catch {
    return undefined;
  }
}
