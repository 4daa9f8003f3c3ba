/**
 * Versioned key-value state, per stateful operator and partition (Spark's StateStore, HDFS-backed
 * provider model): batch N reads version N and commits version N+1. Each commit writes the changes as
 * `state/<op>/<partition>/<version>.delta`; every `minDeltasForSnapshot` versions a full
 * `<version>.snapshot` is written and older files are removed (maintenance). Loading version V reads the
 * newest snapshot at or below V and replays the deltas after it. A re-run batch rewrites its version.
 *
 * The delta and snapshot files are the truth; where the current version lives is the provider's:
 * - `memory` (default): a JS Map (fast; all state in the heap);
 * - `lmdb`: an LMDB database in the same folder (state larger than memory: only the keys a batch touches
 *   are in the heap). It is rebuilt from the files when it is not at the version asked for.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { writeAtomic } from '../checkpoint/checkpoint.js';
import { decodeState, encodeState } from './codec.js';

export interface StateStoreMetrics {
  numRowsTotal: number;
  numRowsUpdated: number;
  numRowsRemoved: number;
  memoryUsedBytes: number;
  commitTimeMs: number;
}

/** What a store reads and writes: a Map, or a Map-shaped view of an LMDB database. */
export interface StateMap {
  get(key: string): unknown;
  has(key: string): boolean;
  set(key: string, value: unknown): unknown;
  delete(key: string): boolean;
  entries(): IterableIterator<[string, unknown]>;
  readonly size: number;
}

export type StateStoreProviderKind = 'memory' | 'lmdb';

/** One partition's state at one version, open for one batch. */
export class StateStore {
  private readonly changed = new Map<string, unknown>();
  private readonly removed = new Set<string>();
  private commitTimeMs = 0;

  constructor(
    private readonly provider: StateStoreProvider,
    readonly version: number,
    private readonly map: StateMap,
    /** True when this version was rebuilt from the files, not continued from the previous batch in memory. */
    readonly rebuilt = true,
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
  /** LMDB provider: the on-disk index of keys by event time, written with the state (undefined in memory). */
  timeIndex(): LmdbTimeIndex | undefined {
    return this.map instanceof LmdbView ? this.map : undefined;
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
      memoryUsedBytes: this.provider.estimatedBytes(this.map.size),
      commitTimeMs: this.commitTimeMs,
    };
  }
}

export class StateStoreProvider {
  /** memory: the map as of the last committed version, kept so the next batch need not read files. */
  private cached: { version: number; map: Map<string, unknown> } | undefined;
  private lmdb: { root: RootDatabase; data: Database<unknown, string>; times: Database<number, [number, string]> } | undefined;
  private bytesPerEntry = 0;

  /** `dir` undefined: state kept in memory only (batch DataFrames, which have no checkpoint). */
  constructor(
    readonly dir: string | undefined,
    private readonly minDeltasForSnapshot = 10,
    readonly kind: StateStoreProviderKind = 'memory',
  ) {
    if (dir) mkdirSync(dir, { recursive: true });
    if (kind === 'lmdb' && !dir) throw new Error('The lmdb state store needs a checkpoint folder.');
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
    if (this.kind === 'lmdb') return new StateStore(this, version, this.lmdbAt(version));
    if (this.cached?.version === version) {
      const map = this.cached.map;
      this.cached = undefined; // the store mutates it; it is cached again on commit
      return new StateStore(this, version, map, false);
    }
    const map = new Map<string, unknown>();
    this.replay(version, (k, v) => map.set(k, v), (k) => map.delete(k));
    return new StateStore(this, version, map);
  }

  /** Replays the snapshot and deltas that make up `version`. */
  private replay(version: number, set: (k: string, v: unknown) => void, del: (k: string) => void): void {
    if (version === 0 || !this.dir) return;
    const dir = this.dir;
    const snapshots = this.files().filter((f) => f.kind === 'snapshot' && f.version <= version).map((f) => f.version);
    const base = snapshots.length ? Math.max(...snapshots) : 0;
    const apply = (path: string): void => {
      for (const line of readFileSync(path, 'utf8').split('\n')) {
        if (!line) continue;
        const rec = decodeState(line) as { k: string; v?: unknown; d?: 1 };
        if (rec.d) del(rec.k);
        else set(rec.k, rec.v);
      }
    };
    if (base > 0) apply(join(dir, `${base}.snapshot`));
    for (let v = base + 1; v <= version; v++) {
      const path = join(dir, `${v}.delta`);
      if (!existsSync(path)) {
        throw new Error(
          `State file ${path} is missing: the checkpoint's state is incomplete, so version ${version} cannot be rebuilt. ` +
            'Restore the file, or start the query on a new checkpointLocation.',
        );
      }
      apply(path);
    }
  }

  /** The LMDB database at `version`, rebuilt from the files if it holds another one (e.g. after a crash). */
  private lmdbAt(version: number): StateMap {
    if (!this.lmdb) {
      const root = open({ path: join(this.dir!, 'lmdb'), compression: false });
      this.lmdb = { root, data: root.openDB<unknown, string>({ name: 'state' }), times: root.openDB<number, [number, string]>({ name: 'times' }) };
    }
    const { root, data, times } = this.lmdb;
    if (root.get('__version') !== version) {
      data.clearSync();
      times.clearSync();
      const batch = new Map<string, unknown>();
      this.replay(version, (k, v) => batch.set(k, v), (k) => batch.set(k, undefined));
      root.transactionSync(() => {
        for (const [k, v] of batch) if (v !== undefined) data.putSync(k, v);
        root.putSync('__version', version);
        // The time index is rebuilt by the operator's next pass over the state (only it knows a key's time).
        root.putSync('__timesComplete', false);
      });
    }
    return new LmdbView(data, times, root.get('__timesComplete') === true);
  }

