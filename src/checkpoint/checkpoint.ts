/**
 * The checkpoint folder of one query, in Spark's layout (DESIGN §3):
 *
 *   metadata              {"id": "<query id>"}
 *   offsets/N             v1 / {batchWatermarkMs, batchTimestampMs, conf} / one line per source offset
 *   commits/N             v1 / {"nextBatchWatermarkMs": ..., "operatorWatermarksMs": {id: ms} (several inputs only)}
 *   sources/<i>/0         v1 / the offset source i started from (resolved startingOffsets)
 *   deadletter/N.jsonl    records of batch N that could not be processed (when no dead-letter topic is set)
 *
 *   lock                  the running query's owner and heartbeat (./lock.ts); absent when none runs
 *
 * Every file is written to a temporary name, fsynced, and moved into place, then its folder is fsynced
 * (./files.ts): a crash — even of the machine — leaves either the old state or the whole new file.
 * `metadata`, `offsets/N` and `commits/N` are created exclusively, never replaced: a second writer fails.
 * A running query holds the lock, and every log write first checks that it still does.
 *
 * Reads validate what they read (complete lines, the v1 header, JSON, one offset per source): a damaged
 * file is reported by name with what is wrong (./recovery.ts decides what it means and the fix).
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
import { CheckpointDamageError, CheckpointError, type CheckpointProblem } from './errors.js';
import { writeAtomic } from './files.js';
import { CheckpointLock } from './lock.js';

export { writeAtomic } from './files.js';
export { CheckpointDamageError, CheckpointError, CheckpointLockError, type CheckpointProblem } from './errors.js';

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

/** Thrown by a log's decoder: what is wrong with the file, as the end of a sentence naming it. */
class Damaged extends Error {}

/** A log file as read: its value, or what is wrong with it. */
export type LogRead<T> = { value: T; problem?: undefined } | { value?: undefined; problem: string };

/**
 * Splits a checkpoint file written as `v1\n…\n` into its lines after the header, or says what is wrong:
 * empty, cut short (every file ends with a newline), another header.
 */
function logLines(text: string): string[] {
  if (text.length === 0) throw new Damaged('is empty (0 bytes)');
  const lines = text.split('\n');
  if (lines[lines.length - 1] !== '') throw new Damaged(`ends in the middle of line ${lines.length} (every line ends with a newline): the file was cut short`);
  lines.pop();
  if (lines[0] !== VERSION) {
    throw new Damaged(`starts with "${(lines[0] ?? '').slice(0, 40)}", not "${VERSION}": it was not written by Sluice, or it is damaged`);
  }
  return lines.slice(1);
}

/**
 * A folder of numbered files, one per batch (Spark's HDFSMetadataLog). `add` creates the file exclusively:
 * a second writer on the same checkpoint is an error, not a race.
 */
