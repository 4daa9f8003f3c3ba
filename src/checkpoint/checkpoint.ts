/**
 * The checkpoint folder of one query, in Spark's layout (DESIGN §3):
 *
 *   metadata              {"id": "<query id>"}
 *   offsets/N             v1 / {batchWatermarkMs, batchTimestampMs, conf} / one line per source offset
 *   commits/N             v1 / {"nextBatchWatermarkMs": ..., "operatorWatermarksMs": {id: ms} (several inputs only)}
 *   sources/<i>/0         v1 / the offset source i started from (resolved startingOffsets)
 *   deadletter/N.jsonl    records of batch N that could not be processed (when no dead-letter topic is set)
 *
 * Every file is written to a temporary name, fsynced, and moved into place, then its folder is fsynced
 * (./files.ts): a crash — even of the machine — leaves either the old state or the whole new file.
 * `metadata`, `offsets/N` and `commits/N` are never replaced: a second writer fails.
 *
 * Only the last `minBatchesToRetain` batches are kept in offsets/ and commits/ (Spark's
 * spark.sql.streaming.minBatchesToRetain, default 100): older entries are purged once a batch commits.
 *
 * Folders are created when something is first written to them, so reading a checkpoint (`sluice
 * checkpoint explain`) never changes it; `readOnly` makes that a guarantee.
 */
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { redactOptions } from '../util/redact.js';
import { writeAtomic } from './files.js';

export { writeAtomic } from './files.js';

export type Offset = unknown;

export interface OffsetSeqMetadata {
  batchWatermarkMs: number;
  batchTimestampMs: number;
  conf: Record<string, string>;
  /**
   * Sluice: where this batch reads from, by source index, when that is not the previous batch's end — a
   * Kafka partition that appeared since (it starts at its earliest offset, fixed here so that a re-run reads
   * the same records even if retention moved the earliest offset meanwhile).
   */
  readFrom?: Record<string, Offset>;
}

export interface OffsetSeq {
  metadata: OffsetSeqMetadata;
  /** One entry per source, in the order the sources appear in the plan. */
  offsets: Offset[];
}

export interface CommitMetadata {
  nextBatchWatermarkMs: number;
  /**
   * Each watermark operator's own watermark (by operator id), when the query has several inputs with a
   * watermark. Spark keeps these only in memory, so after a restart the first batch's inputs alone decide
   * the global watermark; Sluice logs them so a restart gives the same watermarks as no restart.
   */
  operatorWatermarksMs?: Record<string, number>;
}

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

const VERSION = 'v1';

/** The session setting for how many batches offsets/, commits/ and the state files keep (Spark's name, `sluice.` prefix). */
export const MIN_BATCHES_TO_RETAIN_CONF = 'sluice.sql.streaming.minBatchesToRetain';
/** Spark's default for spark.sql.streaming.minBatchesToRetain. */
export const DEFAULT_MIN_BATCHES_TO_RETAIN = 100;
/** Deletes a temporary checkpoint even when its query failed (Spark's spark.sql.streaming.forceDeleteTempCheckpointLocation). */
export const FORCE_DELETE_TEMP_CHECKPOINT_CONF = 'sluice.sql.streaming.forceDeleteTempCheckpointLocation';

/** Reads `sluice.sql.streaming.minBatchesToRetain` (undefined: the default), refusing values that would keep nothing. */
export function minBatchesToRetain(value: string | undefined): number {
  if (value === undefined) return DEFAULT_MIN_BATCHES_TO_RETAIN;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) {
    throw new CheckpointError(
      `${MIN_BATCHES_TO_RETAIN_CONF} must be a whole number of batches, at least 1, got "${value}". ` +
        `It is how many recent batches the checkpoint can re-run or roll back to (default ${DEFAULT_MIN_BATCHES_TO_RETAIN}).`,
    );
  }
  return n;
}

