/**
 * Issue 11 — crash points of the exactly-once Kafka sink. A stateful pipeline (dropDuplicates on the value)
 * runs as its own process (`sluice run test/fixtures/eos-pipeline.ts`) and is killed with SIGKILL at a named
 * point of batch 2 (exec/faults.ts); a second run from the same checkpoint finishes the input. A
 * read_committed reader must then see every distinct value exactly once.
 *
 * Input: 600 records, values v0…v499 then v0…v99 again, 100 per batch (maxOffsetsPerTrigger): batches 0–4
 * each bring 100 new values, batch 5 only repeats, which dropDuplicates drops. So the right output is v0…v499,
 * once each, whatever the crash.
 *
 * What each point leaves, worked out from the protocol (ARCHITECTURE.md "Exactly-once to Kafka"):
 * - before-sink@2: offsets/2, nothing of batch 2 in Kafka → the restart re-runs batch 2 and writes it.
 * - mid-transaction@2: batch 2's 100 records in the log, in a transaction never committed → initTransactions on
 *   restart aborts it; no committed marker for 2 → re-run and written in a new transaction. A read_uncommitted
 *   reader sees those 100 records twice (the aborted copy): exactly-once holds for read_committed readers only.
 * - after-sink@2: batch 2's transaction committed, commits/2 not written → the marker for 2 is found, batch 2 is
 *   re-run to rebuild its state but not written again.
 * - during-state-commit@2: as after-sink, and state version 3 is on disk too (rewritten by the re-run).
 * - after-commit@2: commits/2 written → the restart goes on with batch 3.
 * And the same crash after the sink with the at-least-once sink writes batch 2 twice: 100 duplicates.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { KafkaAdmin, readTopic, type KafkaRecord } from '../../src/kafka/client.js';
import { col, from_json, to_json } from '../../src/index.js';
import { bootstrapServers, freshTopics, kafka, newCheckpoint, produceRecords, quietSession, readKafka, readSettled, startPipeline } from '../integration/helpers.js';

const DISTINCT = 500;
const N = 600;

async function crashAndRestart(fault: string, exactlyOnce: boolean) {
  const t = await freshTopics(`eos-${fault.replace("@", "-")}`, 1);
  await produceRecords(Array.from({ length: N }, (_, i) => ({ topic: t.input, key: Buffer.from(`k${i}`), value: Buffer.from(`v${i % DISTINCT}`) })));
  const checkpoint = join(mkdtempSync(join(tmpdir(), 'sluice-eos-')), 'cp');
  const env = { BOOTSTRAP: bootstrapServers(), IN: t.input, OUT: t.output, CHECKPOINT: checkpoint, DEDUPE: 'true', EXACTLY_ONCE: String(exactlyOnce), TRIGGER: 'availableNow' };
  const first = startPipeline('eos-pipeline.ts', { ...env, SLUICE_FAULT: fault });
  const code = await first.exited;
  expect(first.child.signalCode, first.output()).toBe('SIGKILL');
  expect(code).toBeNull();
  expect(first.output()).toContain(`at ${fault.split('@')[0]} of batch 2`);
  const second = startPipeline('eos-pipeline.ts', env);
  expect(await second.exited, second.output()).toBe(0);
  const committed = await readSettled(kafka(), t.output);
  const uncommitted = await readTopic({ ...kafka(), 'isolation.level': 'read_uncommitted' }, t.output);
  return { committed, uncommitted, logs: second.output(), checkpoint };
}

function count(records: KafkaRecord[]): { distinct: number; duplicates: number; missing: number } {
  const seen = new Map<string, number>();
  for (const r of records) seen.set(r.value!.toString(), (seen.get(r.value!.toString()) ?? 0) + 1);
  let missing = 0;
  for (let i = 0; i < DISTINCT; i++) if (!seen.has(`v${i}`)) missing++;
  return { distinct: seen.size, duplicates: records.length - seen.size, missing };
}

describe('exactly-once Kafka sink: kill -9 at each crash point, then restart', () => {
  it.each(['before-sink@2', 'mid-transaction@2', 'after-sink@2', 'during-state-commit@2', 'after-commit@2'])(
    '%s: a read_committed reader sees every value once',
    async (fault) => {
      const { committed, uncommitted, logs, checkpoint } = await crashAndRestart(fault, true);
      expect(count(committed)).toEqual({ distinct: DISTINCT, duplicates: 0, missing: 0 });
      expect(existsSync(join(checkpoint, 'commits', '5'))).toBe(true);
      if (fault.startsWith('mid-transaction')) {
        // The aborted transaction's records stay in the log: a read_uncommitted reader sees batch 2 twice.
        expect(count(uncommitted).duplicates).toBe(100);
      } else {
        expect(uncommitted.length).toBe(DISTINCT);
      }
      if (fault.startsWith('after-sink') || fault.startsWith('during-state-commit')) {
        expect(logs).toContain("Batch 2's output is already in Kafka: its transaction committed before the restart");
      } else {
        expect(logs).not.toContain('already in Kafka');
      }
    },
  );

  it('the at-least-once sink, killed after the sink wrote batch 2, writes batch 2 twice', async () => {
    const { committed } = await crashAndRestart('after-sink@2', false);
    expect(count(committed)).toEqual({ distinct: DISTINCT, duplicates: 100, missing: 0 });
  });
});

describe('transactional producer', () => {
  it('a second producer with the same transactional.id fences the first: its commit fails, saying why', async () => {
    const { TransactionalProducer } = await import('../../src/kafka/transactions.js');
    const t = await freshTopics('eos-fence', 1);
    const id = `sluice-test-fence-${t.output}`;
    const older = new TransactionalProducer(kafka(), id);
    const newer = new TransactionalProducer(kafka(), id);
    try {
      await older.init();
      await older.begin();
      await older.send([{ topic: t.output, value: Buffer.from('zombie') }]);
      await older.flush();
      await newer.init(); // fences the older producer and aborts its open transaction
      const err = await older.commit().then(() => undefined, (e: Error & { fatal?: boolean }) => e);
      expect(err?.message).toMatch(/fenced/i);
      expect(err?.message).toContain(`transactional.id "${id}"`);
      expect(err?.fatal).toBe(true);
      await newer.begin();
      await newer.send([{ topic: t.output, value: Buffer.from('live') }]);
      await newer.commit();
      expect((await readSettled(kafka(), t.output)).map((r) => r.value!.toString())).toEqual(['live']);
    } finally {
      await Promise.all([older.close(), newer.close()]);
    }
  });
});

describe('exactly-once sink: failures inside a running process', () => {
  /** The output topic's last stable offset and high watermark: equal when no transaction is open on it. */
  async function ends(topic: string): Promise<{ stable: number; high: number }> {
    const admin = new KafkaAdmin(kafka());
    try {
      const tp = [{ topic, partition: 0 }];
      const [stable, high] = await Promise.all([admin.listOffsets(tp, 'latest', 'read_committed'), admin.listOffsets(tp, 'latest', 'read_uncommitted')]);
      return { stable: stable[topic]!['0']!, high: high[topic]!['0']! };
    } finally {
      admin.disconnect();
    }
  }

  it('a batch that fails after its first chunk was sent aborts its transaction: nothing is left open for read_committed readers', async () => {
    // 15,000 records in one batch: the source hands them over in chunks of 10,000, so the first chunk is sent
    // (the transaction begun) before the last record — not JSON, FAILFAST, onBadRecord=fail — stops the query.
    const t = await freshTopics('eos-abort', 1);
    await produceRecords(Array.from({ length: 15_000 }, (_, i) => ({ topic: t.input, value: Buffer.from(i === 14_999 ? 'boom' : `{"a":${i}}`) })));
    const s = quietSession('eos-abort');
    const q = await readKafka(s, t.input)
      .select(to_json(from_json(col('value').cast('string'), 'a INT', { mode: 'FAILFAST' })).alias('value'))
      .writeStream.format('kafka')
      .option('kafka.bootstrap.servers', bootstrapServers())
      .option('topic', t.output)
      .option('exactlyOnce', 'true')
      .option('onBadRecord', 'fail')
      .option('checkpointLocation', newCheckpoint())
      .trigger({ availableNow: true })
      .start();
    await expect(q.awaitTermination()).rejects.toThrow(/onBadRecord=fail/);
    // The broker writes an abort's markers just after it answers: the end settles within moments, not the
    // 10 minutes (transaction.timeout.ms) an open transaction would hold it.
    let e = await ends(t.output);
    for (const until = Date.now() + 15_000; e.stable < e.high && Date.now() < until; e = await ends(t.output)) await new Promise((r) => setTimeout(r, 200));
    // Records of the first chunk reached the log (how many before the abort purged the rest depends on timing:
    // with task workers the last chunk fails while the first is still being sent)…
    expect(e.high).toBeGreaterThan(0);
    expect(e.stable).toBe(e.high); // …and its transaction is over (aborted)
    expect(await readTopic(kafka(), t.output)).toHaveLength(0);
  });

  it('a checkpoint behind the output (batch files deleted) is refused, naming both sides, instead of losing or repeating output', async () => {
    const t = await freshTopics('eos-behind', 1);
    await produceRecords(Array.from({ length: 30 }, (_, i) => ({ topic: t.input, value: Buffer.from(`v${i}`) })));
    const checkpoint = newCheckpoint();
    const run = async () => {
      const s = quietSession('eos-behind');
      const q = await readKafka(s, t.input, { maxOffsetsPerTrigger: 10 })
        .select(col('value'))
        .writeStream.format('kafka')
        .option('kafka.bootstrap.servers', bootstrapServers())
        .option('topic', t.output)
        .option('exactlyOnce', 'true')
        .option('checkpointLocation', checkpoint)
        .trigger({ availableNow: true })
        .start();
      await q.awaitTermination();
    };
    await run(); // batches 0, 1, 2, each with its marker
    // What recovery advice for a damaged last batch says: delete commits/2 and offsets/2. Batch 2 would then be
    // planned again — without maxOffsetsPerTrigger limits it could read more — and its marker says it is written.
    rmSync(join(checkpoint, 'commits', '2'));
    rmSync(join(checkpoint, 'offsets', '2'));
    await expect(run()).rejects.toThrow(/Kafka already holds batch 2's output .* but the checkpoint has no offsets\/2: the checkpoint is behind the output/);
    expect(await readSettled(kafka(), t.output)).toHaveLength(30);
  });
});
