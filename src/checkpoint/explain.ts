/**
 * `sluice checkpoint explain DIR`: what a checkpoint holds and what a restart would do with it, in words
 * (and as JSON). Damaged or partial checkpoints get an explanation — each damaged file with what it means
 * and the safe fix, from the same checks a restart makes (./recovery.ts) — never a stack trace. It shows
 * the lock's holder, if a query runs, without taking or touching the lock.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Checkpoint, CheckpointError, type CheckpointProblem } from './checkpoint.js';
import { describeHolder, readLock, type LockInfo } from './lock.js';
import { inspectCheckpoint } from './recovery.js';

export interface CheckpointReport {
  dir: string;
  queryId: string;
  sources: string[];
  batches: Array<{
    batchId: number;
    offsets: unknown[];
    batchWatermarkMs: number;
    batchTimestamp: string;
    committed: boolean;
    nextBatchWatermarkMs?: number;
    /** Several inputs: each input's own watermark after the batch (the global one is their min or max). */
    operatorWatermarksMs?: Record<string, number>;
    /** What is wrong with offsets/N when it cannot be read (its other fields are then empty). */
    damaged?: string;
  }>;
  startingOffsets: unknown[];
  stateOperators: Array<{ operatorId: number; partitions: number; latestVersion: number; files: number }>;
  deadLetterFiles: number;
  /** The running query holding the checkpoint's lock, if any (`state` stale or dead: the next start takes it over). */
  lock?: LockInfo;
  /** Damage a restart refuses (`blocksRestart`), then history a restart does not read; each with its meaning and fix. */
  problems: CheckpointProblem[];
  nextAction: string;
}

function stateInfo(root: string): CheckpointReport['stateOperators'] {
  const dir = join(root, 'state');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .sort((a, b) => a - b)
    .map((op) => {
      const parts = readdirSync(join(dir, String(op))).filter((p) => /^\d+$/.test(p));
      let latest = 0;
      let files = 0;
      // A partition's files, or — for a stream-stream join — its left/ and right/ folders' files.
      const visit = (folder: string): void => {
        for (const f of readdirSync(folder, { withFileTypes: true })) {
          if (f.isDirectory() && (f.name === 'left' || f.name === 'right')) visit(join(folder, f.name));
          const m = /^(\d+)\.(delta|snapshot)$/.exec(f.name);
          if (!m) continue;
          files++;
          latest = Math.max(latest, Number(m[1]));
        }
      };
      for (const p of parts) visit(join(dir, String(op), p));
      return { operatorId: op, partitions: parts.length, latestVersion: latest, files };
    });
}

const fmt = (o: unknown): string => JSON.stringify(o);

