/**
 * Versioned key-value state, per stateful operator and partition (Spark's StateStore, HDFS-backed
 * provider model): batch N reads version N and commits version N+1. Each commit writes the changes as
 * `state/<op>/<partition>/<version>.delta`; every `minDeltasForSnapshot` versions a full
 * `<version>.snapshot` is written. Loading version V reads the newest snapshot at or below V and replays
 * the deltas after it. A re-run batch rewrites its version. Files are written durably (fsync, then rename,
 * then fsync of the folder: checkpoint/files.ts).
 *
 * Retention (maintenance, after each snapshot): the last `minVersionsToRetain` versions stay loadable
 * (Spark's spark.sql.streaming.minBatchesToRetain, default 100): the newest snapshot at or below the oldest
 * retained version and every delta after it are kept, older files are deleted (Spark's cleanup rule).
 *
 * The delta and snapshot files are the truth; where the current version lives is the provider's:
 * - `memory` (default): a JS Map (fast; all state in the heap);
 * - `lmdb`: an LMDB database in the same folder (state larger than memory: only the keys a batch touches
 *   are in the heap). It is rebuilt from the files when it is not at the version asked for.
 *
 * LMDB after a crash. A commit writes `<V>.delta` durably first, then one LMDB transaction with the
 * changes and `__version = V`; the checkpoint's commits/N comes after both. LMDB is at most one version
 * ahead of what a restart asks for, never behind the files it needs:
 * - crash before or during the delta write: LMDB is at V-1, the restart re-runs the batch from V-1 — LMDB is used as is;
 * - crash after the delta, before or during the LMDB transaction: LMDB is still V-1 (a transaction is atomic) — same;
 * - crash after the LMDB transaction, before commits/N: LMDB says V, the restart asks for V-1, so LMDB is
 *   rebuilt from the files (snapshot + deltas up to V-1);
 * - after commits/N: the restart asks for V and LMDB is at V (or, had the OS lost LMDB's last transaction,
 *   it is rebuilt from the durable files).
 * LMDB also records which write of `<V>.delta` it holds (inode, size, time), so the same version written
 * again by another attempt (a re-run after a crash, perhaps by the memory provider) is never mistaken for it.
 * A rebuild first marks the database invalid (`__version = -1`, committed) before clearing it, so a crash
 * in the middle of a rebuild can never leave an emptied database that claims a version.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { DEFAULT_MIN_BATCHES_TO_RETAIN } from '../checkpoint/checkpoint.js';
import { isTempFile, writeAtomic } from '../checkpoint/files.js';
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

/**
 * How values are kept in LMDB: as the state codec's text (as in the delta files), so that every value type
 * the codec keeps — Dates with µs, Buffers, decimals, NaN — reads back as it was written (LMDB's own
 * msgpack encoding turns a Decimal into a string and a MicrosDate into a plain Date). A database in another
 * format is rebuilt from the files, like one at another version.
 */
const LMDB_FORMAT = 2;

