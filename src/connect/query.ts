/**
 * A streaming query running on Spark, seen through Spark Connect's StreamingQueryCommand: the same
 * handle as a local query (exec/streamingQuery.ts). Spark 3.5's Connect has no listener for clients, so
 * status and progress are asked every second while the query is active (and after every command), and
 * the getters return the last answer.
 */
import type { DiagnosisSnapshot, Finding } from '../exec/diagnose.js';
import { StreamingQueryException } from '../exec/microBatch.js';
import type { StreamingQueryListener, StreamingQueryProgress, StreamingQueryStatus } from '../exec/progress.js';
import type { StreamingQuery } from '../exec/streamingQuery.js';
import { SparkConnectError, type Msg } from './base.js';
import type { SparkConnectClient } from './client.js';

const POLL_MS = 1000;
/** How long the server may fail to answer before the handle gives the query up for lost (it may still run there). */
const UNREACHABLE_MS = 60_000;
/** A status or progress question that takes longer than this counts as no answer. */
const POLL_DEADLINE_MS = 10_000;
const PROGRESS_HISTORY = 100;

/** Orders progress reports: by batch, then by time (a batch id repeats when a query restarts from its checkpoint). */
const after = (a: StreamingQueryProgress, b: StreamingQueryProgress): boolean => a.batchId > b.batchId || (a.batchId === b.batchId && a.timestamp > b.timestamp);

export class RemoteStreamingQuery implements StreamingQuery {
  recentProgress: StreamingQueryProgress[] = [];
  status: StreamingQueryStatus = { message: 'Initializing sources', isDataAvailable: false, isTriggerActive: false };
  exception: Error | null = null;
  private plan = '';
  private readonly onTerminated: Array<() => void> = [];
  private timer: NodeJS.Timeout | undefined;
  /** Every question to Spark about status and progress, one after another (no answer overtakes another). */
  private fetching: Promise<void> = Promise.resolve();
  /** Set once the query is known to have ended; resolves when its error is known and everyone was told. */
  private termination: Promise<void> | undefined;
  private ended = false;
  /** Since when the server has failed to answer (undefined while it answers). */
  private failingSince: number | undefined;

  constructor(
    private readonly client: SparkConnectClient,
    readonly id: string,
    readonly runId: string,
    readonly name: string | null,
    private readonly listeners: () => StreamingQueryListener[] = () => [],
  ) {
    for (const l of this.listeners()) l.onQueryStarted?.({ id, runId, name, timestamp: new Date().toISOString() });
    this.schedule();
  }

  /** False once the query ended and its error (if any) is in `exception`. */
  get isActive(): boolean {
    return !this.ended;
  }

  get lastProgress(): StreamingQueryProgress | null {
    return this.recentProgress[this.recentProgress.length - 1] ?? null;
  }

  private async command(command: Msg, deadlineMs?: number): Promise<Msg> {
    const responses = await this.client.execute({ command: { streaming_query_command: { query_id: { id: this.id, run_id: this.runId }, ...command } } }, deadlineMs);
    const r = responses.find((x) => x.streaming_query_command_result)?.streaming_query_command_result as Msg | undefined;
    return r ?? {};
  }

  private schedule(): void {
    if (this.termination) return;
    // Not unref'd: like a local query's loop, an active remote query keeps the process alive (stop() ends it).
    this.timer = setTimeout(() => {
      this.refresh()
        .catch(() => {}) // a poll never throws into the event loop: its failures count toward UNREACHABLE_MS
        .finally(() => this.schedule());
    }, POLL_MS);
  }

  /** Asks Spark for the query's status and progress now (the getters then return them); `all`: every progress Spark keeps. */
  refresh(all = false): Promise<void> {
    const next = this.fetching.then(() => this.fetch(all));
    this.fetching = next.catch(() => {});
    return next;
  }

  private async fetch(all: boolean): Promise<void> {
    if (this.termination) return this.termination;
    try {
      const s = (await this.command({ status: true }, POLL_DEADLINE_MS)).status as Msg | undefined;
      if (s) {
        this.status = { message: String(s.status_message ?? ''), isDataAvailable: Boolean(s.is_data_available), isTriggerActive: Boolean(s.is_trigger_active) };
      }
      // A poll asks for the last progress only; the whole history after commands, at the end, and when the last
      // one skipped batches (several ran between two polls).
      let reports = await this.progress(all);
      const newest = reports[reports.length - 1];
      const known = this.lastProgress;
      if (!all && newest && newest.batchId > (known ? known.batchId + 1 : 0)) reports = await this.progress(true);
      this.absorb(reports);
      this.failingSince = undefined;
      if (s && !s.is_active) {
        if (!all) this.absorb(await this.progress(true));
        await this.terminate(true);
      }
    } catch (e) {
      if (!(e instanceof SparkConnectError)) throw e;
      if (/not found|NOT_FOUND|Run id mismatch/i.test(e.message)) {
        // The server no longer runs this run of the query (the server or the query was restarted).
        this.exception ??= new StreamingQueryException(`Query ${this.name ?? this.id} (run ${this.runId}) is not running on the Spark Connect server any more: ${e.message}`);
        await this.terminate(false);
        return;
      }
      // No answer, or an error: a restart, a network blip, a long GC pause. Only after a minute of failing is
      // the query given up for lost (it may still be running there).
      this.failingSince ??= Date.now();
      if (Date.now() - this.failingSince > UNREACHABLE_MS) {
        this.exception ??= new StreamingQueryException(
          `Query ${this.name ?? this.id}: the Spark Connect server has not answered about it for a minute (${e.message}). The query may still run on Spark.`,
        );
        await this.terminate(false);
        return;
      }
      throw e;
    }
  }

