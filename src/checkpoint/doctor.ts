/**
 * `sluice doctor CHECKPOINT_DIR`: "why is there no output?" for a query that is not in this process — the
 * same rules as `query.diagnose()` (exec/diagnose.ts), fed from what the checkpoint keeps: its damage
 * (checkpoint explain), its lock (is the query running somewhere?), its history (the last run's settings,
 * progress and error: checkpoint/history.ts) and, for Kafka sources, the broker's answer now. What needs
 * the running query's state (which window is waiting) is named only as far as progress says it.
 */
import { KafkaSource } from '../sources/kafka.js';
import { diagnose, pendingFromProgress, type DiagnosisSnapshot, type Finding } from '../exec/diagnose.js';
import type { Trigger } from '../exec/trigger.js';
import { explainCheckpoint, type CheckpointReport } from './explain.js';
import { readHistory, type RunEnded, type RunStarted } from './history.js';
import type { Offset } from './checkpoint.js';

export interface DoctorOptions {
  /** Kafka bootstrap servers, when the history's are not the ones to use (another network, a tunnel). */
  bootstrapServers?: string;
  /** More `kafka.*` options (security settings: the history keeps no credentials). */
  kafkaOptions?: Record<string, string>;
}

export interface DoctorReport {
  findings: Finding[];
  checkpoint: CheckpointReport;
}

export async function doctor(dir: string, o: DoctorOptions = {}): Promise<DoctorReport> {
  const checkpoint = explainCheckpoint(dir);
  const damage: Finding[] = checkpoint.problems
    .filter((p) => p.blocksRestart)
    .map((p) => ({ cause: 'checkpoint-damaged', summary: `${p.damage} A restart refuses this checkpoint.`, evidence: [p.meaning], action: p.fix }));
  const history = readHistory(dir, Infinity); // bounded on disk (2,000 lines); the run's first batch is needed
  const started = history.runs.filter((r): r is RunStarted => r.event === 'started').pop();
  if (!started) {
    return {
      checkpoint,
      findings: [
        ...damage,
        {
          cause: 'query-stopped',
          summary: 'This checkpoint has no history: it was written by a Sluice older than the history, or its query never started.',
          evidence: [`batches: ${checkpoint.batches.length}`],
          action: 'Start the query: `sluice checkpoint explain` shows where it will resume.',
        },
      ],
    };
  }
  const unreachable: Finding[] = [];
  const ended = history.runs.find((r): r is RunEnded => r.event === 'terminated' && r.runId === started.runId);
  const running = checkpoint.lock?.state === 'live';
  const runProgress = history.progress.filter((p) => p.runId === started.runId);
  const progress = runProgress.slice(-100);
  const committed = checkpoint.batches.filter((b) => b.committed);
  const lastCommitted = committed[committed.length - 1];
  // Resumed: the run started with batches already committed (before its own first batch).
  const firstOwn = runProgress[0]?.batchId;
  const resumed = committed.some((b) => firstOwn === undefined || b.batchId < firstOwn);
  const position = (i: number): Offset | undefined => (lastCommitted?.offsets[i] as Offset | undefined) ?? (checkpoint.startingOffsets[i] as Offset | undefined);
  const sources = await Promise.all(
    started.sources.map(async (src, i) => {
      let inspection;
      const bootstrap = o.bootstrapServers ?? src.options?.['kafka.bootstrap.servers'];
      if (src.options && bootstrap) {
        const source = new KafkaSource({ ...src.options, ...(o.kafkaOptions ?? {}), 'kafka.bootstrap.servers': bootstrap }, () => {});
        try {
          inspection = await source.inspect();
        } catch (e) {
          // doctor's own question failed, not the query: said last, after what the checkpoint shows.
          inspection = undefined;
          unreachable.push({
            cause: 'source-unreachable',
            summary: `sluice doctor could not ask Kafka at ${bootstrap} about ${src.description}, so what the topics hold now is not known.`,
            evidence: [(e as Error).message],
            action:
              'Give a broker reachable from here (--bootstrap-servers) and, for a secured cluster, its settings: the history keeps no ' +
              'credentials (--kafka-option security.protocol=SASL_SSL --kafka-option sasl.username=… …).',
          });
        } finally {
          await source.stop();
        }
      }
      const pos = position(i);
      return {
        description: src.description,
        ...(inspection ? { inspection } : {}),
        ...(resumed && lastCommitted ? { resumedAt: lastCommitted.offsets[i] as Offset } : {}),
        ...(pos !== undefined ? { position: pos } : {}),
      };
    }),
  );
  const last = progress[progress.length - 1];
  const snapshot: DiagnosisSnapshot = {
    name: started.name ?? checkpoint.queryId,
    active: running,
    ...(ended?.exception ? { exception: ended.exception } : {}),
    trigger: started.trigger as Trigger,
    outputMode: started.outputMode,
    progress,
    sources,
    ...(started.watermarkDelaysMs.length ? { watermark: { nextMs: lastCommitted?.nextBatchWatermarkMs ?? 0, delaysMs: started.watermarkDelaysMs } } : {}),
    pending: pendingFromProgress(last, started.watermarkDelaysMs.length > 0),
  };
  const findings = diagnose(snapshot);
  if (!running && !ended && !snapshot.exception) {
    // Started, never ended, no live lock: the process died (kill -9, a crash, the machine).
    const i = findings.findIndex((f) => f.cause === 'query-stopped');
    const died: Finding = {
      cause: 'query-stopped',
      summary: `The query's last run (${started.runId}, started ${started.timestamp}) ended without stopping: its process died.`,
      evidence: [checkpoint.lock ? `lock: ${checkpoint.lock.reason}` : 'no lock held', `last batch: ${last?.batchId ?? 'none'}`],
      action: 'Start the query again on this checkpoint: it resumes after its last committed batch (a batch in flight is re-run).',
    };
    if (i >= 0) findings[i] = died;
    else findings.unshift(died);
  }
  return { checkpoint, findings: [...damage, ...findings, ...unreachable] };
}