/** The largest an operator partition's LMDB database may grow: 64 GiB of address space, reserved, not used. */
const LMDB_MAP_SIZE = 2 ** 36;

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

  /**
   * `dir` undefined: state kept in memory only (batch DataFrames, which have no checkpoint).
   * `minVersionsToRetain`: how many recent versions stay loadable (the query's minBatchesToRetain).
   */
  constructor(
    readonly dir: string | undefined,
    private readonly minDeltasForSnapshot = 10,
    readonly kind: StateStoreProviderKind = 'memory',
    private readonly minVersionsToRetain = DEFAULT_MIN_BATCHES_TO_RETAIN,
  ) {
    if (kind === 'lmdb' && !dir) throw new Error('The lmdb state store needs a checkpoint folder.');
    if (!(Number.isInteger(minVersionsToRetain) && minVersionsToRetain >= 1)) {
      throw new Error(`minVersionsToRetain must be a whole number, at least 1, got ${minVersionsToRetain}.`);
    }
    if (dir) {
      mkdirSync(dir, { recursive: true });
      // A write cut short by a crash leaves its temporary file; this partition has one writer (this provider), so they are garbage.
      for (const f of readdirSync(dir)) if (isTempFile(f)) rmSync(join(dir, f), { force: true });
    }
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
      // One memory map, reserved at its largest up front (virtual address space only; the file grows as
      // needed): without mapSize lmdb-js starts small and doubles it as the database grows, keeping every
      // earlier mapping, so the same pages were counted several times in the process's memory (4.4 GB
      // mapped for a 1.8 GB database at 10M keys: docs/benchmarks.md).
      const root = open({ path: join(this.dir!, 'lmdb'), compression: false, mapSize: LMDB_MAP_SIZE });
      this.lmdb = { root, data: root.openDB<unknown, string>({ name: 'state' }), times: root.openDB<number, [number, string]>({ name: 'times' }) };
    }
    const { root, data, times } = this.lmdb;
    // LMDB is a cache of the files: used only if it holds this version as written by this very delta file.
    if (root.get('__version') !== version || root.get('__stamp') !== this.deltaStamp(version) || root.get('__format') !== LMDB_FORMAT) {
      // Read the files first: if they cannot rebuild the version (a file missing), LMDB is left as it was.
      const batch = new Map<string, unknown>();
      this.replay(version, (k, v) => batch.set(k, v), (k) => batch.set(k, undefined));
      // Invalid before empty: a crash between clearing and refilling must not leave an empty database
      // that still claims its old version (it would be loaded as that version's state).
      root.putSync('__version', -1);
      data.clearSync();
      times.clearSync();
      root.transactionSync(() => {
        for (const [k, v] of batch) if (v !== undefined) data.putSync(k, encodeState(v));
        root.putSync('__format', LMDB_FORMAT);
        root.putSync('__version', version);
        root.putSync('__stamp', this.deltaStamp(version));
        // The time index is rebuilt by the operator's next pass over the state (only it knows a key's time).
        root.putSync('__timesComplete', false);
      });
    }
    return new LmdbView(data, times, root.get('__timesComplete') === true);
  }

  /**
   * Which write of `<version>.delta` this is (inode, size, modification time; '' when there is none): a
   * re-run batch rewrites the delta under a new inode, so LMDB written by an earlier attempt of the same
   * version — say, before a crash, with the re-run done by the memory provider — is never taken for it.
   */
  private deltaStamp(version: number): string {
    if (!this.dir || version === 0) return '';
    try {
      const st = statSync(join(this.dir, `${version}.delta`));
      return `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch {
      return '';
    }
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
    if (map instanceof LmdbView) map.flush(this.lmdb!.root, version, this.deltaStamp(version));
    else this.cached = { version, map: map as Map<string, unknown> };
    if (this.dir && version % this.minDeltasForSnapshot === 0) {
      writeAtomic(join(this.dir, `${version}.snapshot`), snapshotLines(map.entries()));
      this.maintenance(this.dir, version);
    }
  }

  /**
   * Removes the files no version a restart may ask for needs (Spark's HDFSBackedStateStoreProvider
   * cleanup): versions from `latest - minVersionsToRetain` on must stay loadable, so the newest snapshot at
   * or below that version is kept with every file after it. It runs after each snapshot rather than each
   * commit (one folder listing per snapshot), so files linger about minDeltasForSnapshot versions longer.
   */
  private maintenance(dir: string, latest: number): void {
    const oldestRetained = latest - this.minVersionsToRetain;
    if (oldestRetained <= 0) return;
    const files = this.files();
    const bases = files.filter((f) => f.kind === 'snapshot' && f.version <= oldestRetained).map((f) => f.version);
    if (!bases.length) return; // no snapshot to start from: every delta since version 1 is still needed
    const base = Math.max(...bases);
    for (const f of files) if (f.version < base) rmSync(join(dir, `${f.version}.${f.kind}`), { force: true });
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

/** A snapshot's lines, one entry at a time: a snapshot of state larger than memory is never one string. */
function* snapshotLines(entries: Iterable<[string, unknown]>): Generator<string> {
  for (const [k, v] of entries) yield encodeState({ k, v }) + '\n';
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
  /** The earliest committed time, or undefined when the index is empty. */
  firstTime(): number | undefined;
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
  firstTime(): number | undefined {
    for (const { key } of this.times.getRange({ limit: 1 })) return key[0];
    return undefined;
  }
  get(key: string): unknown {
    if (this.dels.has(key)) return undefined;
    if (this.puts.has(key)) return this.puts.get(key);
    const text = this.db.get(key);
    return text === undefined ? undefined : decodeState(text as string);
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
      yield [key, decodeState(value as string)];
    }
    yield* this.puts.entries();
  }
  get size(): number {
    return this.count;
  }
  flush(root: RootDatabase, version: number, stamp: string): void {
    root.transactionSync(() => {
      for (const [k, v] of this.puts) this.db.putSync(k, encodeState(v));
      for (const k of this.dels) this.db.removeSync(k);
      for (const entry of this.timeAdds) this.times.putSync(entry, 1);
      for (const entry of this.timeDels) this.times.removeSync(entry);
      if (this.markComplete) root.putSync('__timesComplete', true);
      root.putSync('__version', version);
      root.putSync('__stamp', stamp);
    });
  }
}
