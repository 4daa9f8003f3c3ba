/**
 * Issue 16, item 6: one running query per checkpoint. `<checkpoint>/lock` is created exclusively when a
 * query starts, holds its owner, is kept fresh by a heartbeat, is released on stop or failure, and is taken
 * over when its holder is gone (stale heartbeat, or a dead pid on this host). Before, nothing stopped a
 * second query at start: it ran until it planned a batch the first had taken, possibly after writing a
 * duplicate batch to its sink. Each test says why it exists; all fail on the code before the lock (no lock
 * file, no refusal at start).
 */
import fs, { existsSync, mkdtempSync, readFileSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SluiceSession, col, explainCheckpoint, formatCheckpointReport } from '../../src/index.js';
import type { CheckpointLock } from '../../src/checkpoint/lock.js';
import type { StreamingQuery } from '../../src/exec/streamingQuery.js';

const tmp = (): string => mkdtempSync(join(tmpdir(), 'sluice-lock-'));
const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

function newSession(logs: string[] = []): SluiceSession {
  const s = new SluiceSession('lock');
  s.out = () => {};
  s.log = (l) => void logs.push(l);
  return s;
}

/** A memory → memory query on checkpoint `dir`; its input and handle. */
async function start(dir: string, s = newSession(), name = 'n') {
  const input = s.memoryStream('n INT');
  const q = await input.toDF().select(col('n')).writeStream.format('memory').queryName(name).option('checkpointLocation', dir).start();
  return { input, q, s };
}

/** A lock file as another query would have written it. */
function writeLock(dir: string, owner: { pid: number; hostname: string; runId?: string; staleTimeoutMs?: number; pidNamespace?: string }, ageMs = 0): void {
  const path = join(dir, 'lock');
  writeFileSync(
    path,
    JSON.stringify({
      version: 1,
      token: 'their-token',
      queryId: 'their-query-id',
      runId: owner.runId ?? 'their-run-id',
      queryName: 'other',
      startedAt: '2025-01-01T00:00:00.000Z',
      staleTimeoutMs: owner.staleTimeoutMs ?? 30_000,
      pid: owner.pid,
      hostname: owner.hostname,
      ...(owner.pidNamespace ? { pidNamespace: owner.pidNamespace } : {}),
    }) + '\n',
  );
  const t = new Date(Date.now() - ageMs);
  utimesSync(path, t, t);
}

const lockOf = (dir: string) => JSON.parse(readFileSync(join(dir, 'lock'), 'utf8')) as { runId: string; pid: number; hostname: string; token: string };