/**
 * The folder name for a query under a session checkpoint root (`<root>/<queryName>`). A query name is
 * free text; as a folder name it must not climb out of the root (`..`, `/`), name a hidden or special
 * folder, or differ by platform. Unsafe characters become `_`, and then a short hash of the original name
 * is added, so two names that sanitize alike ("a/b", "a_b") still get different folders — two queries
 * must never share a checkpoint. A name that is already safe is used as it is (Spark's folder name).
 */
export function checkpointFolderName(queryName: string): string {
  const safe = queryName.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, (dots) => '_'.repeat(dots.length)).slice(0, 100);
  if (safe === queryName && safe.length > 0) return safe;
  const hash = createHash('sha256').update(queryName).digest('hex').slice(0, 8);
  return `${safe || 'query'}-${hash}`;
}

/**
 * A folder of numbered files, one per batch (Spark's HDFSMetadataLog). `add` refuses to overwrite an
 * existing batch: a second writer on the same checkpoint is an error, not a race.
 */
export class BatchLog<T> {
  constructor(
    readonly dir: string,
    private readonly encode: (v: T) => string[],
    private readonly decode: (lines: string[], path: string) => T,
    private readonly opts: { readOnly?: boolean; afterAdd?: (batchId: number) => void } = {},
  ) {}

  batchIds(): number[] {
    if (!existsSync(this.dir)) return [];
    return readdirSync(this.dir)
      .filter((f) => /^\d+$/.test(f))
      .map(Number)
      .sort((a, b) => a - b);
  }

  latestId(): number | undefined {
    const ids = this.batchIds();
    return ids.length ? ids[ids.length - 1] : undefined;
  }

  has(batchId: number): boolean {
    return existsSync(join(this.dir, String(batchId)));
  }

  get(batchId: number): T | undefined {
    const path = join(this.dir, String(batchId));
    if (!existsSync(path)) return undefined;
    const lines = readFileSync(path, 'utf8').split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    if (lines[0] !== VERSION) {
      throw new CheckpointError(
        `${path} starts with "${lines[0] ?? ''}", not "${VERSION}": it was not written by Sluice, or it is damaged. ` +
          `Use a new checkpointLocation, or restore this file from a backup.`,
      );
    }
    return this.decode(lines.slice(1), path);
  }

  /** Writes batch `batchId` durably; fails if it exists, whoever wrote it and whenever. */
  add(batchId: number, value: T): void {
    if (this.opts.readOnly) throw new CheckpointError(`${this.dir} was opened read-only; batch ${batchId} cannot be written.`);
    const path = join(this.dir, String(batchId));
    const exists = (): CheckpointError =>
      new CheckpointError(
        `${path} already exists: batch ${batchId} was written by another run, so another query may be writing to the same ` +
          'checkpoint (two running queries must never share a checkpointLocation). Nothing was overwritten. ' +
          'Stop the other query, then start this one again: it resumes from the checkpoint.',
      );
    if (existsSync(path)) throw exists();
    try {
      writeAtomic(path, [VERSION, ...this.encode(value)].join('\n') + '\n', { overwrite: false });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw exists(); // it appeared after the check: a concurrent writer
      throw e;
    }
    this.opts.afterAdd?.(batchId);
  }

  /** Removes the batches below `threshold`, oldest first, so a crash midway leaves an unbroken run of batches. */
  purgeBefore(threshold: number): void {
    if (this.opts.readOnly) return;
    for (const id of this.batchIds()) {
      if (id >= threshold) break;
      rmSync(join(this.dir, String(id)), { force: true });
    }
  }

  /** Removes batches >= batchId (used by tests that simulate a crash before a commit). */
  truncateFrom(batchId: number): void {
    for (const id of this.batchIds()) if (id >= batchId) rmSync(join(this.dir, String(id)));
  }
}

function parseJson(text: string | undefined, path: string): unknown {
  try {
    return JSON.parse(text ?? '');
  } catch {
    throw new CheckpointError(`${path} holds malformed JSON ("${(text ?? '').slice(0, 60)}"): the checkpoint is damaged.`);
  }
}

export interface CheckpointOptions {
  /** Never write, purge or create anything (for `sluice checkpoint explain`). */
  readOnly?: boolean;
  /** How many recent batches offsets/ and commits/ keep (default 100, Spark's). */
  minBatchesToRetain?: number;
}

