import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SluiceSession, col, count, explainCheckpoint, window } from '../../src/index.js';
import { Checkpoint } from '../../src/checkpoint/checkpoint.js';

const bin = new URL('../../bin/sluice.js', import.meta.url).pathname;
const sluice = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });

async function windowedCheckpoint(): Promise<string> {
  const s = new SluiceSession('cp');
  s.log = () => {};
  const input = s.memoryStream('ts TIMESTAMP');
  const dir = join(mkdtempSync(join(tmpdir(), 'sluice-explain-')), 'cp');
  const q = await input.toDF().withWatermark('ts', '1 minute').groupBy(window(col('ts'), '1 minute')).agg(count('*').alias('n'))
    .writeStream.format('memory').queryName('w').option('checkpointLocation', dir).start();
  input.addData({ ts: new Date('2025-01-01T12:00:30Z') });
  await q.processAllAvailable();
  await q.stop();
  return dir;
}

describe('sluice checkpoint explain', () => {
  it('lists batches, watermarks and state, and says a restart plans the next batch', async () => {
    const dir = await windowedCheckpoint();
    const r = explainCheckpoint(dir);
    // Batch 0 read the row; the watermark moved to 11:59:30, so a no-data batch 1 ran.
    expect(r.batches.map((b) => [b.batchId, b.committed, b.offsets, b.batchWatermarkMs])).toEqual([
      [0, true, [1], 0],
      [1, true, [1], Date.parse('2025-01-01T11:59:30Z')],
    ]);
    expect(r.stateOperators).toEqual([{ operatorId: 0, partitions: 4, latestVersion: 2, files: 8 }]);
    expect(r.nextAction).toBe('Batch 1 is committed. A restart plans batch 2, reading from [1] with watermark 2025-01-01T11:59:30.000Z.');
    const text = sluice('checkpoint', 'explain', dir);
    expect(text.status).toBe(0);
    expect(text.stdout).toContain(`query id: ${r.queryId}`);
    expect(text.stdout).toContain('Next: Batch 1 is committed.');
    expect(JSON.parse(sluice('checkpoint', 'explain', dir, '--json').stdout)).toEqual(JSON.parse(JSON.stringify(r)));
  });

  it('with several inputs, shows the watermark of each (logged in commits/N)', async () => {
    const s = new SluiceSession('cp2');
    s.log = () => {};
    const a = s.memoryStream('ts TIMESTAMP');
    const b = s.memoryStream('ts TIMESTAMP');
    const dir = join(mkdtempSync(join(tmpdir(), 'sluice-explain-')), 'cp');
    const q = await a.toDF().withWatermark('ts', '1 minute').union(b.toDF().withWatermark('ts', '10 minutes'))
      .groupBy(window(col('ts'), '1 minute')).agg(count('*').alias('n'))
      .writeStream.format('memory').queryName('w2').option('checkpointLocation', dir).start();
    a.addData({ ts: new Date('2025-01-01T12:00:30Z') });
    b.addData({ ts: new Date('2025-01-01T12:00:30Z') });
    await q.processAllAvailable();
    await q.stop();
    const r = explainCheckpoint(dir);
    // Input 0: 12:00:30 − 1 min; input 1: 12:00:30 − 10 min; the global watermark is the minimum.
    expect(r.batches.at(-1)!.operatorWatermarksMs).toEqual({ 0: Date.parse('2025-01-01T11:59:30Z'), 1: Date.parse('2025-01-01T11:50:30Z') });
    expect(r.nextAction).toContain('with watermark 2025-01-01T11:50:30.000Z (the minimum, or maximum by policy, of the inputs\' own: watermark 0 2025-01-01T11:59:30.000Z, watermark 1 2025-01-01T11:50:30.000Z)');
  });

  it('says a planned but uncommitted batch will be re-run with its offsets', async () => {
    const dir = await windowedCheckpoint();
    new Checkpoint(dir).commits.truncateFrom(1);
    expect(explainCheckpoint(dir).nextAction).toMatch(/^Batch 1 was planned \(offsets\/1\) but not committed .* re-runs batch 1 with exactly the logged offsets, from \[1\] to \[1\], watermark 2025-01-01T11:59:30.000Z/);
  });

  it('explains bad or partial checkpoints without a stack trace', () => {
    const empty = mkdtempSync(join(tmpdir(), 'sluice-explain-'));
    let r = sluice('checkpoint', 'explain', empty);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^sluice: .* has no "metadata" file, so it is not a Sluice\/Spark checkpoint/);
    r = sluice('checkpoint', 'explain', join(empty, 'nope'));
    expect(r.stderr).toMatch(/does not exist or is not a folder/);
    writeFileSync(join(empty, 'metadata'), '{"id":"x"}');
    mkdirSync(join(empty, 'offsets'));
    writeFileSync(join(empty, 'offsets', '0'), 'garbage\n');
    // A damaged file is explained (issue 16): what is wrong, what it means, the safe fix — not a stack trace;
    // exit code 2 tells a script that a restart would refuse this checkpoint.
    r = sluice('checkpoint', 'explain', empty);
    expect(r.status, r.stderr).toBe(2);
    expect(r.stdout).toMatch(/DAMAGED: offsets\/0 starts with "garbage", not "v1": it was not written by Sluice, or it is damaged\. It is batch 0's plan, and batch 0 never committed/);
    expect(r.stdout).toMatch(/Next: A restart refuses to run: offsets\/0 starts with "garbage"[\s\S]*Fix: Delete offsets\/0: a restart then plans batch 0 again/);
    expect(r.stdout + r.stderr).not.toMatch(/\n\s+at /);
  });
});