export function explainCheckpoint(dir: string): CheckpointReport {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new CheckpointError(`${dir} does not exist or is not a folder. Give the query's checkpointLocation.`);
  }
  // Read-only: explaining a checkpoint must never change it (no folders created, nothing purged, lock untouched).
  const cp = new Checkpoint(dir, { readOnly: true });
  const metadataProblem = cp.metadataProblem();
  if (!existsSync(join(dir, 'metadata')) && !metadataProblem) {
    throw new CheckpointError(
      `${dir} has no "metadata" file, so it is not a Sluice/Spark checkpoint (or the query never started). ` +
        'A checkpoint holds metadata, offsets/, commits/ and sources/.',
    );
  }
  const queryId = metadataProblem ? '' : cp.queryId();
  const planned = cp.offsets.batchIds();
  const committed = new Set(cp.commits.batchIds());
  const batches: CheckpointReport['batches'] = planned.map((id) => {
    const seq = cp.offsets.read(id);
    const c = committed.has(id) ? cp.commits.read(id)?.value : undefined;
    if (!seq?.value) return { batchId: id, offsets: [], batchWatermarkMs: 0, batchTimestamp: '', committed: committed.has(id), damaged: seq?.problem ?? 'is missing' };
    return {
      batchId: id,
      offsets: seq.value.offsets,
      batchWatermarkMs: seq.value.metadata.batchWatermarkMs,
      batchTimestamp: new Date(seq.value.metadata.batchTimestampMs).toISOString(),
      committed: committed.has(id),
      ...(c ? { nextBatchWatermarkMs: c.nextBatchWatermarkMs } : {}),
      ...(c?.operatorWatermarksMs ? { operatorWatermarksMs: c.operatorWatermarksMs } : {}),
    };
  });
  const lastSeq = planned.length ? cp.offsets.read(planned[planned.length - 1]!)?.value : undefined;
  let sources: string[] = [];
  try {
    sources = lastSeq?.metadata.conf['sluice.sources'] ? (JSON.parse(lastSeq.metadata.conf['sluice.sources']) as string[]) : [];
  } catch {
    // an unreadable setting: the sources are not shown
  }
  const startingOffsets: unknown[] = [];
  for (let i = 0; existsSync(join(dir, 'sources', String(i), '0')); i++) startingOffsets.push(cp.readSourceStart(i)?.value ?? null);
  const deadDir = join(dir, 'deadletter');
  const deadLetterFiles = existsSync(deadDir) ? readdirSync(deadDir).length : 0;
  const { plan, problems } = inspectCheckpoint(cp, undefined, { history: true });
  const lock = readLock(dir);

  let nextAction: string;
  const last = batches[batches.length - 1];
  const blocking = problems.filter((p) => p.blocksRestart);
  if (!plan || blocking.length) {
    const first = blocking[0]!;
    nextAction =
      `A restart refuses to run: ${first.damage} ${first.meaning} Fix: ${first.fix}` +
      (blocking.length > 1 ? ` (${blocking.length - 1} more problem${blocking.length > 2 ? 's' : ''} listed above.)` : '');
  } else if (!last) {
    nextAction = startingOffsets.length
      ? `No batch was planned yet. A restart plans batch 0 from the starting offsets ${fmt(startingOffsets)} (startingOffsets is not read again).`
      : 'No batch was planned yet. A restart resolves startingOffsets and plans batch 0.';
  } else if (!last.committed) {
    const prev = batches.find((b) => b.batchId === last.batchId - 1);
    const from = prev ? prev.offsets : startingOffsets;
    nextAction =
      `Batch ${last.batchId} was planned (offsets/${last.batchId}) but not committed (no commits/${last.batchId}): the previous run stopped ` +
      `during it. A restart re-runs batch ${last.batchId} with exactly the logged offsets, from ${fmt(from)} to ${fmt(last.offsets)}, ` +
      `watermark ${new Date(last.batchWatermarkMs).toISOString()}; the sink may see that batch twice unless it is idempotent.`;
  } else {
    const perInput = last.operatorWatermarksMs
      ? ` (the minimum, or maximum by policy, of the inputs' own: ${Object.entries(last.operatorWatermarksMs)
          .map(([id, ms]) => `watermark ${id} ${new Date(ms).toISOString()}`)
          .join(', ')})`
      : '';
    nextAction =
      `Batch ${last.batchId} is committed. A restart plans batch ${last.batchId + 1}, reading from ${fmt(last.offsets)} ` +
      `with watermark ${new Date(last.nextBatchWatermarkMs ?? 0).toISOString()}${perInput}.`;
  }
  if (lock && plan && !blocking.length) {
    nextAction +=
      lock.state === 'live'
        ? ` A query is running on it now (${describeHolder(lock)}): another start is refused until it stops.`
        : ` Its lock is left from a query that is gone (${lock.reason}): the next start takes it over.`;
  }
  return {
    dir,
    queryId,
    sources,
    batches,
    startingOffsets,
    stateOperators: stateInfo(dir),
    deadLetterFiles,
    ...(lock ? { lock } : {}),
    problems,
    nextAction,
  };
}

/** The report as text for people. */
export function formatCheckpointReport(r: CheckpointReport): string {
  const lines = [`Checkpoint ${r.dir}`, `  query id: ${r.queryId || '(unknown: metadata is damaged)'}`];
  if (r.lock) lines.push(`  lock:     ${r.lock.state === 'live' ? 'held by' : `${r.lock.state} (${r.lock.reason}), left by`} ${describeHolder(r.lock)}`);
  if (r.sources.length) lines.push(`  sources:  ${r.sources.join(', ')}`);
  if (r.startingOffsets.length) lines.push(`  started from (sources/*/0): ${r.startingOffsets.map(fmt).join(', ')}`);
  lines.push(`  batches:  ${r.batches.length} planned, ${r.batches.filter((b) => b.committed).length} committed`);
  for (const b of r.batches.slice(-10)) {
    lines.push(
      b.damaged !== undefined
        ? `    ${String(b.batchId).padStart(4)}  ${b.committed ? 'committed  ' : 'UNCOMMITTED'}  DAMAGED: offsets/${b.batchId} ${b.damaged}`
        : `    ${String(b.batchId).padStart(4)}  ${b.committed ? 'committed  ' : 'UNCOMMITTED'}  watermark ${new Date(b.batchWatermarkMs).toISOString()}  offsets ${b.offsets.map(fmt).join(' ')}`,
    );
  }
  if (r.batches.length > 10) lines.push(`    (${r.batches.length - 10} earlier batches not shown)`);
  const first = r.batches[0]?.batchId ?? 0;
  if (first > 0) lines.push(`    (batches before ${first} were purged: the checkpoint keeps the last minBatchesToRetain batches)`);
  for (const s of r.stateOperators) {
    lines.push(`  state operator ${s.operatorId}: ${s.partitions} partitions, latest version ${s.latestVersion} (${s.files} files)`);
  }
  if (r.deadLetterFiles) lines.push(`  dead-letter files: ${r.deadLetterFiles} (deadletter/)`);
  for (const p of r.problems) {
    lines.push(`  ${p.blocksRestart ? 'DAMAGED' : 'note'}: ${p.damage} ${p.meaning}`, `           fix: ${p.fix}`);
  }
  lines.push('', `Next: ${r.nextAction}`);
  return lines.join('\n') + '\n';
}
