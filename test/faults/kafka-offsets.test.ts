/**
 * The Kafka source's offsets on a real broker, in the cases that used to lose or block data (issue
 * "Trustworthy engine" §2.9): a topic recreated under a checkpoint, a partition added while a query runs,
 * transactions upstream (read_committed up to the last stable offset), and ranges that end on a
 * transaction marker. Spark's rules: KafkaMicroBatchStream reports data loss when a partition's offset
 * goes back ("Partition t-0's offset was changed from 5 to 3, some data may have been missed"), and reads
 * with the consumer's isolation level.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { mkdtempSync } from 'node:fs';
import Kafka from '@confluentinc/kafka-javascript';
import type { Producer } from '@confluentinc/kafka-javascript';
import { describe, expect, it } from 'vitest';
import { AckedProducer, KafkaAdmin } from '../../src/kafka/client.js';
import { SluiceSession, col } from '../../src/index.js';
import type { StreamingQuery } from '../../src/index.js';
import { bootstrapServers, freshTopics, kafka } from '../integration/helpers.js';

async function send(topic: string, values: string[], partition = 0): Promise<void> {
  const p = new AckedProducer(kafka());
  await p.send(values.map((v) => ({ topic, partition, value: Buffer.from(v) })));
  await p.flush();
  await p.close();
}

/** Runs the topic into a memory table with Trigger.AvailableNow on a checkpoint; returns the query and the values it wrote. */
async function drain(topic: string, checkpoint: string, options: Record<string, string> = {}): Promise<{ q: StreamingQuery; values: string[] }> {
  const s = new SluiceSession('offsets');
  s.out = () => {};
  s.log = () => {};
  const q = await s.readStream.format('kafka').option('kafka.bootstrap.servers', bootstrapServers()).option('subscribe', topic)
    .option('startingOffsets', 'earliest').options(options).load()
    .select(col('value').cast('string').alias('value'))
    .writeStream.format('memory').queryName('t').option('checkpointLocation', checkpoint).trigger({ availableNow: true }).start();
  await q.awaitTermination();
  return { q, values: (await s.table('t').collect()).map((r) => String(r.value)) };
}

const tmp = (): string => mkdtempSync(join(tmpdir(), 'sluice-offsets-'));

function call(fn: (cb: (err: unknown) => void) => void): Promise<void> {
  return new Promise((resolve, reject) => fn((err) => (err ? reject(err) : resolve())));
}

/** A transactional producer, as an upstream exactly-once writer would be. */
async function txProducer(id: string): Promise<Producer> {
  const p = new Kafka.Producer({ 'bootstrap.servers': bootstrapServers(), 'transactional.id': id, dr_cb: false });
  await call((cb) => p.connect({ timeout: 30_000 }, cb));
  await call((cb) => p.initTransactions(30_000, cb));
  return p;
}
async function inTransaction(p: Producer, topic: string, values: string[], end: 'commit' | 'abort' | 'open'): Promise<void> {
  await call((cb) => p.beginTransaction(cb));
  for (const v of values) p.produce(topic, 0, Buffer.from(v));
  if (end === 'commit') await call((cb) => p.commitTransaction(30_000, cb));
  else if (end === 'abort') await call((cb) => p.abortTransaction(30_000, cb));
  else await call((cb) => p.flush(30_000, cb)); // written to the log, transaction still open
}

