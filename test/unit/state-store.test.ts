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
    const p = new StateStoreProvider(dir, 3, 'memory', 3); // keep the last 3 versions loadable
    for (let v = 0; v < 7; v++) {
      const s = p.load(v);
      s.put(`k${v}`, { n: v, at: new Date(v * 1000) });
      if (v >= 2) s.remove(`k${v - 2}`); // keep two keys alive
      expect(s.commit()).toBe(v + 1);
    }
    // Snapshots at 3 and 6 (every 3 versions); maintenance after 6 removed what only versions < 3 needed
    // (6 - 3 retained versions = 3, whose base is snapshot 3).
    expect(files(dir)).toEqual(['3.delta', '3.snapshot', '4.delta', '5.delta', '6.delta', '6.snapshot', '7.delta']);
    const restarted = new StateStoreProvider(dir, 3, 'memory', 3);
    const v7 = restarted.load(7);
    expect([...v7.entries()].sort()).toEqual([
      ['k5', { n: 5, at: new Date(5000) }],
      ['k6', { n: 6, at: new Date(6000) }],
    ]);
    // Version 6 (what a re-run of batch 6 loads) comes from snapshot 6; version 4 from snapshot 3 + delta 4.
    expect([...new StateStoreProvider(dir, 3, 'memory', 3).load(6).entries()].map(([k]) => k).sort()).toEqual(['k4', 'k5']);
    expect([...new StateStoreProvider(dir, 3, 'memory', 3).load(4).entries()].map(([k]) => k).sort()).toEqual(['k2', 'k3']);
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

describe('lmdb state store provider', () => {
  it('reads the same files: a checkpoint written by one provider is restored by the other', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-lmdb-'));
    const mem = new StateStoreProvider(dir, 10, 'memory');
    const a = mem.load(0);
    a.put('k1', { n: 1, at: new Date(1000) });
    a.put('k2', Buffer.from('hll'));
    a.commit();
    const lmdb = new StateStoreProvider(dir, 10, 'lmdb');
    const b = lmdb.load(1);
    expect(b.get('k1')).toEqual({ n: 1, at: new Date(1000) });
    expect(b.size).toBe(2);
    b.remove('k1');
    b.put('k3', 3);
    expect(b.get('k1')).toBeUndefined();
    expect([...b.entries()].map(([k]) => k).sort()).toEqual(['k2', 'k3']);
    b.commit();
    lmdb.close();
    // Back to memory: version 2 replays delta 2 written by the lmdb provider.
    expect([...new StateStoreProvider(dir, 10, 'memory').load(2).entries()].map(([k]) => k).sort()).toEqual(['k2', 'k3']);
    // A re-run of batch 1 on lmdb (which is at version 2) rebuilds version 1 from the files.
    const again = new StateStoreProvider(dir, 10, 'lmdb');
    const v1 = again.load(1);
    expect([...v1.entries()].map(([k]) => k).sort()).toEqual(['k1', 'k2']);
    again.close();
  });

  it('keeps its index of keys by event time with the state: across a restart, and rebuilt (empty, incomplete) with it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-lmdb-times-'));
    const p = new StateStoreProvider(dir, 10, 'lmdb');
    const v0 = p.load(0);
    expect(v0.timeIndex()!.timesComplete).toBe(false); // a new database: its keys were never indexed
    for (const [k, t] of [['a', 100], ['b', 200], ['c', 300]] as const) {
      v0.put(k, 1);
      v0.timeIndex()!.timeAdd(t, k);
    }
    v0.timeIndex()!.markTimesComplete();
    v0.commit();
    const v1 = p.load(1);
    expect(v1.timeIndex()!.timesComplete).toBe(true);
    expect(v1.timeIndex()!.keysThrough(200)).toEqual([['a', 100], ['b', 200]]);
    v1.remove('a');
    v1.timeIndex()!.timeDel(100, 'a');
    v1.commit();
    p.close();
    // A restart finds the database at version 2 with its index.
    const again = new StateStoreProvider(dir, 10, 'lmdb');
    const v2 = again.load(2);
    expect(v2.timeIndex()!.timesComplete).toBe(true);
    expect(v2.timeIndex()!.keysThrough(1000)).toEqual([['b', 200], ['c', 300]]);
    again.close();
    // Re-running batch 1 rebuilds version 1 from the files: the index is cleared and marked incomplete.
    const rerun = new StateStoreProvider(dir, 10, 'lmdb');
    const r1 = rerun.load(1);
    expect(r1.timeIndex()!.timesComplete).toBe(false);
    expect(r1.timeIndex()!.keysThrough(1000)).toEqual([]);
    expect([...r1.entries()].map(([k]) => k).sort()).toEqual(['a', 'b', 'c']);
    rerun.close();
  });
});

describe('state codec', () => {
  // Keys are compared as encoded text, so the fast encoder must give exactly the reference text, and the
  // fast decoder exactly the reference value, for every shape a row or an aggregate buffer can take.
  const values: unknown[] = [
    null, true, false, 0, -0, 1.5, -7, 1e21, 2 ** 53, NaN, Infinity, '', 'a"b\\c\n\u2028', '$d', '{"$d":1}',
    new Date(0), new Date(1735689600123), new Date(NaN), Buffer.from([0, 1, 254, 255]), Buffer.alloc(0),
    [], [1, 'x', null, undefined, new Date(5)], [[{ start: new Date(1), end: new Date(2) }, 'user-1']],
    { a: 1, b: undefined, c: () => 1, d: [undefined], e: { $d: 5 }, f: { $d: 5, g: 1 }, '2': 'int key', '1': 'first' },
    { $b: 'AAE=' }, { $d: 'not a number' }, Object.assign(Object.create(null), { x: 1 }), { nested: { deeper: [Buffer.from('hi')] } },
    new Map([[1, 2]]), { toJSON: () => 'custom' }, [{ set: true, v: null }, [3, 1], 7],
  ];
  it('the fast encoder writes the reference text for every value', async () => {
    const { encodeState, slowEncode } = await import('../../src/state/codec.js');
    values.forEach((v, i) => expect(encodeState(v), `value ${i}`).toBe(slowEncode(v)));
  });
  it('the fast decoder reads back the reference value for every text', async () => {
    const { decodeState, slowDecode, slowEncode } = await import('../../src/state/codec.js');
    for (const v of values) {
      const text = slowEncode(v);
      if (text === undefined) continue;
      expect(decodeState(text), text).toEqual(slowDecode(text));
    }
  });
});
