/** The versioned state store: deltas per version, snapshots, maintenance, and rebuilding any live version. */
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { StateStoreProvider } from '../../src/state/store.js';

const files = (dir: string): string[] => readdirSync(dir).sort((a, b) => parseInt(a) - parseInt(b) || a.localeCompare(b));

describe('state store provider', () => {
  it('commits version N+1 from N; a new provider (a restart) rebuilds any kept version exactly', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-state-'));
    const p = new StateStoreProvider(dir, 3);
    for (let v = 0; v < 7; v++) {
      const s = p.load(v);
      s.put(`k${v}`, { n: v, at: new Date(v * 1000) });
      if (v >= 2) s.remove(`k${v - 2}`); // keep two keys alive
      expect(s.commit()).toBe(v + 1);
    }
    // Snapshots at 3 and 6 (every 3 versions); maintenance after 6 removed what only versions < 3 needed.
    expect(files(dir)).toEqual(['3.delta', '3.snapshot', '4.delta', '5.delta', '6.delta', '6.snapshot', '7.delta']);
    const restarted = new StateStoreProvider(dir, 3);
    const v7 = restarted.load(7);
    expect([...v7.entries()].sort()).toEqual([
      ['k5', { n: 5, at: new Date(5000) }],
      ['k6', { n: 6, at: new Date(6000) }],
    ]);
    // Version 6 (what a re-run of batch 6 loads) comes from snapshot 6; version 4 from snapshot 3 + delta 4.
    expect([...new StateStoreProvider(dir, 3).load(6).entries()].map(([k]) => k).sort()).toEqual(['k4', 'k5']);
    expect([...new StateStoreProvider(dir, 3).load(4).entries()].map(([k]) => k).sort()).toEqual(['k2', 'k3']);
  });

  it('a re-run batch rewrites its version; metrics count what the batch changed', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-state-'));
    const p = new StateStoreProvider(dir);
    const a = p.load(0);
    a.put('x', 1);
    a.commit();
    // Batch 1 runs, commits version 2 … then crashes before its commit log entry; the re-run starts from 1 again.
    const first = new StateStoreProvider(dir).load(1);
    first.put('y', 'first attempt');
    first.commit();
    const rerun = new StateStoreProvider(dir).load(1);
    rerun.put('y', 'second attempt');
    rerun.remove('x');
    rerun.commit();
    expect(rerun.metrics()).toMatchObject({ numRowsTotal: 1, numRowsUpdated: 1, numRowsRemoved: 1 });
    expect([...new StateStoreProvider(dir).load(2).entries()]).toEqual([['y', 'second attempt']]);
  });

  it('explains a missing delta file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-state-'));
    expect(() => new StateStoreProvider(dir).load(2)).toThrow(/State file .*1\.delta is missing[\s\S]*new checkpointLocation/);
  });
});