export class BatchLog<T> {
  constructor(
    readonly dir: string,
    private readonly encode: (v: T) => string[],
    private readonly decode: (lines: string[], path: string) => T,
    private readonly opts: { readOnly?: boolean; afterAdd?: (batchId: number) => void; beforeAdd?: () => void } = {},
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

  /** Batch `batchId` read and validated; undefined when the file does not exist. */
  read(batchId: number): LogRead<T> | undefined {
    const path = join(this.dir, String(batchId));
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    try {
      return { value: this.decode(logLines(text), path) };
    } catch (e) {
      if (e instanceof Damaged) return { problem: e.message };
      throw e;
    }
  }

  /** Batch `batchId`, or undefined when it does not exist; a damaged file throws a CheckpointDamageError naming it. */
  get(batchId: number): T | undefined {
    const r = this.read(batchId);
    if (r?.problem !== undefined) {
      const root = join(this.dir, '..');
      const file = `${this.dir.slice(root.length + 1)}/${batchId}`;
      throw new CheckpointDamageError(root, {
        file,
        damage: `${file} ${r.problem}.`,
        meaning: '',
        fix: `Restore it from a backup of the checkpoint; \`sluice checkpoint explain ${root}\` says what a restart needs.`,
        blocksRestart: true,
      });
    }
    return r?.value;
  }

  /** Writes batch `batchId` durably; fails if it exists, whoever wrote it and whenever. */
  add(batchId: number, value: T): void {
    if (this.opts.readOnly) throw new CheckpointError(`${this.dir} was opened read-only; batch ${batchId} cannot be written.`);
    this.opts.beforeAdd?.(); // the query still holds the checkpoint's lock
    const path = join(this.dir, String(batchId));
    try {
      // Created exclusively (no check first): of two writers for one batch, exactly one succeeds.
      writeAtomic(path, [VERSION, ...this.encode(value)].join('\n') + '\n', { overwrite: false });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new CheckpointError(
          `${path} already exists: batch ${batchId} was written by another run, so another query may be writing to the same ` +
            'checkpoint (two running queries must never share a checkpointLocation). Nothing was overwritten. ' +
            'Stop the other query, then start this one again: it resumes from the checkpoint.',
        );
      }
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

  /**
   * Removes batches >= batchId (used by tests that simulate a crash before a commit). Removing them all
   * removes the folder too, as it was before its first file: an empty log folder means deleted files.
   */
  truncateFrom(batchId: number): void {
    for (const id of this.batchIds()) if (id >= batchId) rmSync(join(this.dir, String(id)));
    if (existsSync(this.dir) && readdirSync(this.dir).length === 0) rmSync(this.dir, { recursive: true });
  }
}

/** Parses line `lineNo` (1-based, as an editor shows it) of a checkpoint file, or says what is wrong with it. */
function jsonLine(text: string | undefined, lineNo: number, what: string): unknown {
  if (text === undefined) throw new Damaged(`has no line ${lineNo} (${what}): the file was cut short`);
  try {
    return JSON.parse(text);
  } catch {
    throw new Damaged(`has a line ${lineNo} (${what}) that is not JSON ("${text.slice(0, 60)}")`);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** offsets/N after its header: the batch's metadata, then one offset per source. */
function decodeOffsets(lines: string[]): OffsetSeq {
  const metadata = jsonLine(lines[0], 2, "the batch's watermark, time and settings");
  if (!isObject(metadata) || typeof metadata.batchWatermarkMs !== 'number' || typeof metadata.batchTimestampMs !== 'number' || !isObject(metadata.conf)) {
    throw new Damaged("has a line 2 that is not the batch's watermark, time and settings");
  }
  const offsets = lines.slice(1).map((l, i) => jsonLine(l, i + 3, `source ${i}'s offset`));
  const conf = metadata.conf as Record<string, string>;
  let sources: unknown;
  try {
    sources = conf['sluice.sources'] === undefined ? undefined : JSON.parse(conf['sluice.sources']);
  } catch {
    sources = undefined;
  }
  // The settings line lists the sources the batch was planned for: one offset line each.
  if (Array.isArray(sources) && offsets.length !== sources.length) {
    if (offsets.length > sources.length) throw new Damaged(`has ${offsets.length} offset lines, but was written for ${sources.length} source(s) (line 2 lists them)`);
    const k = offsets.length;
    throw new Damaged(
      `is truncated: it was written for ${sources.length} source${sources.length === 1 ? '' : 's'} (line 2 lists ${sources.map(String).join(', ')}), but has ${k} offset line${k === 1 ? '' : 's'}: ` +
        `line ${k + 3}, source ${k}'s offset (${String(sources[k])}), is missing`,
    );
  }
  return { metadata: metadata as unknown as OffsetSeqMetadata, offsets };
}

function decodeCommit(lines: string[]): CommitMetadata {
  const v = jsonLine(lines[0], 2, 'the watermark for the next batch');
  if (!isObject(v) || typeof v.nextBatchWatermarkMs !== 'number') throw new Damaged('has a line 2 without nextBatchWatermarkMs');
  return v as unknown as CommitMetadata;
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
      decodeOffsets,
      { readOnly: this.readOnly, beforeAdd: () => this.heldLock?.verify() },
    );
    this.commits = new BatchLog<CommitMetadata>(
      join(root, 'commits'),
      (v) => [JSON.stringify(v)],
      decodeCommit,
      { readOnly: this.readOnly, afterAdd: (id) => this.purge(id), beforeAdd: () => this.heldLock?.verify() },
    );
  }

  private heldLock: CheckpointLock | undefined;

  /**
   * Takes this checkpoint's lock for a starting query (./lock.ts): throws, naming the holder, when another
   * live query holds it. From then on every log write first checks the lock is still this query's.
   */
  lock(who: { queryId: string; runId: string; queryName: string | null }, opts: { staleTimeoutMs?: number; log?: (line: string) => void } = {}): CheckpointLock {
    if (this.readOnly) throw new CheckpointError(`${this.root} was opened read-only; its lock cannot be taken.`);
    if (this.heldLock) throw new CheckpointError(`${this.root}: this Checkpoint already holds its lock.`);
    this.heldLock = CheckpointLock.acquire(this.root, who, opts);
    return this.heldLock;
  }

  /** Releases the lock taken by {@link lock}, if it is still this query's. */
  unlock(): void {
    this.heldLock?.release();
    this.heldLock = undefined;
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

  /**
   * The query id stored in `metadata`, created on first use. The id survives restarts; the runId does not.
   * A missing `metadata` in a folder that already holds a query's files, or an unreadable one, is refused.
   */
  queryId(): string {
    const path = join(this.root, 'metadata');
    const read = (): string => {
      const problem = this.metadataProblem();
      if (problem) throw new CheckpointDamageError(this.root, problem);
      return (JSON.parse(readFileSync(path, 'utf8')) as { id: string }).id;
    };
    if (existsSync(path)) return read();
    const orphan = this.metadataProblem();
    if (orphan) throw new CheckpointDamageError(this.root, orphan);
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

  /**
   * What is wrong with `metadata`, if anything: unreadable, without an id, or missing from a folder that
   * holds a query's files (offsets/, commits/, sources/, state/). Undefined when it is fine or the folder is new.
   */
  metadataProblem(): CheckpointProblem | undefined {
    const path = join(this.root, 'metadata');
    const fix =
      `Restore it from a backup, or write a new id: echo '{"id":"<a new UUID>"}' > ${path} — the query then resumes from offsets/ and ` +
      'commits/ as before, under that id. To start over instead, delete the whole checkpoint folder.';
    if (!existsSync(path)) {
      const held = ['offsets', 'commits', 'sources', 'state'].filter((d) => existsSync(join(this.root, d)));
      if (!held.length) return undefined;
      return {
        file: 'metadata',
        damage: `metadata is missing, but the folder holds a query's checkpoint (${held.map((d) => `${d}/`).join(', ')}): it was deleted.`,
        meaning: 'It names the query (its id in progress and listeners); a new one would silently make this checkpoint another query\'s.',
        fix,
        blocksRestart: true,
      };
    }
    const text = readFileSync(path, 'utf8');
    let meta: unknown;
    try {
      meta = JSON.parse(text);
    } catch {
      meta = undefined;
    }
    if (isObject(meta) && typeof meta.id === 'string' && meta.id) return undefined;
    return {
      file: 'metadata',
      damage: `metadata ${text.length === 0 ? 'is empty (0 bytes)' : `holds no query id ("${text.trim().slice(0, 60)}")`}: it is damaged.`,
      meaning: 'It holds the query id, which the query needs to start.',
      fix,
      blocksRestart: true,
    };
  }

  /** `sources/<index>/0` read and validated; undefined when it does not exist. */
  readSourceStart(index: number): LogRead<Offset> | undefined {
    const path = join(this.root, 'sources', String(index), '0');
    if (!existsSync(path)) return undefined;
    try {
      const lines = logLines(readFileSync(path, 'utf8'));
      return { value: jsonLine(lines[0], 2, `where source ${index} started`) };
    } catch (e) {
      if (e instanceof Damaged) return { problem: e.message };
      throw e;
    }
  }

  /** The offset source `index` started from, written once when the query first ran. */
  sourceStart(index: number): Offset | undefined {
    const r = this.readSourceStart(index);
    if (r?.problem !== undefined) {
      const file = `sources/${index}/0`;
      throw new CheckpointDamageError(this.root, {
        file,
        damage: `${file} ${r.problem}.`,
        meaning: `It is where source ${index} started: batch 0 reads from there.`,
        fix: `Restore it from a backup; \`sluice checkpoint explain ${this.root}\` says what a restart needs.`,
        blocksRestart: true,
      });
    }
    return r?.value;
  }

  setSourceStart(index: number, offset: Offset): void {
    if (this.readOnly) throw new CheckpointError(`${this.root} was opened read-only; sources/${index}/0 cannot be written.`);
    this.heldLock?.verify();
    writeAtomic(join(this.root, 'sources', String(index), '0'), `${VERSION}\n${JSON.stringify(offset)}\n`);
  }

  deadLetterDir(): string {
    const dir = join(this.root, 'deadletter');
    if (!this.readOnly) mkdirSync(dir, { recursive: true });
    return dir;
  }
}