/** A pid that ran on this host and is gone now. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

const running: StreamingQuery[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const q of running.splice(0)) await q.stop();
});

describe('the checkpoint lock', () => {
  // Why: the core of item 6. The second start on a running checkpoint must fail at once, naming who holds
  // it (query, pid, host, since when, last heartbeat) and what to do; the first query must go on. Before:
  // the second start succeeded.
  it('a second query on a running checkpoint fails at start, naming the holder; the first goes on', async () => {
    const dir = tmp();
    const a = await start(dir);
    running.push(a.q);
    a.input.addData({ n: 1 });
    await a.q.processAllAvailable();
    const second = start(dir, newSession());
    await expect(second).rejects.toThrow(
      new RegExp(
        `Cannot start query n on checkpoint ${esc(dir)}: another query holds its lock \\(${esc(dir)}/lock\\): query n \\[id = ${a.q.id}, runId = ${a.q.runId}\\], ` +
          `pid ${process.pid} on host ${hostname()}, running since \\S+Z, last heartbeat \\S+Z \\(\\d+\\.\\d s ago\\)\\. ` +
          'Two queries must never share a checkpointLocation[\\s\\S]*Stop the other query first[\\s\\S]*taken over once its heartbeat is older than 30 s',
      ),
    );
    await expect(second).rejects.toMatchObject({ name: 'CheckpointLockError' });
    a.input.addData({ n: 2 });
    await a.q.processAllAvailable();
    expect((await a.s.table('n').collect()).map((r) => r.n)).toEqual([1, 2]);
    expect(lockOf(dir).runId).toBe(a.q.runId); // the refused start left the lock alone
  });

  // Why: the holder may be another machine (a shared file system): its pid cannot be checked here, so a
  // fresh heartbeat alone makes the lock live. Before: no lock was looked at.
  it('a lock of a process on another host is honoured while its heartbeat is fresh', async () => {
    const dir = tmp();
    writeLock(dir, { pid: 4242, hostname: 'other-host' }, 2_000);
    await expect(start(dir)).rejects.toThrow(/holds its lock .*: query other \[id = their-query-id, runId = their-run-id\], pid 4242 on host other-host, running since 2025-01-01T00:00:00.000Z, last heartbeat \S+ \(2\.\d s ago\)/);
    // Nothing of a query was written (metadata, the query id, is read or made before the lock is asked for).
    expect(readdirSync(dir).filter((f) => ['offsets', 'commits', 'sources', 'state'].includes(f))).toEqual([]);
  });

  // Why: a holder whose machine died never releases its lock; once its heartbeat is older than the stale
  // timeout (30 s by default, sluice.sql.streaming.checkpointLock.staleTimeout) the lock is taken over, and
  // the takeover is logged with whose lock it was. The setting is honoured: with 2 minutes the same lock is
  // still live. Before: the lock file was never read nor replaced.
  it('a stale lock (no heartbeat for the stale timeout) is taken over, and that is logged', async () => {
    const dir = tmp();
    writeLock(dir, { pid: 4242, hostname: 'other-host' }, 60_000);
    const patient = newSession();
    patient.conf.set('sluice.sql.streaming.checkpointLock.staleTimeout', '2 minutes');
    await expect(start(dir, patient)).rejects.toThrow(/holds its lock[\s\S]*pid 4242 on host other-host[\s\S]*older than 120 s/);
    const logs: string[] = [];
    const { q } = await start(dir, newSession(logs));
    running.push(q);
    expect(lockOf(dir)).toMatchObject({ runId: q.runId, pid: process.pid, hostname: hostname() });
    expect(logs.join('\n')).toMatch(/WARN Took over the checkpoint lock .*\/lock from query other \[id = their-query-id, runId = their-run-id\], pid 4242 on host other-host.*: no heartbeat for 60 s \(stale after 30 s\)\./);
    expect(readdirSync(dir).filter((f) => f.startsWith('lock'))).toEqual(['lock']); // the stale one is gone, not left aside
  });

  // Why: on the same host a dead holder is known at once (process.kill(pid, 0)); waiting 30 s after a
  // kill -9 would only delay the restart. Before: no lock.
  it('a lock whose process is gone on this host is taken over at once', async () => {
    const dir = tmp();
    const pid = deadPid();
    writeLock(dir, { pid, hostname: hostname() }, 0); // fresh heartbeat: only the dead pid makes it takeable
    const logs: string[] = [];
    const { q } = await start(dir, newSession(logs));
    running.push(q);
    expect(lockOf(dir).runId).toBe(q.runId);
    expect(logs.join('\n')).toMatch(new RegExp(`Took over the checkpoint lock .* pid ${pid} no longer runs on this host`));
  });

  // Why (review): in a container every restart runs as the same small pid (pid 1) with the same host name. A
  // lock with this process's own pid that this process did not take was left by a dead earlier process:
  // before, it was honoured for the whole stale timeout, and an orchestrator's restart failed again and again.
  it("a lock with this process's pid that it did not take is a dead earlier process's: taken over at once", async () => {
    const dir = tmp();
    writeLock(dir, { pid: process.pid, hostname: hostname() }, 0);
    const logs: string[] = [];
    const { q } = await start(dir, newSession(logs));
    running.push(q);
    expect(lockOf(dir).runId).toBe(q.runId);
    expect(logs.join('\n')).toMatch(/Took over the checkpoint lock .* earlier process with this process's pid/);
  });

  // Why (review): containers sharing a host name but not a pid namespace cannot see each other's pids: a live
  // holder's pid looks dead from here. Where the holder's pid namespace differs, only its heartbeat counts.
  it("a holder in another pid namespace is judged by its heartbeat alone, not by its pid", async () => {
    const dir = tmp();
    writeLock(dir, { pid: deadPid(), hostname: hostname(), pidNamespace: 'pid:[4026531999]' }, 0);
    await expect(start(dir)).rejects.toThrow(/another query holds its lock/);
  });

  // Why: the lock must not outlive its query — after stop() and after a failure a new query starts at once
  // (lesson 03 restarts a failed foreachBatch query in the same process). Before: there was no lock while
  // running either.
  it('is held while the query runs and released on stop and on failure', async () => {
    const dir = tmp();
    const a = await start(dir);
    expect(lockOf(dir).runId).toBe(a.q.runId);
    await a.q.stop();
    expect(existsSync(join(dir, 'lock'))).toBe(false);

    const s = newSession();
    const input = s.memoryStream('n INT');
    const failing = await input.toDF().writeStream.option('checkpointLocation', dir).foreachBatch(async () => {
      throw new Error('boom');
    }).start();
    expect(lockOf(dir).runId).toBe(failing.runId);
    input.addData({ n: 1 });
    await expect(failing.awaitTermination()).rejects.toThrow(/boom/);
    expect(existsSync(join(dir, 'lock'))).toBe(false);
    const b = await start(dir);
    running.push(b.q);
    expect(lockOf(dir).runId).toBe(b.q.runId);
  });

  // Why: the heartbeat is what tells a live holder from a dead one, so it must tick while the query waits
  // for data; and an owner whose lock was taken over anyway (a process paused past the timeout) must stop
  // before writing another batch, not interleave with the new owner. Before: no heartbeat, no check.
  it('a heartbeat keeps the lock fresh; a query whose lock was taken over stops before its next batch', async () => {
    const dir = tmp();
    const s = newSession();
    s.conf.set('sluice.sql.streaming.checkpointLock.staleTimeout', '600 milliseconds'); // a beat every 100 ms
    const a = await start(dir, s);
    const t0 = statSync(join(dir, 'lock')).mtimeMs;
    await new Promise((r) => setTimeout(r, 400));
    expect(statSync(join(dir, 'lock')).mtimeMs).toBeGreaterThan(t0);
    a.input.addData({ n: 1 });
    await a.q.processAllAvailable();
    // Another query takes the lock over (as it would after a pause longer than the stale timeout).
    writeLock(dir, { pid: 4242, hostname: 'other-host', runId: 'new-owner' });
    a.input.addData({ n: 2 });
    await expect(a.q.processAllAvailable()).rejects.toThrow(/This query lost the lock on checkpoint .*: it is now held by query other \[id = their-query-id, runId = new-owner\][\s\S]*stops before writing another batch/);
    expect(readdirSync(join(dir, 'offsets'))).toEqual(['0']); // batch 1 was never planned
    expect(lockOf(dir).runId).toBe('new-owner'); // and the new owner's lock was not released by the old one
  });

  // Why: "take over atomically: do not let two takers both win". Starter B judges the lock stale, but
  // before B moves it aside, starter A takes it over and creates its own. B's rename then moves A's fresh
  // lock; B must notice (another inode and token), put it back, and fail naming A — not delete it and win
  // too. Before: no lock at all.
  it('two starters taking over one stale lock: exactly one wins', async () => {
    const { CheckpointLock } = await import('../../src/checkpoint/lock.js');
    const dir = tmp();
    writeLock(dir, { pid: 4242, hostname: 'other-host' }, 60_000);
    const rename = fs.renameSync;
    let a: CheckpointLock | undefined;
    const spy = vi.spyOn(fs, 'renameSync').mockImplementation((from, to) => {
      if (!a && String(from) === join(dir, 'lock')) {
        spy.mockImplementation(rename); // A's own steps run unobserved
        a = CheckpointLock.acquire(dir, { queryId: 'q', runId: 'run-a', queryName: 'a' });
      }
      rename(from, to);
    });
    expect(() => CheckpointLock.acquire(dir, { queryId: 'q', runId: 'run-b', queryName: 'b' })).toThrow(/another query holds its lock .*runId = run-a/);
    expect(lockOf(dir).runId).toBe('run-a');
    expect(() => a!.verify()).not.toThrow(); // A still owns it
    expect(readdirSync(dir)).toEqual(['lock']); // nothing left aside
    a!.release();
  });

  // Why: `sluice checkpoint explain` must show who holds the lock, and must neither take it nor touch it
  // (a read-only look at a running query's checkpoint). Before: explain knew nothing of a lock.
  it('checkpoint explain shows the holder without taking or touching the lock', async () => {
    const dir = tmp();
    const { q, input } = await start(dir);
    input.addData({ n: 1 });
    await q.processAllAvailable();
    await q.stop();
    writeLock(dir, { pid: 4242, hostname: 'other-host' }, 1_000);
    const before = { text: readFileSync(join(dir, 'lock'), 'utf8'), mtime: statSync(join(dir, 'lock')).mtimeMs, files: readdirSync(dir).sort() };
    const r = explainCheckpoint(dir);
    expect(r.lock).toMatchObject({ state: 'live', owner: { pid: 4242, hostname: 'other-host', runId: 'their-run-id' } });
    expect(formatCheckpointReport(r)).toMatch(/lock: {5}held by query other \[id = their-query-id, runId = their-run-id\], pid 4242 on host other-host, running since 2025-01-01T00:00:00.000Z, last heartbeat/);
    expect(r.nextAction).toMatch(/A query is running on it now .*pid 4242 on host other-host.*: another start is refused until it stops\./);
    expect({ text: readFileSync(join(dir, 'lock'), 'utf8'), mtime: statSync(join(dir, 'lock')).mtimeMs, files: readdirSync(dir).sort() }).toEqual(before);
    // A stale one is shown as such: the next start takes it over.
    writeLock(dir, { pid: 4242, hostname: 'other-host' }, 45_000);
    expect(explainCheckpoint(dir).nextAction).toMatch(/Its lock is left from a query that is gone \(no heartbeat for 45 s \(stale after 30 s\)\): the next start takes it over\./);
  });

  // Why: a nonsense timeout would either never take a dead lock over or steal live ones.
  it('refuses a nonsense stale timeout', async () => {
    const s = newSession();
    s.conf.set('sluice.sql.streaming.checkpointLock.staleTimeout', 'soon');
    await expect(start(tmp(), s)).rejects.toThrow(/sluice.sql.streaming.checkpointLock.staleTimeout must be a duration such as "30 seconds" \(or milliseconds\), above 0; got "soon"/);
  });
});