  private async progress(all: boolean): Promise<StreamingQueryProgress[]> {
    const p = (await this.command(all ? { recent_progress: true } : { last_progress: true }, POLL_DEADLINE_MS)).recent_progress as Msg | undefined;
    return ((p?.recent_progress_json as string[] | undefined) ?? []).map(progressOf);
  }

  /** Progress reports newer than the newest held, in batch order, each told to the listeners once. */
  private absorb(reports: StreamingQueryProgress[]): void {
    const known = this.lastProgress;
    const fresh = reports.filter((p) => !known || after(p, known)).sort((a, b) => (after(a, b) ? 1 : after(b, a) ? -1 : 0));
    this.recentProgress.push(...fresh);
    if (this.recentProgress.length > PROGRESS_HISTORY) this.recentProgress.splice(0, this.recentProgress.length - PROGRESS_HISTORY);
    for (const p of fresh) for (const l of this.listeners()) l.onQueryProgress?.({ progress: p });
  }

  /** The query ended: once, whoever sees it first; everyone else waits for the same outcome. */
  private terminate(askWhy: boolean): Promise<void> {
    return (this.termination ??= (async () => {
      clearTimeout(this.timer);
      if (askWhy) {
        const ex = (await this.command({ exception: true }, POLL_DEADLINE_MS).catch(() => ({}) as Msg)).exception as Msg | undefined;
        if (ex?.exception_message) {
          this.exception = new StreamingQueryException(
            `Query ${this.name ?? this.id} failed on Spark${ex.error_class ? ` [${String(ex.error_class)}]` : ''}: ${String(ex.exception_message)}`,
          );
        }
      }
      this.ended = true;
      for (const l of this.listeners()) l.onQueryTerminated?.({ id: this.id, runId: this.runId, exception: this.exception ? this.exception.message : null });
      for (const cb of this.onTerminated.splice(0)) cb();
    })());
  }

  /**
   * After a command failed: the query's own error if it stopped, else the command's. Spark rethrows the
   * query's exception from processAllAvailable/awaitTermination while the query is still winding down, so
   * its status may say active for a moment: asked again for up to 10 s.
   */
  private async failure(e: unknown): Promise<never> {
    const until = Date.now() + 10_000;
    await this.refresh(true).catch(() => {});
    while (!this.termination && Date.now() < until && e instanceof SparkConnectError && e.grpcCode !== 14) {
      await new Promise((r) => setTimeout(r, 200));
      await this.refresh(true).catch(() => {});
    }
    await this.termination;
    throw (this.ended && this.exception) || e;
  }

  async awaitTermination(timeoutMs?: number): Promise<boolean> {
    if (this.termination) {
      await this.termination;
      if (this.exception) throw this.exception;
      return true;
    }
    // Spark refuses a timeout of 0 ("Timeout has to be positive"); locally it means "look now".
    if (timeoutMs !== undefined && timeoutMs <= 0) {
      await this.refresh().catch(() => {});
      await this.termination;
      if (this.ended && this.exception) throw this.exception;
      return this.ended;
    }
    let done: boolean;
    try {
      const r = await this.command({ await_termination: timeoutMs === undefined ? {} : { timeout_ms: String(Math.ceil(timeoutMs)) } });
      done = Boolean((r.await_termination as Msg | undefined)?.terminated);
    } catch (e) {
      return this.failure(e);
    }
    if (done) {
      await this.refresh(true).catch(() => {});
      await this.terminate(true);
      if (this.exception) throw this.exception;
    }
    return done;
  }

  async processAllAvailable(): Promise<void> {
    if (this.termination) {
      await this.termination;
      if (this.exception) throw this.exception;
      return;
    }
    try {
      await this.command({ process_all_available: true });
    } catch (e) {
      await this.failure(e);
    }
    await this.refresh(true);
    // Batches ran: Spark's plan for the query now exists (explain() shows it).
    await this.explainPlan().catch(() => '');
  }

  /**
   * Stops the query on Spark, and resolves once Spark has. Sent even when the handle lost track of the query,
   * so it is not left running there; a server that does not answer is an error while the query may still run.
   */
  async stop(): Promise<void> {
    try {
      await this.command({ stop: true });
    } catch (e) {
      const gone = e instanceof SparkConnectError && /not found|NOT_FOUND|Run id mismatch/i.test(e.message);
      if (!gone && !this.termination) throw e;
    }
    await this.refresh(true).catch(() => {});
    await this.terminate(true);
  }

  /** Spark's plan for the query (its last batch's, once one ran): `explain(true)` on Spark. */
  async explainPlan(extended = false): Promise<string> {
    const r = await this.command({ explain: { extended } });
    this.plan = String((r.explain as Msg | undefined)?.result ?? '');
    return this.plan;
  }

  /** Spark's plan as last fetched (at start, and after processAllAvailable()); `await explainPlan()` asks again. */
  explain(): string {
    return [`== Spark Connect ==`, `server: ${this.client.address}`, `query: ${this.name ?? ''} id=${this.id} runId=${this.runId}`, '', this.plan || "(await query.explainPlan() for Spark's plan)"].join('\n');
  }

  async diagnose(): Promise<Finding[]> {
    return notHere('diagnose()');
  }

  async diagnosisSnapshot(): Promise<DiagnosisSnapshot> {
    return notHere('diagnosisSnapshot()');
  }

  /** Kafka sources: the latest offsets Spark saw minus where the last batch ended, summed. */
  async lag(): Promise<number | undefined> {
    await this.refresh().catch(() => {});
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
    if (this.ended) cb();
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
