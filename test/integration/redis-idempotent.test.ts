/**
 * foreachBatch into a real Redis, crashed between the store write and `commits/N` (SLUICE_FAULT=after-sink@1,
 * a SIGKILL: exec/faults.ts), then restarted: batch 1 runs again with the same batchId. With upsertBatch
 * (values and last-applied batch id in one MULTI/EXEC) the re-run is skipped and every key holds the sum of
 * its amounts exactly once; the control — the same INCRBYs without the guard — counts batch 1 twice, which
 * is what the first assertion would catch if the guard broke.
 *
 * Kafka comes from test/globalSetup.ts; Redis is started here by the stack code (startRedis), on a free port
 * in a temporary folder, and stopped in afterAll.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startRedis, stopRedis, type RedisInfo } from '../../src/stack/stack.js';
import { lastAppliedBatch, storeKey } from '../../src/stores/redis.js';
import { bootstrapServers, freshTopics, produceRecords } from './helpers.js';

const sluiceBin = new URL('../../bin/sluice.js', import.meta.url).pathname;
const fixture = new URL('../fixtures/redis-sum-pipeline.ts', import.meta.url).pathname;

/** `sluice run test/fixtures/redis-sum-pipeline.ts` as a child process; SLUICE_FAULT only when given. */
function run(env: Record<string, string>) {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'SLUICE_FAULT'));
  const child = spawn(process.execPath, [sluiceBin, 'run', fixture], { env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return { exited, output: () => out };
}

const N = 600;
const KEYS = 12;
let folder: string;
let redis: RedisInfo;
let client: Awaited<ReturnType<ReturnType<typeof createClient>['connect']>>;
let topic: string;
/** Each key's sum, computed from the records as produced (not from anything the pipeline wrote). */
const expected = new Map<string, number>();

beforeAll(async () => {
  folder = mkdtempSync(join(tmpdir(), 'sluice-redis-'));
  redis = await startRedis({ dir: folder, port: await freePort(), log: () => {} });
  client = await createClient({ url: redis.url }).connect();
  topic = (await freshTopics('redis-sum')).input;
  // Deterministic amounts 1..97; keys spread over the topic's 3 partitions by the producer's partitioner.
  const records = Array.from({ length: N }, (_, i) => ({ key: `k${(i * 7) % KEYS}`, amount: ((i * 37) % 97) + 1 }));
  for (const r of records) expected.set(r.key, (expected.get(r.key) ?? 0) + r.amount);
  await produceRecords(records.map((r) => ({ topic, key: Buffer.from(r.key), value: Buffer.from(String(r.amount)) })));
});

afterAll(async () => {
  await client?.close();
  if (folder) {
    await stopRedis({ dir: folder, log: () => {} });
    rmSync(folder, { recursive: true, force: true });
  }
});

/** Crashes a run at after-sink of batch 1, then restarts it to the end; returns both outputs. */
async function crashAndRestart(mode: 'upsert' | 'plain', queryId: string) {
  const checkpoint = join(folder, `cp-${queryId}`);
  const env = { BOOTSTRAP: bootstrapServers(), IN: topic, CHECKPOINT: checkpoint, REDIS_URL: redis.url, QUERY_ID: queryId, MODE: mode };
  const t0 = Date.now();
  const first = run({ ...env, SLUICE_FAULT: 'after-sink@1' });
  const died = await first.exited;
  const crashMs = Date.now() - t0;
  expect(died, first.output()).toEqual({ code: null, signal: 'SIGKILL' });
  expect(first.output()).toContain('SIGKILL at after-sink of batch 1');
  // Died after the store write and before commits/1: the batch is planned, not committed.
  expect(existsSync(join(checkpoint, 'offsets', '1'))).toBe(true);
  expect(existsSync(join(checkpoint, 'commits', '0'))).toBe(true);
  expect(existsSync(join(checkpoint, 'commits', '1'))).toBe(false);
  const t1 = Date.now();
  const second = run(env);
  expect(await second.exited, second.output()).toEqual({ code: 0, signal: null });
  const restartMs = Date.now() - t1;
  return { first: first.output(), second: second.output(), crashMs, restartMs };
}

async function storeValues(queryId: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for await (const keys of client.scanIterator({ MATCH: storeKey(queryId, '*'), COUNT: 1000 })) {
    for (const k of keys) out.set(k.slice(storeKey(queryId, '').length), Number(await client.get(k)));
  }
  return out;
}

describe('foreachBatch into Redis: crash after the store write, before commits/N', () => {
  it('upsertBatch skips the re-run batch: every key holds its sum exactly once', async () => {
    const queryId = 'sums';
    const r = await crashAndRestart('upsert', queryId);
    // The property itself: each key's value is the sum of its input amounts, each counted once.
    expect(await storeValues(queryId)).toEqual(expected);
    expect(r.first).toMatch(/^batch 1 keys \d+ sum \d+ applied$/m);
    // The re-run of batch 1 (same batchId) found it applied; the batches after it were applied once.
    expect(r.second).toMatch(/^batch 1 keys \d+ sum \d+ skipped \(last applied 1\)$/m);
    expect(r.second).not.toMatch(/^batch 0 /m);
    const applied = [...r.second.matchAll(/^batch (\d+) .* applied$/gm)].map((m) => Number(m[1]));
    expect(applied.length).toBeGreaterThan(0);
    expect(applied[0]).toBe(2);
    expect(await lastAppliedBatch(client, queryId)).toBe(applied[applied.length - 1]);
    console.log(
      `redis upsert: ${N} records, ${KEYS} keys, batches 0..${applied[applied.length - 1]}; crashed at after-sink@1 in ${r.crashMs} ms, ` +
        `restart re-ran batch 1 (skipped) and finished in ${r.restartMs} ms; every key's value = its input sum`,
    );
  }, 300_000);

  it('control: the same crash with plain INCRBY (no batch id guard) counts batch 1 twice', async () => {
    const queryId = 'control';
    const r = await crashAndRestart('plain', queryId);
    const batch1 = Number(/^batch 1 keys \d+ sum (\d+) written/m.exec(r.first)?.[1]);
    expect(batch1).toBeGreaterThan(0);
    expect(r.second).toMatch(new RegExp(`^batch 1 keys \\d+ sum ${batch1} written`, 'm'));
    const got = await storeValues(queryId);
    const total = (m: Map<string, number>): number => [...m.values()].reduce((a, b) => a + b, 0);
    expect(total(got)).toBe(total(expected) + batch1);
    const wrong = [...expected].filter(([k, v]) => got.get(k) !== v);
    expect(wrong.length).toBeGreaterThan(0);
    console.log(`control (no guard): the re-run batch 1 (sum ${batch1}) was added twice; ${wrong.length} of ${KEYS} keys wrong, total ${total(got)} instead of ${total(expected)}`);
  }, 300_000);
});
