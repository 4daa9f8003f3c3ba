/**
 * Issue 16, item 7: each way a user can damage a checkpoint — delete, empty or cut short offsets/N,
 * commits/N, the log folders, metadata, sources/i/0, state files — is refused on restart with a message
 * naming the file, what it means and the safe fix, and `sluice checkpoint explain` says the same. Sluice
 * must never silently read input again or skip it.
 *
 * Memory source and memory sink: the source's offsets are row counts, so a restart in a new session with
 * the same rows sees the same input, and the new session's table holds exactly what the restart wrote.
 * Every test fails on the code before issue 16 (which re-ran or skipped batches silently, or named the
 * damage wrongly) except the one marked as a guard.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SluiceSession, col, count, explainCheckpoint } from '../../src/index.js';
import { Checkpoint } from '../../src/checkpoint/checkpoint.js';

const tmp = (): string => join(mkdtempSync(join(tmpdir(), 'sluice-damage-')), 'cp');

function newSession(): SluiceSession {
  const s = new SluiceSession('damage');
  s.out = () => {};
  s.log = () => {};
  return s;
}

type Shape = 'stateless' | 'stateful' | 'union';

/** Starts the query of `shape` on `dir` in session `s`, with `rows` available in each input. */
async function startQuery(s: SluiceSession, dir: string, shape: Shape) {
  const a = s.memoryStream('n INT');
  const b = s.memoryStream('n INT');
  const df = shape === 'union' ? a.toDF().union(b.toDF()) : a.toDF();
  const out = shape === 'stateful' ? df.groupBy('n').agg(count('*').alias('c')) : df.select(col('n'));
  const q = await out.writeStream.format('memory').queryName('out').outputMode(shape === 'stateful' ? 'update' : 'append').option('checkpointLocation', dir).start();
  const add = (rows: number[]) => {
    a.addData(rows.map((n) => ({ n })));
    if (shape === 'union') b.addData(rows.map((n) => ({ n })));
  };
  return { q, add };
}

/** Runs one batch per entry of `batches`, then stops. */
async function runBatches(dir: string, batches: number[][], shape: Shape = 'stateless'): Promise<void> {
  const { q, add } = await startQuery(newSession(), dir, shape);
  for (const rows of batches) {
    add(rows);
    await q.processAllAvailable();
  }
  await q.stop();
}

/** Restarts on `dir` with all of `batches`' rows available: the error that stopped it, and the rows it wrote. */
async function restart(dir: string, batches: number[][], shape: Shape = 'stateless'): Promise<{ error: Error | undefined; rows: unknown[] }> {
  const s = newSession();
  let error: Error | undefined;
  try {
    const { q, add } = await startQuery(s, dir, shape);
    for (const rows of batches) add(rows);
    await q.processAllAvailable().catch((e: Error) => void (error = e));
    await q.stop();
  } catch (e) {
    error = e as Error; // refused at start
  }
  return { error, rows: await s.table('out').collect().catch(() => []) };
}

const three = [[1, 2], [3, 4], [5, 6]];
const files = (dir: string, sub: string): string[] => readdirSync(join(dir, sub)).sort();

