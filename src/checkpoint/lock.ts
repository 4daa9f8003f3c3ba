/**
 * One running query per checkpoint (issue 16, item 6): `<checkpoint>/lock`.
 *
 * The file is created exclusively (./files.ts: a complete temporary file hard-linked into place, so the
 * name never shows half an owner) and holds its owner as one JSON line: pid, host, query id, runId, query
 * name, start time, the owner's stale timeout and a random token. Its modification time is the heartbeat:
 * the owner refreshes it every staleTimeout/6 (5 s by default) on an unref'd timer, and before every write
 * to offsets/, commits/ and sources/ checks that the file is still its own, so an owner whose lock was
 * taken over stops before writing a batch.
 *
 * A query that finds the lock when it starts:
 *  - live (heartbeat younger than the stale timeout, and — on the same host, boot and pid namespace — its
 *    pid runs and is not this process's own pid from an earlier process): refused at once, the holder named;
 *  - stale (no heartbeat for the stale timeout: its process died, or its machine) or dead (same host, pid
 *    gone — checked with `process.kill(pid, 0)`): taken over. The lock is renamed to a unique name first,
 *    and only if what was moved is the very lock judged stale (same inode and token, still not live) is it
 *    removed; otherwise another starter replaced it meanwhile and it is put back. Then the exclusive create
 *    is tried again: of two starters taking over at once, exactly one creates the new lock.
 *
 * Staleness compares the file's mtime with this machine's clock: across machines sharing a checkpoint
 * (a network file system), their clocks must agree to well within the stale timeout.
 */
import fs from 'node:fs';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { parseDuration } from '../util/duration.js';
import { CheckpointError, CheckpointLockError } from './errors.js';
import { fsyncDir, writeAtomic } from './files.js';

/** The lock's file name in the checkpoint folder. */
export const LOCK_FILE = 'lock';
/** The session setting for the stale timeout: a duration ("30 seconds") or milliseconds. */
export const LOCK_STALE_TIMEOUT_CONF = 'sluice.sql.streaming.checkpointLock.staleTimeout';
/** A lock without a heartbeat for this long is taken over (six missed heartbeats). */
export const DEFAULT_LOCK_STALE_TIMEOUT_MS = 30_000;

/** What the lock file holds. */
export interface LockOwner {
  version: 1;
  /** Random per acquisition: tells this lock from a later one of the same run. */
  token: string;
  pid: number;
  hostname: string;
  queryId: string;
  runId: string;
  queryName: string | null;
  /** When the lock was taken (ISO). */
  startedAt: string;
  /** The holder's stale timeout: a starter never judges the lock stale sooner than its holder expects. */
  staleTimeoutMs: number;
  /** Linux: the kernel's boot id and the holder's pid namespace. A pid means the same process only where both match. */
  bootId?: string;
  pidNamespace?: string;
}

/** The lock as a reader sees it (`sluice checkpoint explain`, a starting query). */
export interface LockInfo {
  /** Undefined when the file cannot be read as an owner (being written by an O_EXCL copy, or damaged). */
  owner?: LockOwner;
  /** The last heartbeat: the file's modification time (ISO). */
  lastHeartbeat: string;
  heartbeatAgeMs: number;
  /** live: a start is refused; stale or dead: a start takes it over. */
  state: 'live' | 'stale' | 'dead';
  /** Why, in words. */
  reason: string;
}

/** Reads `sluice.sql.streaming.checkpointLock.staleTimeout` (undefined: 30 s). */
export function lockStaleTimeoutMs(value: string | undefined): number {
  if (value === undefined) return DEFAULT_LOCK_STALE_TIMEOUT_MS;
  let ms: number;
  try {
    ms = /^\s*\d+(\.\d+)?\s*$/.test(value) ? Number(value) : parseDuration(value, LOCK_STALE_TIMEOUT_CONF);
  } catch {
    ms = NaN;
  }
  if (!(Number.isFinite(ms) && ms > 0)) {
    throw new CheckpointError(
      `${LOCK_STALE_TIMEOUT_CONF} must be a duration such as "30 seconds" (or milliseconds), above 0; got "${value}". ` +
        `It is how long a checkpoint lock without a heartbeat is honoured before another query takes it over (default ${DEFAULT_LOCK_STALE_TIMEOUT_MS / 1000} s).`,
    );
  }
  return ms;
}