  /** @internal */
  writeVersion(version: number, changed: Map<string, unknown>, removed: Set<string>, map: StateMap): void {
    if (this.dir) {
      const lines: string[] = [];
      for (const [k, v] of changed) lines.push(encodeState({ k, v }));
      for (const k of removed) lines.push(encodeState({ k, d: 1 }));
      writeAtomic(join(this.dir, `${version}.delta`), lines.join('\n') + (lines.length ? '\n' : ''));
      if (lines.length) this.bytesPerEntry = Math.round(lines.reduce((n, l) => n + l.length * 2, 0) / lines.length);
    }
    if (map instanceof LmdbView) map.flush(this.lmdb!.root, version);
    else this.cached = { version, map: map as Map<string, unknown> };
    if (this.dir && version % this.minDeltasForSnapshot === 0) {
      writeLinesAtomic(join(this.dir, `${version}.snapshot`), map.entries());
      this.maintenance(this.dir, version);
    }
  }

  /** Removes files no longer needed to rebuild the versions a restart can ask for. */
  private maintenance(dir: string, snapshotVersion: number): void {
    for (const f of this.files()) {
      // Keep the previous snapshot and its deltas: a re-run of the batch that wrote this snapshot reloads version-1.
      if (f.version < snapshotVersion - this.minDeltasForSnapshot) rmSync(join(dir, `${f.version}.${f.kind}`), { force: true });
    }
  }

  /** A rough estimate of the heap the state takes (UTF-16 size of encoded entries); LMDB state is off-heap. */
  estimatedBytes(entries: number): number {
    return this.kind === 'lmdb' ? 0 : entries * this.bytesPerEntry;
  }

  close(): void {
    this.lmdb?.root.close();
    this.lmdb = undefined;
  }
}

/** Streams a snapshot to a temporary file and renames it: a snapshot of state larger than memory is never one string. */
function writeLinesAtomic(path: string, entries: Iterable<[string, unknown]>): void {
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w');
  try {
    let chunk = '';
    for (const [k, v] of entries) {
      chunk += encodeState({ k, v }) + '\n';
      if (chunk.length > 1 << 20) {
        writeSync(fd, chunk);
        chunk = '';
      }
    }
    if (chunk) writeSync(fd, chunk);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/** The keys of an LMDB state partition by event time: `[t, key]` entries, written in the state's transaction. */
export interface LmdbTimeIndex {
  /** True when every key of this version is indexed (false after the database was rebuilt from files). */
  readonly timesComplete: boolean;
  timeAdd(t: number, key: string): void;
  timeDel(t: number, key: string): void;
  markTimesComplete(): void;
  /** Committed keys whose time is at or before `ms` (integer milliseconds), with their times. */
  keysThrough(ms: number): Array<[string, number]>;
}

/**
 * A Map-shaped view of an LMDB database for one batch: reads go to this batch's changes first, then to
 * LMDB; the changes — and the time index's — are written in one transaction at commit.
 */
class LmdbView implements StateMap, LmdbTimeIndex {
  private readonly puts = new Map<string, unknown>();
  private readonly dels = new Set<string>();
  private readonly timeAdds: Array<[number, string]> = [];
  private readonly timeDels: Array<[number, string]> = [];
  private markComplete = false;
  private count: number;
  constructor(
    private readonly db: Database<unknown, string>,
    private readonly times: Database<number, [number, string]>,
    readonly timesComplete: boolean,
  ) {
    this.count = db.getCount();
  }
  timeAdd(t: number, key: string): void {
    this.timeAdds.push([t, key]);
  }
  timeDel(t: number, key: string): void {
    this.timeDels.push([t, key]);
  }
  markTimesComplete(): void {
    this.markComplete = true;
  }
  keysThrough(ms: number): Array<[string, number]> {
    const out: Array<[string, number]> = [];
    if (!Number.isFinite(ms)) return out;
    // Array keys sort element by element, and a shorter prefix first: [ms + 1] ends after every [ms, …].
    for (const { key } of this.times.getRange({ end: [Math.floor(ms) + 1] as unknown as [number, string] })) out.push([key[1], key[0]]);
    return out;
  }
  get(key: string): unknown {
    if (this.dels.has(key)) return undefined;
    return this.puts.has(key) ? this.puts.get(key) : this.db.get(key);
  }
  has(key: string): boolean {
    return this.get(key) !== undefined;
  }
  set(key: string, value: unknown): this {
    if (!this.has(key)) this.count++;
    this.dels.delete(key);
    this.puts.set(key, value);
    return this;
  }
  delete(key: string): boolean {
    if (!this.has(key)) return false;
    this.puts.delete(key);
    this.dels.add(key);
    this.count--;
    return true;
  }
  *entries(): IterableIterator<[string, unknown]> {
    for (const { key, value } of this.db.getRange()) {
      if (this.dels.has(key) || this.puts.has(key)) continue;
      yield [key, value];
    }
    yield* this.puts.entries();
  }
  get size(): number {
    return this.count;
  }
  flush(root: RootDatabase, version: number): void {
    root.transactionSync(() => {
      for (const [k, v] of this.puts) this.db.putSync(k, v);
      for (const k of this.dels) this.db.removeSync(k);
      for (const entry of this.timeAdds) this.times.putSync(entry, 1);
      for (const entry of this.timeDels) this.times.removeSync(entry);
      if (this.markComplete) root.putSync('__timesComplete', true);
      root.putSync('__version', version);
    });
  }
}
