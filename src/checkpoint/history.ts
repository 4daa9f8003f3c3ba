/**
 * A query's history, kept in its checkpoint (`<checkpoint>/history/`), so that a restarted process — or
 * `sluice doctor` on the folder — can show the past: Spark keeps progress only in the running process.
 *
 * - `runs.jsonl`: a line when a run starts (run id, name, output mode, trigger, sources with their
 *   startingOffsets) and a line when it ends (with its error, if any).
 * - `progress.jsonl`: one line per batch, the progress as listeners get it.
 *
 * Written as plain appends (no fsync: this is a record for people, not part of the recovery protocol; a line
 * cut by a crash is skipped when read). Bounded: past MAX_LINES, each file keeps its newest half.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StreamingQueryProgress } from '../exec/progress.js';
import type { Trigger } from '../exec/trigger.js';
import type { OutputMode } from '../sinks/sink.js';

/** Lines kept per file before the older half is dropped. */
const MAX_LINES = 2_000;

export interface RunStarted {
  event: 'started';
  runId: string;
  name: string | null;
  timestamp: string;
  outputMode: OutputMode;
  trigger: Trigger;
  /** Each source's description, and for Kafka the options that say what it reads (no credentials). */
  sources: Array<{ description: string; options?: Record<string, string> }>;
  /** Each withWatermark's delay: with the watermark, the event time that closes a window. */
  watermarkDelaysMs: number[];
}
export interface RunEnded {
  event: 'terminated';
  runId: string;
  timestamp: string;
  exception: string | null;
}
export type RunEvent = RunStarted | RunEnded;

/** The source options worth keeping: what is read and from where, never credentials. */
const KEPT_OPTIONS = ['subscribe', 'subscribePattern', 'assign', 'startingOffsets', 'maxOffsetsPerTrigger', 'kafka.bootstrap.servers', 'kafka.security.protocol', 'kafka.isolation.level'];

export function keptSourceOptions(options: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(options).filter(([k]) => KEPT_OPTIONS.includes(k)));
}

export class QueryHistory {
  private readonly dir: string;
  private progressLines: number | undefined;
  constructor(checkpointRoot: string) {
    this.dir = join(checkpointRoot, 'history');
  }
  /** Files whose last line was checked this run: a line a crash cut short is ended before anything follows it. */
  private readonly checked = new Set<string>();
  private append(file: string, value: unknown, count: () => number): void {
    mkdirSync(this.dir, { recursive: true });
    const path = join(this.dir, file);
    if (!this.checked.has(file)) {
      this.checked.add(file);
      if (existsSync(path) && !readFileSync(path, 'utf8').endsWith('\n')) appendFileSync(path, '\n');
    }
    appendFileSync(path, JSON.stringify(value) + '\n');
    if (count() > MAX_LINES) {
      const keep = readLines(path).slice(-MAX_LINES / 2);
      writeFileSync(`${path}.tmp`, keep.map((l) => JSON.stringify(l)).join('\n') + '\n');
      renameSync(`${path}.tmp`, path);
      if (file === 'progress.jsonl') this.progressLines = keep.length;
    }
  }
  runEvent(e: RunEvent): void {
    this.append('runs.jsonl', e, () => readLines(join(this.dir, 'runs.jsonl')).length);
  }
  progress(p: StreamingQueryProgress): void {
    this.progressLines ??= readLines(join(this.dir, 'progress.jsonl')).length;
    this.progressLines++;
    this.append('progress.jsonl', p, () => this.progressLines!);
  }
}

/** The JSON lines of a history file; a line cut short by a crash is skipped. */
function readLines(path: string): unknown[] {
  if (!existsSync(path)) return [];
  const out: unknown[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line) continue;
    try {
      out.push(JSON.parse(line));
    } catch {
      // the last line of a process that died while writing it
    }
  }
  return out;
}

/** A checkpoint's history: its runs, and the progress of its last `limit` batches (oldest first). */
export function readHistory(checkpointRoot: string, limit = 100): { runs: RunEvent[]; progress: StreamingQueryProgress[] } {
  const dir = join(checkpointRoot, 'history');
  return {
    runs: readLines(join(dir, 'runs.jsonl')) as RunEvent[],
    progress: (readLines(join(dir, 'progress.jsonl')) as StreamingQueryProgress[]).slice(-limit),
  };
}