describe('a damaged checkpoint is refused with the file, its meaning and the fix', () => {
  // Why: the probe's first finding. An offsets/N missing its last source line was reported as "belongs to
  // a query with different sources", followed by two identical source lists. The file is damaged
  // (truncated): say so, and which line is missing.
  it('an offsets/N cut short by a source line: names the missing line, not "different sources"', async () => {
    const dir = tmp();
    await runBatches(dir, [[1], [2]], 'union');
    const path = join(dir, 'offsets', '1');
    const lines = readFileSync(path, 'utf8').split('\n');
    writeFileSync(path, lines.slice(0, 3).join('\n') + '\n'); // v1, metadata, source 0's offset: source 1's line gone
    const { error, rows } = await restart(dir, [[1], [2], [3]], 'union');
    expect(error?.message).toMatch(
      /offsets\/1 is truncated: it was written for 2 sources \(line 2 lists MemoryStream\[n\], MemoryStream\[n\]\), but has 1 offset line: line 4, source 1's offset \(MemoryStream\[n\]\), is missing\. It says where batch 1, the last committed, ended: the next batch starts there\.\nSafe fix: Restore it from a backup\. Without one, delete commits\/1 and offsets\/1: batch 1 then runs again/,
    );
    expect(error?.message).not.toMatch(/different sources/);
    expect(rows).toEqual([]);
    expect(explainCheckpoint(dir).nextAction).toMatch(/^A restart refuses to run: offsets\/1 is truncated/);
  });

  // Why: with offsets/ deleted and commits/ kept, explain said "a restart plans batch 0" (it would re-read
  // everything) and the restart said only "commits/2 exists without offsets/2". Say offsets/ is missing while
  // commits/ has batches up to 2, refuse, and give the fix.
  it('offsets/ deleted while commits/ has batches: explain and restart say so, nothing is re-read', async () => {
    const dir = tmp();
    await runBatches(dir, three);
    rmSync(join(dir, 'offsets'), { recursive: true });
    const r = explainCheckpoint(dir);
    expect(r.nextAction).toMatch(/^A restart refuses to run: offsets\/ is missing, but commits\/ records batches up to 2\. offsets\/N says where batch N ended/);
    expect(r.nextAction).not.toMatch(/plans batch 0/);
    const { error, rows } = await restart(dir, three);
    expect(error?.message).toMatch(
      /Checkpoint .* is damaged, so the query does not run \(nothing was read or written\): offsets\/ is missing, but commits\/ records batches up to 2\.[\s\S]*would read everything again from where the query first started \(sources\/\*\/0\)\.\nSafe fix: Restore offsets\/ from a backup of this checkpoint\./,
    );
    expect(rows).toEqual([]);
  });

  // Why: with commits/ deleted Sluice re-ran the last batch as if it had crashed, losing the watermark and
  // the record of what finished. offsets/2 is only written after commits/1, so commits were deleted: refuse,
  // and give a fix that works — writing commits/1 back with the printed command re-runs batch 2 only.
  it('commits/ deleted while offsets/ has 3 batches: refused; the printed fix then re-runs only the last batch', async () => {
    const dir = tmp();
    await runBatches(dir, three);
    rmSync(join(dir, 'commits'), { recursive: true });
    const { error, rows } = await restart(dir, three);
    expect(error?.message).toMatch(/commits\/ is missing, but offsets\/ has batches up to 2\. offsets\/2 is only written after batch 1 commits, so batches up to 1 finished and their commit records were deleted\./);
    expect(rows).toEqual([]); // before: batch 2's rows were written again
    const printf = /(mkdir \S+ && printf '.*' > \S+)/.exec(error!.message)![1]!;
    expect(printf).toBe(`mkdir ${join(dir, 'commits')} && printf 'v1\\n{"nextBatchWatermarkMs":0}\\n' > ${join(dir, 'commits', '1')}`);
    execFileSync('sh', ['-c', printf]);
    const again = await restart(dir, three);
    expect(again.error).toBeUndefined();
    expect(again.rows).toEqual([{ n: 5 }, { n: 6 }]); // batch 2 again (at-least-once), nothing earlier
  });

  // Why: offsets files emptied (0 bytes) were reported as "starts with "", not "v1"" with a generic fix.
  // Say the file is empty, what the file was for (the last committed batch's end) and the fix.
  it('offsets/N emptied to 0 bytes: named as empty, with what it recorded', async () => {
    const dir = tmp();
    await runBatches(dir, three);
    for (const f of files(dir, 'offsets')) truncateSync(join(dir, 'offsets', f), 0);
    const { error, rows } = await restart(dir, three);
    expect(error?.message).toMatch(/: offsets\/2 is empty \(0 bytes\)\. It says where batch 2, the last committed, ended: the next batch starts there\.\nSafe fix: Restore it from a backup\. Without one, delete commits\/2 and offsets\/2: batch 2 then runs again from where batch 1 ended/);
    expect(rows).toEqual([]);
  });

  // Why: with the files of offsets/ and commits/ removed (folders kept), a restart started over from
  // sources/0/0 and wrote everything again (the probe's 6,000 instead of 1,000). The folders exist only
  // because batch files were written into them: refuse.
  it('offsets/ and commits/ emptied of their files: refused, nothing written again', async () => {
    const dir = tmp();
    await runBatches(dir, three);
    for (const d of ['offsets', 'commits']) for (const f of files(dir, d)) rmSync(join(dir, d, f));
    const { error, rows } = await restart(dir, three);
    expect(error?.message).toMatch(/offsets\/ and commits\/ hold no batch file, though commits\/ exists: it is created only when batch 0 commits, so their files were deleted\. A restart would start over from where the query first started/);
    expect(rows).toEqual([]); // before: all six rows again
    expect(explainCheckpoint(dir).problems[0]).toMatchObject({ file: 'offsets/', blocksRestart: true });
  });

  // Why: a file cut short in the middle of its last line still parsed: "12\n" cut to "1" read as offset 1,
  // so the restart re-read 11 rows silently. Every line ends with a newline; a file that does not was cut.
  it('offsets/N cut in the middle of a line: refused (it used to parse as another offset)', async () => {
    const dir = tmp();
    const twelve = Array.from({ length: 12 }, (_, i) => i);
    await runBatches(dir, [twelve]);
    const path = join(dir, 'offsets', '0');
    const text = readFileSync(path, 'utf8');
    expect(text.endsWith('\n12\n')).toBe(true);
    writeFileSync(path, text.slice(0, -2)); // "…\n1"
    const { error, rows } = await restart(dir, [twelve, [12]]);
    expect(error?.message).toMatch(/offsets\/0 ends in the middle of line 3 \(every line ends with a newline\): the file was cut short\. It says where batch 0, the last committed, ended/);
    expect(rows).toEqual([]); // before: rows 1…12 (11 of them written a second time)
  });

  // Why (review): writeAtomic makes a log's folder before its first file, so a crash (or a full disk) during the
  // first offsets/0 or commits/0 leaves an empty folder. That is a crash, not damage: the restart must go on.
  it('an empty offsets/ or commits/ folder left by a crash during its first write is not damage', async () => {
    const dir = tmp();
    await runBatches(dir, [[1, 2]]);
    rmSync(join(dir, 'commits', '0')); // died writing commits/0: its folder exists, empty
    let r = await restart(dir, [[1, 2], [3]]);
    expect(r.error).toBeUndefined();
    expect(r.rows).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]); // batch 0 re-run with its logged offsets, then batch 1
    const fresh = tmp();
    await runBatches(fresh, [[1, 2]]);
    for (const d of ['offsets', 'commits']) rmSync(join(fresh, d), { recursive: true });
    mkdirSync(join(fresh, 'offsets')); // died writing offsets/0: an empty offsets/, no commits/
    r = await restart(fresh, [[1, 2]]);
    expect(r.error).toBeUndefined();
    expect(r.rows).toEqual([{ n: 1 }, { n: 2 }]);
  });

  // Guard (passes before issue 16 too): deleting only the last, uncommitted offsets/N is legal — batch N is
  // planned again — and must stay so with the new checks; explain says a restart plans batch N.
  it('deleting the last uncommitted offsets/N is legal: batch N is planned again', async () => {
    const dir = tmp();
    await runBatches(dir, [[1, 2], [3]]);
    new Checkpoint(dir).commits.truncateFrom(1); // batch 1 cut short before its commit
    rmSync(join(dir, 'offsets', '1'));
    const r = explainCheckpoint(dir);
    expect(r.problems).toEqual([]);
    expect(r.nextAction).toBe('Batch 0 is committed. A restart plans batch 1, reading from [2] with watermark 1970-01-01T00:00:00.000Z.');
    const { error, rows } = await restart(dir, [[1, 2], [3, 4]]);
    expect(error).toBeUndefined();
    expect(rows).toEqual([{ n: 3 }, { n: 4 }]);
  });

  // Why: state versions beyond what the logs say mean the newest offsets/ and commits/ files were deleted:
  // before, the restart re-ran those batches silently (their output written twice).
  it('state versions beyond the logs (the newest offsets and commits deleted): refused', async () => {
    const dir = tmp();
    await runBatches(dir, [[1], [2], [3], [4]], 'stateful');
    for (const id of [2, 3]) for (const d of ['offsets', 'commits']) rmSync(join(dir, d, String(id)));
    const { error, rows } = await restart(dir, [[1], [2], [3], [4]], 'stateful');
    expect(error?.message).toMatch(
      /state\/0\/0\/4\.delta is state version 4 \(written by batch 3\), but the logs end at batch 1, the last committed\. The offsets\/ and commits\/ files of the batches after batch 1 were deleted[\s\S]*Safe fix: Restore offsets\/ and commits\/ from a backup\. To run those batches again on purpose, delete the state files of versions above 2/,
    );
    expect(rows).toEqual([]); // before: batches 2 and 3 again
  });

  // Why: a deleted state folder was found only when the next batch loaded its state — after offsets/N of
  // that batch was written — with a message about one delta file. Refuse before writing anything, naming
  // the folder and both possible causes.
  it('state/<op>/ deleted: refused before any write; a missing delta is named', async () => {
    const dir = tmp();
    await runBatches(dir, [[1], [2], [3]], 'stateful');
    const delta = readFileSync(join(dir, 'state', '0', '1', '2.delta'));
    rmSync(join(dir, 'state', '0', '1', '2.delta'));
    let { error } = await restart(dir, [[1], [2], [3], [4]], 'stateful');
    expect(error?.message).toMatch(/state\/0\/1\/2\.delta is missing\. State version 3 \(after batch 2, the last committed\) is rebuilt from the newest snapshot at or below it and the deltas after it/);
    writeFileSync(join(dir, 'state', '0', '1', '2.delta'), delta);
    rmSync(join(dir, 'state', '0'), { recursive: true });
    ({ error } = await restart(dir, [[1], [2], [3], [4]], 'stateful'));
    expect(error?.message).toMatch(/state\/0\/ is missing, but batch 2 committed\. The query's stateful operator 0 needs its state as of batch 2: the folder was deleted, or the query gained a stateful operator/);
    expect(files(dir, 'offsets')).toEqual(['0', '1', '2']); // before: offsets/3 was written, then the batch failed
  });

  // Why: a deleted metadata was silently replaced by a new query id; an emptied one gave "malformed JSON".
  // Refuse at start, with a fix that keeps the checkpoint's progress.
  it('metadata deleted or emptied: refused at start with the fix', async () => {
    const dir = tmp();
    await runBatches(dir, [[1]]);
    const meta = readFileSync(join(dir, 'metadata'), 'utf8');
    rmSync(join(dir, 'metadata'));
    let { error } = await restart(dir, [[1], [2]]);
    expect(error?.message).toMatch(/metadata is missing, but the folder holds a query's checkpoint \(offsets\/, commits\/, sources\/\): it was deleted\.[\s\S]*Safe fix: Restore it from a backup, or write a new id: echo '\{"id":"<a new UUID>"\}' >/);
    expect(readdirSync(dir)).not.toContain('metadata'); // before: a new one, with a new id
    writeFileSync(join(dir, 'metadata'), '');
    ({ error } = await restart(dir, [[1], [2]]));
    expect(error?.message).toMatch(/metadata is empty \(0 bytes\): it is damaged\. It holds the query id/);
    expect(explainCheckpoint(dir).problems[0]).toMatchObject({ file: 'metadata', blocksRestart: true });
    writeFileSync(join(dir, 'metadata'), meta);
    expect((await restart(dir, [[1], [2]])).rows).toEqual([{ n: 2 }]);
  });

  // Why: batch 0 re-runs from where each source started, recorded only in sources/i/0. Deleted, the
  // restart resolved startingOffsets again and wrote that anew — with "latest" it would skip data.
  it('sources/0/0 deleted while batch 0 is uncommitted: refused', async () => {
    const dir = tmp();
    await runBatches(dir, [[1, 2]]);
    new Checkpoint(dir).commits.truncateFrom(0);
    rmSync(join(dir, 'sources', '0', '0'));
    const { error, rows } = await restart(dir, [[1, 2]]);
    expect(error?.message).toMatch(/sources\/0\/0 is missing\. Batch 0 was planned but not committed, so a restart runs it again from where each source started — which only sources\/\*\/0 records\.\nSafe fix: Restore it from a backup\. Or delete offsets\/0 and sources\//);
    expect(rows).toEqual([]);
    expect(readdirSync(join(dir, 'sources', '0'))).toEqual([]); // before: rewritten
  });

  // Why: an emptied last commits/N gave "starts with """; say what it is and that deleting it is safe.
  // The fix works: with it deleted, batch 2 runs again.
  it('the last commits/N emptied: named, and the fix (delete it) re-runs that batch', async () => {
    const dir = tmp();
    await runBatches(dir, three);
    truncateSync(join(dir, 'commits', '2'), 0);
    const { error, rows } = await restart(dir, three);
    expect(error?.message).toMatch(/commits\/2 is empty \(0 bytes\)\. It records that batch 2, the last, finished, and the watermark for the next batch\.\nSafe fix: Delete it: a restart then runs batch 2 again with its logged offsets/);
    expect(rows).toEqual([]);
    rmSync(join(dir, 'commits', '2'));
    const again = await restart(dir, three);
    expect(again.error).toBeUndefined();
    expect(again.rows).toEqual([{ n: 5 }, { n: 6 }]);
  });

  // Why: re-running an uncommitted batch N needs offsets/N-1 (where it starts). Before: "offsets/1 is
  // missing: the checkpoint is incomplete", with no meaning or fix.
  it('offsets/N-1 deleted while batch N is uncommitted: says why it is needed and the fix', async () => {
    const dir = tmp();
    await runBatches(dir, three);
    new Checkpoint(dir).commits.truncateFrom(2);
    rmSync(join(dir, 'offsets', '1'));
    const { error, rows } = await restart(dir, three);
    expect(error?.message).toMatch(/offsets\/1 is missing\. Batch 2 was planned but not committed, so a restart runs it again from where batch 1 ended — which only offsets\/1 records\.\nSafe fix: Restore it from a backup\. Without one this checkpoint cannot resume exactly: start the query on a new checkpointLocation with startingOffsets set to where it should resume \(batch 2 was to end at 6/);
    expect(rows).toEqual([]);
  });

  // Why: explain must list every problem, blocking first, and old history a restart does not read as a
  // note — without refusing for it.
  it('explain lists history damage as notes; a restart still runs', async () => {
    const dir = tmp();
    await runBatches(dir, [[1], [2], [3], [4]]);
    truncateSync(join(dir, 'offsets', '0'), 0);
    rmSync(join(dir, 'commits', '1'));
    const r = explainCheckpoint(dir);
    expect(r.problems.map((p) => [p.file, p.blocksRestart])).toEqual([
      ['offsets/0', false],
      ['commits/1', false],
    ]);
    expect(r.batches[0]).toMatchObject({ batchId: 0, damaged: 'is empty (0 bytes)' });
    expect(r.nextAction).toMatch(/^Batch 3 is committed\. A restart plans batch 4/);
    const { error, rows } = await restart(dir, [[1], [2], [3], [4], [5]]);
    expect(error).toBeUndefined();
    expect(rows).toEqual([{ n: 5 }]);
  });
});
