/**
 * The checkpoint folder of one query, in Spark's layout (DESIGN §3):
 *
 *   metadata              {"id": "<query id>"}
 *   offsets/N             v1 / {batchWatermarkMs, batchTimestampMs, conf} / one line per source offset
 *   commits/N             v1 / {"nextBatchWatermarkMs": ..., "operatorWatermarksMs": {id: ms} (several inputs only)}
 *   sources/<i>/0         v1 / the offset source i started from (resolved startingOffsets)
 *   deadletter/N.jsonl    records of batch N that could not be processed (when no dead-letter topic is set)
 *
 * Every file is written to a temporary name and renamed, so a crash leaves either the old state or the
 * new file, never half a file.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

export type Offset = unknown;

export interface OffsetSeqMetadata {
  batchWatermarkMs: number;
  batchTimestampMs: number;
  conf: Record<string, string>;
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

/** Writes `text` to `path` atomically (temp file + rename). */
export function writeAtomic(path: string, text: string): void {
  const tmp = `${path}.${process.pid}.${randomUUID().slice(0, 8)}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
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
  ) {
    mkdirSync(dir, { recursive: true });
  }

  batchIds(): number[] {
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

  add(batchId: number, value: T): void {
    const path = join(this.dir, String(batchId));
    if (existsSync(path)) {
      throw new CheckpointError(
        `${path} already exists: another query may be writing to the same checkpoint. ` +
          'Two running queries must never share a checkpointLocation.',
      );
    }
    writeAtomic(path, [VERSION, ...this.encode(value)].join('\n') + '\n');
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

export class Checkpoint {
  readonly offsets: BatchLog<OffsetSeq>;
  readonly commits: BatchLog<CommitMetadata>;

  constructor(readonly root: string) {
    mkdirSync(root, { recursive: true });
    this.offsets = new BatchLog<OffsetSeq>(
      join(root, 'offsets'),
      (v) => [JSON.stringify(v.metadata), ...v.offsets.map((o) => JSON.stringify(o))],
      (lines, path) => ({
        metadata: parseJson(lines[0], path) as OffsetSeqMetadata,
        offsets: lines.slice(1).map((l) => parseJson(l, path)),
      }),
    );
    this.commits = new BatchLog<CommitMetadata>(
      join(root, 'commits'),
      (v) => [JSON.stringify(v)],
      (lines, path) => parseJson(lines[0], path) as CommitMetadata,
    );
  }

  /** The query id stored in `metadata`, created on first use. The id survives restarts; the runId does not. */
  queryId(): string {
    const path = join(this.root, 'metadata');
    if (existsSync(path)) {
      const meta = parseJson(readFileSync(path, 'utf8'), path) as { id?: string };
      if (!meta.id) throw new CheckpointError(`${path} has no "id": the checkpoint is damaged.`);
      return meta.id;
    }
    const id = randomUUID();
    writeAtomic(path, JSON.stringify({ id }) + '\n');
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
    const dir = join(this.root, 'sources', String(index));
    mkdirSync(dir, { recursive: true });
    writeAtomic(join(dir, '0'), `${VERSION}\n${JSON.stringify(offset)}\n`);
  }

  deadLetterDir(): string {
    const dir = join(this.root, 'deadletter');
    mkdirSync(dir, { recursive: true });
    return dir;
  }
}
