/**
 * Versioned key-value state, per stateful operator and partition (Spark's StateStore, HDFS-backed
 * provider model): batch N reads version N and commits version N+1. Each commit writes the changes as
 * `state/<op>/<partition>/<version>.delta`; every `minDeltasForSnapshot` versions a full
 * `<version>.snapshot` is written and older files are removed (maintenance). Loading version V reads the
 * newest snapshot at or below V and replays the deltas after it. A re-run batch rewrites its version.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeAtomic } from '../checkpoint/checkpoint.js';
import { decodeState, encodeState } from './codec.js';

export interface StateStoreMetrics {
  numRowsTotal: number;
  numRowsUpdated: number;
  numRowsRemoved: number;
  memoryUsedBytes: number;
  commitTimeMs: number;
}

/** One partition's state at one version, open for one batch. */
export class StateStore {
  private readonly changed = new Map<string, unknown>();
  private readonly removed = new Set<string>();
  private commitTimeMs = 0;

  constructor(
    private readonly provider: StateStoreProvider,
    readonly version: number,
    private readonly map: Map<string, unknown>,
  ) {}

  get(key: string): unknown {
    return this.map.get(key);
  }
  has(key: string): boolean {
    return this.map.has(key);
  }
  put(key: string, value: unknown): void {
    this.map.set(key, value);
    this.changed.set(key, value);
    this.removed.delete(key);
  }
  remove(key: string): void {
    if (!this.map.delete(key)) return;
    this.changed.delete(key);
    this.removed.add(key);
  }
  entries(): IterableIterator<[string, unknown]> {
    return this.map.entries();
  }
  get size(): number {
    return this.map.size;
  }

  /** Writes version+1 and returns it. */
  commit(): number {
    const t0 = Date.now();
    this.provider.writeVersion(this.version + 1, this.changed, this.removed, this.map);
    this.commitTimeMs = Date.now() - t0;
    return this.version + 1;
  }

  metrics(): StateStoreMetrics {
    return {
      numRowsTotal: this.map.size,
      numRowsUpdated: this.changed.size,
      numRowsRemoved: this.removed.size,
      memoryUsedBytes: this.provider.estimatedBytes(this.map),
      commitTimeMs: this.commitTimeMs,
    };
  }
}

export class StateStoreProvider {
  /** The map as of `cachedVersion` (the last committed), kept so the next batch need not read files. */
  private cached: { version: number; map: Map<string, unknown> } | undefined;
  private bytesPerEntry = 0;

  /** `dir` undefined: state kept in memory only (batch DataFrames, which have no checkpoint). */
  constructor(
    readonly dir: string | undefined,
    private readonly minDeltasForSnapshot = 10,
  ) {
    if (dir) mkdirSync(dir, { recursive: true });
  }

  private files(): Array<{ version: number; kind: 'delta' | 'snapshot' }> {
    if (!this.dir) return [];
    return readdirSync(this.dir)
      .map((f) => /^(\d+)\.(delta|snapshot)$/.exec(f))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => ({ version: Number(m[1]), kind: m[2] as 'delta' | 'snapshot' }));
  }

  /** Opens `version` for a batch (0 = empty, before the first batch). */
  load(version: number): StateStore {
    if (this.cached?.version === version) {
      const map = this.cached.map;
      this.cached = undefined; // the store mutates it; it is cached again on commit
      return new StateStore(this, version, map);
    }
    return new StateStore(this, version, this.readVersion(version));
  }

  private readVersion(version: number): Map<string, unknown> {
    const map = new Map<string, unknown>();
    if (version === 0 || !this.dir) return map;
    const files = this.files();
    const snapshots = files.filter((f) => f.kind === 'snapshot' && f.version <= version).map((f) => f.version);
    const base = snapshots.length ? Math.max(...snapshots) : 0;
    const dir = this.dir;
    if (base > 0) this.apply(map, join(dir, `${base}.snapshot`));
    for (let v = base + 1; v <= version; v++) {
      const path = join(dir, `${v}.delta`);
      if (!existsSync(path)) {
        throw new Error(
          `State file ${path} is missing: the checkpoint's state is incomplete, so version ${version} cannot be rebuilt. ` +
            'Restore the file, or start the query on a new checkpointLocation.',
        );
      }
      this.apply(map, path);
    }
    return map;
  }

  private apply(map: Map<string, unknown>, path: string): void {
    for (const line of readFileSync(path, 'utf8').split('\n')) {
      if (!line) continue;
      const rec = decodeState(line) as { k: string; v?: unknown; d?: 1 };
      if (rec.d) map.delete(rec.k);
      else map.set(rec.k, rec.v);
    }
  }

  /** @internal */
  writeVersion(version: number, changed: Map<string, unknown>, removed: Set<string>, map: Map<string, unknown>): void {
    if (!this.dir) {
      this.cached = { version, map };
      return;
    }
    const lines: string[] = [];
    for (const [k, v] of changed) lines.push(encodeState({ k, v }));
    for (const k of removed) lines.push(encodeState({ k, d: 1 }));
    writeAtomic(join(this.dir, `${version}.delta`), lines.join('\n') + (lines.length ? '\n' : ''));
    if (version % this.minDeltasForSnapshot === 0) {
      const all: string[] = [];
      for (const [k, v] of map) all.push(encodeState({ k, v }));
      writeAtomic(join(this.dir, `${version}.snapshot`), all.join('\n') + (all.length ? '\n' : ''));
      this.maintenance(version);
    }
    if (lines.length) this.bytesPerEntry = Math.round(lines.reduce((n, l) => n + l.length * 2, 0) / lines.length);
    this.cached = { version, map };
  }

  /** Removes files no longer needed to rebuild the versions a restart can ask for (the last snapshot and after). */
  private maintenance(snapshotVersion: number): void {
    for (const f of this.files()) {
      if (!this.dir) return;
      // Keep the previous snapshot's deltas too: a re-run of the batch that wrote this snapshot reloads version-1.
      if (f.version < snapshotVersion - this.minDeltasForSnapshot) rmSync(join(this.dir, `${f.version}.${f.kind}`), { force: true });
    }
  }

  /** A rough estimate (UTF-16 size of the encoded entries), as Spark's memoryUsedBytes is an estimate too. */
  estimatedBytes(map: Map<string, unknown>): number {
    return map.size * this.bytesPerEntry;
  }
}