/** The tokens of the locks this process holds: a lock with this process's pid but another token is a dead one's. */
const HELD = new Set<string>();

function readOr(read: () => string): string | undefined {
  try {
    return read().trim();
  } catch {
    return undefined; // not Linux, or /proc not mounted
  }
}
const BOOT_ID = readOr(() => fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8'));
const PID_NAMESPACE = readOr(() => fs.readlinkSync('/proc/self/ns/pid'));

/**
 * True when the holder's pid can be checked from here: same host name, and — where recorded — the same boot
 * and pid namespace. Containers share host names across pid namespaces (hostNetwork) and reuse small pids
 * (pid 1 in every container), so without those a pid proves nothing and only the heartbeat counts.
 */
function samePidSpace(o: LockOwner): boolean {
  return o.hostname === hostname() && (o.bootId === undefined || o.bootId === BOOT_ID) && (o.pidNamespace === undefined || o.pidNamespace === PID_NAMESPACE);
}

/** True while process `pid` exists on this host (EPERM: it exists, owned by someone else). */
function pidRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function parseOwner(text: string): LockOwner | undefined {
  try {
    const o = JSON.parse(text) as Partial<LockOwner>;
    if (o && typeof o === 'object' && typeof o.token === 'string' && typeof o.pid === 'number' && typeof o.hostname === 'string') return o as LockOwner;
  } catch {
    // unreadable: judged by its heartbeat alone
  }
  return undefined;
}

interface Seen {
  info: LockInfo;
  ino: number;
}

/** Reads the lock file at `path`: undefined if there is none. */
function look(path: string, staleTimeoutMs: number): Seen | undefined {
  let text: string;
  let st: fs.Stats;
  try {
    st = fs.statSync(path);
    text = fs.readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  const owner = parseOwner(text);
  const age = Math.max(0, Date.now() - st.mtimeMs);
  // Never sooner than the holder itself expects: its heartbeat interval follows its own timeout.
  const timeout = Math.max(staleTimeoutMs, owner?.staleTimeoutMs ?? 0);
  let state: LockInfo['state'] = 'live';
  let reason = `its heartbeat is ${seconds(age)} old (taken over after ${seconds(timeout)} without one)`;
  if (owner && samePidSpace(owner) && owner.pid !== process.pid && !pidRuns(owner.pid)) {
    state = 'dead';
    reason = `pid ${owner.pid} no longer runs on this host`;
  } else if (owner && samePidSpace(owner) && owner.pid === process.pid && !HELD.has(owner.token)) {
    // This very pid, but not a lock this process took: an earlier process that had the same pid (a
    // restarted container's pid 1) died holding it.
    state = 'dead';
    reason = `it was taken by an earlier process with this process's pid ${owner.pid}, which is gone`;
  } else if (age > timeout) {
    state = 'stale';
    reason = `no heartbeat for ${seconds(age)} (stale after ${seconds(timeout)})`;
  }
  return { info: { ...(owner ? { owner } : {}), lastHeartbeat: new Date(st.mtimeMs).toISOString(), heartbeatAgeMs: Math.round(age), state, reason }, ino: st.ino };
}

const seconds = (ms: number): string => (ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`);

/** Who holds a lock, in words: "query q [id = …, runId = …], pid 12 on host h, since …, last heartbeat … (1.2 s ago)". */
export function describeHolder(info: LockInfo): string {
  const o = info.owner;
  const who = o
    ? `query ${o.queryName ?? o.queryId} [id = ${o.queryId}, runId = ${o.runId}], pid ${o.pid} on host ${o.hostname}, running since ${o.startedAt}`
    : 'an unknown owner (the lock file is not readable as one)';
  return `${who}, last heartbeat ${info.lastHeartbeat} (${seconds(info.heartbeatAgeMs)} ago)`;
}

/**
 * The checkpoint's lock as it is now, without taking or touching it (for `sluice checkpoint explain`).
 * Undefined when no query holds it.
 */
export function readLock(root: string, staleTimeoutMs = DEFAULT_LOCK_STALE_TIMEOUT_MS): LockInfo | undefined {
  return look(join(root, LOCK_FILE), staleTimeoutMs)?.info;
}

/** The lock of a running query on its checkpoint. Take it with {@link CheckpointLock.acquire}. */
export class CheckpointLock {
  private timer: NodeJS.Timeout | undefined;
  private lost: string | undefined;

  private constructor(
    readonly root: string,
    readonly owner: LockOwner,
    private readonly log: (line: string) => void,
  ) {
    const every = Math.max(50, Math.floor(owner.staleTimeoutMs / 6));
    this.timer = setInterval(() => this.beat(), every);
    this.timer.unref(); // a heartbeat never keeps the process alive
  }

  get path(): string {
    return join(this.root, LOCK_FILE);
  }

  /**
   * Takes the lock of checkpoint `root` for a starting query, or throws a {@link CheckpointLockError}
   * naming the live holder. A stale lock, or one whose pid is gone on this host, is taken over.
   */
  static acquire(
    root: string,
    who: { queryId: string; runId: string; queryName: string | null },
    opts: { staleTimeoutMs?: number; log?: (line: string) => void } = {},
  ): CheckpointLock {
    const staleTimeoutMs = opts.staleTimeoutMs ?? DEFAULT_LOCK_STALE_TIMEOUT_MS;
    const log = opts.log ?? (() => {});
    const path = join(root, LOCK_FILE);
    const owner: LockOwner = {
      version: 1,
      token: randomUUID(),
      pid: process.pid,
      hostname: hostname(),
      ...who,
      startedAt: new Date().toISOString(),
      staleTimeoutMs,
      ...(BOOT_ID ? { bootId: BOOT_ID } : {}),
      ...(PID_NAMESPACE ? { pidNamespace: PID_NAMESPACE } : {}),
    };
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        HELD.add(owner.token); // before the file exists: a look by this process must never call it dead
        writeAtomic(path, JSON.stringify(owner) + '\n', { overwrite: false });
        return new CheckpointLock(root, owner, log);
      } catch (e) {
        HELD.delete(owner.token);
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const seen = look(path, staleTimeoutMs);
      if (!seen) continue; // released meanwhile: try again
      if (seen.info.state === 'live') {
        throw new CheckpointLockError(
          `Cannot start query ${who.queryName ?? who.queryId} on checkpoint ${root}: another query holds its lock (${path}): ` +
            `${describeHolder(seen.info)}. Two queries must never share a checkpointLocation — they would write the same batches twice. ` +
            `Stop the other query first, or give this one its own checkpointLocation. If that query is dead (its machine went down), ` +
            `its lock is taken over once its heartbeat is older than ${seconds(Math.max(staleTimeoutMs, seen.info.owner?.staleTimeoutMs ?? 0))} ` +
            `(${LOCK_STALE_TIMEOUT_CONF}); on the same host a lock whose process is gone is taken over at once.`,
        );
      }
      takeOver(path, seen, staleTimeoutMs, log);
    }
    throw new CheckpointLockError(
      `Cannot start query ${who.queryName ?? who.queryId} on checkpoint ${root}: its lock (${path}) kept being taken by other starts at the same time. ` +
        'Two queries must never share a checkpointLocation: start only one.',
    );
  }

  /**
   * Throws if the lock is no longer this query's (taken over after its heartbeat went stale), else
   * refreshes the heartbeat. Called before every write to the checkpoint's logs.
   */
  verify(): void {
    this.check();
    if (this.lost) {
      throw new CheckpointLockError(
        `This query lost the lock on checkpoint ${this.root}: ${this.lost}. Another query took it over, which it does when this ` +
          `query's heartbeat is older than ${seconds(this.owner.staleTimeoutMs)} (${LOCK_STALE_TIMEOUT_CONF}) — was this process ` +
          'paused, or its event loop blocked that long? This query stops before writing another batch; the other one goes on.',
      );
    }
  }

  /** Removes the lock if it is still this query's. Idempotent; never throws (it runs as a query ends). */
  release(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.lost) return void HELD.delete(this.owner.token);
    this.lost = 'it was released';
    try {
      const seen = look(this.path, this.owner.staleTimeoutMs);
      if (seen?.info.owner?.token !== this.owner.token) return; // another query's now: not ours to remove
      fs.rmSync(this.path, { force: true });
      fsyncDir(this.root);
      HELD.delete(this.owner.token);
    } catch (e) {
      // Left behind, it is taken over by the next start (dead pid at once, else after the stale timeout).
      this.log(`WARN Could not release the checkpoint lock ${this.path}: ${(e as Error).message}`);
    }
  }

  /** Checks ownership and refreshes the heartbeat; records a loss instead of throwing (runs on the timer too). */
  private check(): void {
    if (this.lost) return;
    let seen: Seen | undefined;
    try {
      seen = look(this.path, this.owner.staleTimeoutMs);
    } catch (e) {
      this.lost = `its lock file could not be read (${(e as Error).message})`;
    }
    if (!this.lost && !seen) {
      // A starter judging our lock may have moved it aside for an instant (takeOver puts a live one back).
      const again = (): Seen | undefined => {
        try {
          return look(this.path, this.owner.staleTimeoutMs);
        } catch {
          return undefined;
        }
      };
      const t = Date.now();
      while (!seen && Date.now() - t < 50) seen = again();
      if (!seen) this.lost = `its lock file ${this.path} is gone`;
    }
    if (!this.lost && seen && seen.info.owner?.token !== this.owner.token) this.lost = `it is now held by ${describeHolder(seen.info)}`;
    if (this.lost) {
      if (this.timer) clearInterval(this.timer);
      this.timer = undefined;
      return;
    }
    const now = new Date();
    try {
      fs.utimesSync(this.path, now, now);
    } catch (e) {
      this.lost = `its heartbeat failed (${(e as Error).message})`;
    }
  }

  private beat(): void {
    const before = this.lost;
    this.check();
    if (this.lost && !before) this.log(`WARN Lost the lock on checkpoint ${this.root}: ${this.lost}. The query stops before writing its next batch.`);
  }
}

/**
 * Removes a stale or dead lock so the exclusive create can be tried again. The rename makes the removal
 * safe against a lock created in between: what was moved is checked to be the lock judged stale.
 */
function takeOver(path: string, seen: Seen, staleTimeoutMs: number, log: (line: string) => void): void {
  const aside = `${path}.${process.pid}.${randomUUID().slice(0, 8)}.stale`;
  try {
    fs.renameSync(path, aside);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return; // someone else removed it: try to create
    throw e;
  }
  const moved = look(aside, staleTimeoutMs);
  const same = moved !== undefined && moved.ino === seen.ino && moved.info.owner?.token === seen.info.owner?.token && moved.info.state !== 'live';
  if (!same) {
    // Another starter took the lock over between our look and our rename (or its holder woke up): put it
    // back. If a third one created a lock meanwhile, the one moved has lost it and its holder stops at its
    // next check.
    try {
      fs.linkSync(aside, path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    fs.rmSync(aside, { force: true });
    return;
  }
  fs.rmSync(aside, { force: true });
  fsyncDir(join(path, '..'));
  log(`WARN Took over the checkpoint lock ${path} from ${describeHolder(seen.info)}: ${seen.info.reason}.`);
}
