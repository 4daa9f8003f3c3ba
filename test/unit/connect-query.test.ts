/**
 * The handle of a query running on Spark (RemoteStreamingQuery), against a scripted stand-in for the Spark
 * Connect server's StreamingQueryCommand answers: progress told once and in batch order (batches that ran
 * between two polls included), one termination whoever notices it, the query's own error from a failed
 * command, and a stop that the server did not confirm not reported as a stop. The real server's behaviour is
 * exercised in test/integration/connect-conformance.test.ts; these are the races that a real server makes
 * hard to reproduce on demand.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { SparkConnectError, type Msg } from '../../src/connect/base.js';
import type { SparkConnectClient } from '../../src/connect/client.js';
import { RemoteStreamingQuery } from '../../src/connect/query.js';
import type { StreamingQueryListener } from '../../src/exec/progress.js';

/** What Spark Connect 3.5 answers to StreamingQueryCommand, scripted. */
class ScriptedSpark {
  active = true;
  /** Status answers that still say active after `active` turned false (Spark winding the query down). */
  lagging = 0;
  progress: string[] = [];
  exception: string | undefined;
  failProcessAll: SparkConnectError | undefined;
  failStop: SparkConnectError | undefined;
  readonly calls: string[] = [];
  readonly address = 'scripted:15002';

  report(batchId: number): void {
    this.progress.push(JSON.stringify({ id: 'q', runId: 'r', batchId, timestamp: `2026-01-01T00:00:${String(batchId).padStart(2, '0')}.000Z`, sources: [{ numInputRows: batchId }] }));
  }

  async execute(plan: Msg): Promise<Msg[]> {
    const c = (plan.command as Msg).streaming_query_command as Msg;
    const what = Object.keys(c).find((k) => k !== 'query_id')!;
    this.calls.push(what);
    const answer = (r: Msg): Msg[] => [{ streaming_query_command_result: r }];
    switch (what) {
      case 'status': {
        const shown = this.active || this.lagging-- > 0;
        return answer({ status: { status_message: shown ? 'Processing' : 'Stopped', is_active: shown } });
      }
      case 'last_progress':
        return answer({ recent_progress: { recent_progress_json: this.progress.slice(-1) } });
      case 'recent_progress':
        return answer({ recent_progress: { recent_progress_json: [...this.progress] } });
      case 'exception':
        return answer({ exception: this.exception ? { exception_message: this.exception, error_class: 'USER_RAISED_EXCEPTION' } : {} });
      case 'process_all_available':
        if (this.failProcessAll) throw this.failProcessAll;
        return answer({});
      case 'stop':
        if (this.failStop) throw this.failStop;
        this.active = false;
        return answer({});
      case 'await_termination':
        // Spark's awaitTermination rethrows the query's error once it ended with one.
        if (!this.active && this.exception) throw new SparkConnectError(`Spark: [STREAM_FAILED] ${this.exception}`, 'STREAM_FAILED', 13);
        return answer({ await_termination: { terminated: !this.active } });
      case 'explain':
        return answer({ explain: { result: '== Physical Plan ==' } });
      default:
        return answer({});
    }
  }
}

const queries: RemoteStreamingQuery[] = [];
afterEach(async () => {
  for (const q of queries.splice(0)) if (q.isActive) await q.stop().catch(() => {});
});

function start(spark: ScriptedSpark, listener: StreamingQueryListener = {}): RemoteStreamingQuery {
  const q = new RemoteStreamingQuery(spark as unknown as SparkConnectClient, 'q', 'r', 'scripted', () => [listener]);
  queries.push(q);
  return q;
}

describe('RemoteStreamingQuery', () => {
  it('tells each progress once, in batch order, including batches that ran between two polls', async () => {
    const spark = new ScriptedSpark();
    const told: number[] = [];
    const q = start(spark, { onQueryProgress: (e) => void told.push(e.progress.batchId) });
    spark.report(0);
    spark.report(1);
    spark.report(2); // three batches before the first poll: last_progress shows 2 only
    await q.refresh();
    spark.report(3);
    await q.refresh();
    await q.refresh(true); // the whole history again: nothing new
    expect(told).toEqual([0, 1, 2, 3]);
    expect(q.recentProgress.map((p) => p.batchId)).toEqual([0, 1, 2, 3]);
    expect(q.lastProgress?.numInputRows).toBe(3); // Spark's JSON has no total: the sum over the sources
  });

  it('a failed processAllAvailable throws the query’s own error, even while Spark still says active for a moment; the end is told once', async () => {
    const spark = new ScriptedSpark();
    const ended: Array<string | null> = [];
    const q = start(spark, { onQueryTerminated: (e) => void ended.push(e.exception) });
    spark.active = false;
    spark.lagging = 2;
    spark.exception = 'boom';
    spark.failProcessAll = new SparkConnectError('Spark: [STREAM_FAILED] boom', 'STREAM_FAILED', 13);
    const both = await Promise.allSettled([q.processAllAvailable(), q.awaitTermination(), q.refresh(), q.refresh(true)]);
    const [pa, at] = both;
    expect(pa.status === 'rejected' && (pa.reason as Error).name).toBe('StreamingQueryException');
    expect(pa.status === 'rejected' && (pa.reason as Error).message).toMatch(/failed on Spark \[USER_RAISED_EXCEPTION\]: boom/);
    expect(at.status === 'rejected' && (at.reason as Error).message).toMatch(/boom/);
    expect(q.isActive).toBe(false);
    expect(ended).toEqual([q.exception!.message]);
    await expect(q.awaitTermination()).rejects.toThrow(/boom/);
  });

  it('a stop the server did not answer is an error, and the handle still says active (the query may still run on Spark)', async () => {
    const spark = new ScriptedSpark();
    const q = start(spark);
    spark.failStop = new SparkConnectError('Cannot reach the Spark Connect server', undefined, 14);
    await expect(q.stop()).rejects.toThrow(/Cannot reach/);
    expect(q.isActive).toBe(true);
    spark.failStop = undefined;
    await q.stop();
    expect(q.isActive).toBe(false);
    expect(q.exception).toBeNull();
    expect(spark.calls.filter((c) => c === 'stop')).toHaveLength(2);
  });

  it('a run the server no longer knows (restarted) ends the handle with that reason', async () => {
    const spark = new ScriptedSpark();
    const q = start(spark);
    spark.execute = async () => {
      throw new SparkConnectError('Spark: Run id mismatch for query id q. Run id in the request r does not match one on the server s.', undefined, 13);
    };
    await q.refresh();
    expect(q.isActive).toBe(false);
    expect(q.exception?.message).toMatch(/not running on the Spark Connect server any more.*Run id mismatch/);
  });
});
