/**
 * `sluice checkpoint explain DIR`: what a checkpoint holds and what a restart would do with it, in words
 * (and as JSON). Damaged or partial checkpoints get an explanation, never a stack trace.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Checkpoint, CheckpointError, OffsetSeq } from './checkpoint.js';

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
  }>;
  startingOffsets: unknown[];
  stateOperators: Array<{ operatorId: number; partitions: number; latestVersion: number; files: number }>;
  deadLetterFiles: number;
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
  if (!existsSync(join(dir, 'metadata'))) {
    throw new CheckpointError(
      `${dir} has no "metadata" file, so it is not a Sluice/Spark checkpoint (or the query never started). ` +
        'A checkpoint holds metadata, offsets/, commits/ and sources/.',
    );
  }
  // Read-only: explaining a checkpoint must never change it (no folders created, nothing purged).
  const cp = new Checkpoint(dir, { readOnly: true });
  const queryId = cp.queryId();
  const planned = cp.offsets.batchIds();
  const committed = new Set(cp.commits.batchIds());
  const batches = planned.map((id) => {
    const seq = cp.offsets.get(id) as OffsetSeq;
    const c = committed.has(id) ? cp.commits.get(id) : undefined;
    return {
      batchId: id,
      offsets: seq.offsets,
      batchWatermarkMs: seq.metadata.batchWatermarkMs,
      batchTimestamp: new Date(seq.metadata.batchTimestampMs).toISOString(),
      committed: c !== undefined,
      ...(c ? { nextBatchWatermarkMs: c.nextBatchWatermarkMs } : {}),
      ...(c?.operatorWatermarksMs ? { operatorWatermarksMs: c.operatorWatermarksMs } : {}),
    };
  });
  const lastSeq = planned.length ? cp.offsets.get(planned[planned.length - 1]!) : undefined;
  const sources = lastSeq?.metadata.conf['sluice.sources'] ? (JSON.parse(lastSeq.metadata.conf['sluice.sources']) as string[]) : [];
  const startingOffsets: unknown[] = [];
  for (let i = 0; existsSync(join(dir, 'sources', String(i), '0')); i++) startingOffsets.push(cp.sourceStart(i));
  const deadDir = join(dir, 'deadletter');
  const deadLetterFiles = existsSync(deadDir) ? readdirSync(deadDir).length : 0;

  let nextAction: string;
  const last = batches[batches.length - 1];
  if (!last) {
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
  return { dir, queryId, sources, batches, startingOffsets, stateOperators: stateInfo(dir), deadLetterFiles, nextAction };
}

/** The report as text for people. */
export function formatCheckpointReport(r: CheckpointReport): string {
  const lines = [`Checkpoint ${r.dir}`, `  query id: ${r.queryId}`];
  if (r.sources.length) lines.push(`  sources:  ${r.sources.join(', ')}`);
  if (r.startingOffsets.length) lines.push(`  started from (sources/*/0): ${r.startingOffsets.map(fmt).join(', ')}`);
  lines.push(`  batches:  ${r.batches.length} planned, ${r.batches.filter((b) => b.committed).length} committed`);
  for (const b of r.batches.slice(-10)) {
    lines.push(
      `    ${String(b.batchId).padStart(4)}  ${b.committed ? 'committed  ' : 'UNCOMMITTED'}  watermark ${new Date(b.batchWatermarkMs).toISOString()}  offsets ${b.offsets.map(fmt).join(' ')}`,
    );
  }
  if (r.batches.length > 10) lines.push(`    (${r.batches.length - 10} earlier batches not shown)`);
  const first = r.batches[0]?.batchId ?? 0;
  if (first > 0) lines.push(`    (batches before ${first} were purged: the checkpoint keeps the last minBatchesToRetain batches)`);
  for (const s of r.stateOperators) {
    lines.push(`  state operator ${s.operatorId}: ${s.partitions} partitions, latest version ${s.latestVersion} (${s.files} files)`);
  }
  if (r.deadLetterFiles) lines.push(`  dead-letter files: ${r.deadLetterFiles} (deadletter/)`);
  lines.push('', `Next: ${r.nextAction}`);
  return lines.join('\n') + '\n';
}