describe('Kafka offsets the checkpoint cannot take for granted', () => {
  it('a topic recreated below the checkpoint\'s offsets is data loss: the query stops, or with failOnDataLoss=false reads the new records', async () => {
    const t = await freshTopics('recreate', 1);
    await send(t.input, ['1', '2', '3', '4', '5']);
    const cp = tmp();
    expect((await drain(t.input, cp)).values).toEqual(['1', '2', '3', '4', '5']);
    const admin = new KafkaAdmin(kafka());
    await admin.recreateTopic(t.input, 1);
    // Metadata catches up with the new topic a moment later.
    for (let i = 0; i < 100 && !(await admin.listTopics()).includes(t.input); i++) await new Promise((r) => setTimeout(r, 100));
    admin.disconnect();
    await send(t.input, ['a', 'b', 'c']); // offsets 0..2: all below 5, where the checkpoint ended
    // Before: the offsets were taken as "no new data" and a, b, c were skipped with no error at all.
    const strict = drain(t.input, cp);
    await expect(strict).rejects.toThrow(/latest offset is 3, below 5 where the last batch ended: the offsets went back[\s\S]*failOnDataLoss/);
    const lenient = await drain(t.input, cp, { failOnDataLoss: 'false' });
    expect(lenient.values).toEqual(['a', 'b', 'c']);
    const last = lenient.q.recentProgress.at(-1)!;
    expect(last.sources[0]!.endOffset).toEqual({ [t.input]: { '0': 3 } });
  });

  it('a partition added while the query runs is read from its earliest offset, logged in offsets/N; records gone from it are data loss', async () => {
    const t = await freshTopics('grow', 1);
    await send(t.input, ['p0-a']);
    const cp = tmp();
    expect((await drain(t.input, cp)).values).toEqual(['p0-a']);
    const admin = new KafkaAdmin(kafka());
    await admin.createPartitions(t.input, 2);
    await send(t.input, ['p1-a', 'p1-b', 'p1-c'], 1);
    // Retention removes p1-a before the query sees the new partition: its earliest offset is now 1, not 0.
    await admin.deleteRecordsBefore(t.input, 1, 1);
    admin.disconnect();
    // Before: the batch read the new partition from offset 0, which no longer exists (the read failed).
    // Spark reports "Added partition … starts from 1 instead of 0. Some data may have been missed": so does Sluice.
    await expect(drain(t.input, cp)).rejects.toThrow(/partition in-grow-\S+-1 was added since the last batch, and its records 0\.\.0 were deleted[\s\S]*failOnDataLoss/);
    const { q, values } = await drain(t.input, cp, { failOnDataLoss: 'false' });
    expect(values).toEqual(['p1-b', 'p1-c']);
    const batch = q.recentProgress.find((p) => p.numInputRows > 0)!.batchId;
    const logged = readFileSync(join(cp, 'offsets', String(batch)), 'utf8').split('\n');
    expect(JSON.parse(logged[1]!).readFrom).toEqual({ '0': { [t.input]: { '0': 1, '1': 1 } } });
    expect(readdirSync(join(cp, 'commits'))).toContain(String(batch));
  });

  it('reads committed transactions only, up to the last stable offset: an open transaction upstream does not block a batch', async () => {
    const t = await freshTopics('txn', 1);
    const p = await txProducer(`sluice-test-${t.input}`);
    try {
      await inTransaction(p, t.input, ['c1', 'c2'], 'commit');
      await inTransaction(p, t.input, ['x1', 'x2'], 'abort');
      await inTransaction(p, t.input, ['c3'], 'commit');
      await inTransaction(p, t.input, ['o1', 'o2'], 'open');
      const cp = tmp();
      // Before: the batch's end was the high watermark, past the open transaction; the read_committed consumer
      // waited for records it cannot see until kafkaConsumer.pollTimeoutMs, then failed the batch.
      const first = await drain(t.input, cp, { 'kafkaConsumer.pollTimeoutMs': '10000' });
      // Aborted x1, x2 are never seen; the open transaction's o1, o2 are not yet.
      expect(first.values).toEqual(['c1', 'c2', 'c3']);
      await call((cb) => p.commitTransaction(30_000, cb));
      const second = await drain(t.input, cp);
      expect(second.values).toEqual(['o1', 'o2']);
    } finally {
      await call((cb) => p.disconnect(cb));
    }
  });

  it('a range that ends on a transaction marker ends there, with later records in the log', async () => {
    const t = await freshTopics('marker', 1);
    const p = await txProducer(`sluice-test-${t.input}`);
    try {
      // Offsets 0..2 records, 3 the commit marker, 4..6 records, 7 a marker: ranges end after each marker.
      await inTransaction(p, t.input, ['a', 'b', 'c'], 'commit');
      await inTransaction(p, t.input, ['d', 'e', 'f'], 'commit');
    } finally {
      await call((cb) => p.disconnect(cb));
    }
    // maxOffsetsPerTrigger 4: the first batch is [0, 4), ending on the marker; the second [4, 8).
    const { q, values } = await drain(t.input, tmp(), { maxOffsetsPerTrigger: '4', 'kafkaConsumer.pollTimeoutMs': '10000' });
    expect(values).toEqual(['a', 'b', 'c', 'd', 'e', 'f']);
    expect(q.recentProgress.filter((x) => x.numInputRows > 0).map((x) => [x.numInputRows, x.sources[0]!.endOffset])).toEqual([
      [3, { [t.input]: { '0': 4 } }],
      [3, { [t.input]: { '0': 8 } }],
    ]);
  });
});
