/**
 * Issue 16, item 6 — two writers on one checkpoint, as two real processes (`sluice run` of the Kafka →
 * Kafka copy pipeline in test/fixtures/copy-pipeline.ts, 100 records per batch). A probe with two racing
 * processes saw both claim batch ids; even one after the other, the second was caught only after writing a
 * duplicate batch. Now `<checkpoint>/lock` lets exactly one run: the other fails at start naming the holder,
 * and the output holds every input record exactly once. A holder killed with -9 is taken over at once on
 * the same host (its pid is gone). Both tests fail on the code before the lock: nothing refused the second
 * process, and there was no lock to take over.
 */
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { produceEvents } from '../../src/demo/events.js';
import { readTopic } from '../../src/kafka/client.js';
import { bootstrapServers, expectedEvents, freshTopics, kafka, readAvro, registry, startCopyPipeline } from '../integration/helpers.js';

const start = startCopyPipeline;

/** Each output record's key (user and time), with how often it was written. */
async function outputCounts(topic: string): Promise<{ total: number; distinct: Map<string, number> }> {
  const out = await readAvro(topic);
  const distinct = new Map<string, number>();
  for (const o of out) {
    const k = `${String(o.value.user_id)}@${Number(o.value.timestamp)}`;
    distinct.set(k, (distinct.get(k) ?? 0) + 1);
  }
  return { total: out.length, distinct };
}

const newCheckpoint = (): string => join(mkdtempSync(join(tmpdir(), 'sluice-two-writers-')), 'cp');

describe('two writers on one checkpoint', () => {
  it('two processes started together: one runs, the other fails at start naming it; every record once', async () => {
    const t = await freshTopics('two-writers');
    const N = 1500;
    await produceEvents(N, { topic: t.input, kafka: kafka(), format: 'avro', registry: registry(), seed: 31 });
    const env = { BOOTSTRAP: bootstrapServers(), REGISTRY_URL: registry().url, IN: t.input, OUT: t.output, CHECKPOINT: newCheckpoint(), TRIGGER: 'availableNow' };
    const a = start(env);
    const b = start(env);
    const codes = await Promise.all([a.exited, b.exited]);
    const [winner, loser] = codes[0] === 0 ? [a, b] : [b, a];
    // Exactly one of the two ran: the lock is created exclusively, so they cannot both take it.
    expect(codes.slice().sort(), `${a.output()}\n---\n${b.output()}`).toEqual([0, 1]);
    // The loser says who holds the checkpoint (the winner's pid, this host) and what to do.
    expect(loser.output()).toMatch(
      new RegExp(`sluice: Cannot start query .* another query holds its lock \\(.*/lock\\): query .*, pid ${winner.child.pid} on host ${hostname()}, running since .*Two queries must never share a checkpointLocation`),
    );
    // The loser wrote nothing: every input record is in the output exactly once (no batch written twice).
    const { total, distinct } = await outputCounts(t.output);
    expect(distinct.size).toBe(N);
    expect(total).toBe(N);
    expect(expectedEvents(N, { seed: 31 }).every((e) => distinct.get(`${e.user_id}@${e.timestamp}`) === 1)).toBe(true);
    expect(existsSync(join(env.CHECKPOINT, 'lock'))).toBe(false); // released by the winner at its end
  });

  it('a second process while the first runs is refused; after kill -9 of the first, a third takes the lock over at once', async () => {
    const t = await freshTopics('two-writers-kill');
    const N = 3000;
    await produceEvents(N, { topic: t.input, kafka: kafka(), format: 'avro', registry: registry(), seed: 32 });
    const env = { BOOTSTRAP: bootstrapServers(), REGISTRY_URL: registry().url, IN: t.input, OUT: t.output, CHECKPOINT: newCheckpoint() };
    const first = start(env); // processingTime: keeps running
    const deadline = Date.now() + 60_000;
    while ((await readTopic(kafka(), t.output)).length < 300) {
      if (Date.now() > deadline) throw new Error(`the pipeline wrote nothing in 60 s:\n${first.output()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const second = start({ ...env, TRIGGER: 'availableNow' });
    expect(await second.exited, second.output()).toBe(1);
    expect(second.output()).toMatch(new RegExp(`another query holds its lock .* pid ${first.child.pid} on host ${hostname()}`));
    expect(first.child.exitCode).toBeNull(); // the first one goes on
    const lock = JSON.parse(readFileSync(join(env.CHECKPOINT, 'lock'), 'utf8')) as { pid: number };
    expect(lock.pid).toBe(first.child.pid);

    first.child.kill('SIGKILL'); // its lock stays behind, with a fresh heartbeat
    await first.exited;
    const t0 = Date.now();
    const third = start({ ...env, TRIGGER: 'availableNow' });
    expect(await third.exited, third.output()).toBe(0);
    // Not after the 30 s stale timeout: the dead pid is seen at once.
    expect(third.output()).toMatch(new RegExp(`WARN Took over the checkpoint lock .* pid ${first.child.pid} no longer runs on this host`));
    expect(Date.now() - t0).toBeLessThan(25_000);
    const { total, distinct } = await outputCounts(t.output);
    expect(distinct.size).toBe(N);
    // At-least-once: only the batch in flight at the kill may repeat (100 records per batch).
    expect(total - N).toBeLessThanOrEqual(100);
  });
});