export class Checkpoint {
  readonly offsets: BatchLog<OffsetSeq>;
  readonly commits: BatchLog<CommitMetadata>;
  readonly minBatchesToRetain: number;
  private readonly readOnly: boolean;

  constructor(
    readonly root: string,
    opts: CheckpointOptions = {},
  ) {
    this.readOnly = opts.readOnly ?? false;
    this.minBatchesToRetain = opts.minBatchesToRetain ?? DEFAULT_MIN_BATCHES_TO_RETAIN;
    if (!(Number.isInteger(this.minBatchesToRetain) && this.minBatchesToRetain >= 1)) {
      throw new CheckpointError(`minBatchesToRetain must be a whole number, at least 1, got ${this.minBatchesToRetain}.`);
    }
    this.offsets = new BatchLog<OffsetSeq>(
      join(root, 'offsets'),
      // Settings are logged for restarts; a secret-bearing one is never written to disk in clear.
      (v) => [JSON.stringify({ ...v.metadata, conf: redactOptions(v.metadata.conf) }), ...v.offsets.map((o) => JSON.stringify(o))],
      (lines, path) => ({
        metadata: parseJson(lines[0], path) as OffsetSeqMetadata,
        offsets: lines.slice(1).map((l) => parseJson(l, path)),
      }),
      { readOnly: this.readOnly },
    );
    this.commits = new BatchLog<CommitMetadata>(
      join(root, 'commits'),
      (v) => [JSON.stringify(v)],
      (lines, path) => parseJson(lines[0], path) as CommitMetadata,
      { readOnly: this.readOnly, afterAdd: (id) => this.purge(id) },
    );
  }

  /**
   * After batch `committed` is committed, drops the log entries a restart can no longer need: batches below
   * `committed - minBatchesToRetain` (Spark's purge threshold), so the last minBatchesToRetain batches can
   * still be re-run (each needs its own offsets and those of the batch before it).
   */
  private purge(committed: number): void {
    const threshold = committed - this.minBatchesToRetain;
    if (threshold <= 0) return;
    // commits first: a crash between the two leaves offsets without commits (harmless, below the latest), never the reverse.
    this.commits.purgeBefore(threshold);
    this.offsets.purgeBefore(threshold);
  }

  /** The query id stored in `metadata`, created on first use. The id survives restarts; the runId does not. */
  queryId(): string {
    const path = join(this.root, 'metadata');
    const read = (): string => {
      const meta = parseJson(readFileSync(path, 'utf8'), path) as { id?: string };
      if (!meta.id) throw new CheckpointError(`${path} has no "id": the checkpoint is damaged.`);
      return meta.id;
    };
    if (existsSync(path)) return read();
    if (this.readOnly) throw new CheckpointError(`${path} does not exist: ${this.root} is not a checkpoint (or its query never started).`);
    const id = randomUUID();
    try {
      writeAtomic(path, JSON.stringify({ id }) + '\n', { overwrite: false });
    } catch (e) {
      // Another start on the same folder wrote it first: its id is the query's id.
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return read();
      throw e;
    }
    return id;
  }

  /** The offset source `index` started from, written once when the query first ran. */
  sourceStart(index: number): Offset | undefined {
    const path = join(this.root, 'sources', String(index), '0');
    if (!existsSync(path)) return undefined;
    const lines = readFileSync(path, 'utf8').split('\n');
    return parseJson(lines[1], path);
  }

  setSourceStart(index: number, offset: Offset): void {
    if (this.readOnly) throw new CheckpointError(`${this.root} was opened read-only; sources/${index}/0 cannot be written.`);
    writeAtomic(join(this.root, 'sources', String(index), '0'), `${VERSION}\n${JSON.stringify(offset)}\n`);
  }

  deadLetterDir(): string {
    const dir = join(this.root, 'deadletter');
    if (!this.readOnly) mkdirSync(dir, { recursive: true });
    return dir;
  }
}
