/**
 * Issue 16 — every kind of bad input, on the real stack: each record is keyed by what it is, and the test
 * checks where each one went (output or dead-letter topic), with which reason, and that in = out + dead
 * letters. Defects this keeps fixed: an oversize record blocked the query for good (and duplicated the rest
 * of its batch on every restart); an empty value became a tombstone in the sink and the dead-letter topic;
 * a tombstone came out as an all-null Avro record; bytes after a whole Avro record were ignored.
 */
import avro from 'avsc';
import { describe, expect, it } from 'vitest';
import { generateEvents, userEventSchema } from '../../src/demo/events.js';
import { demoPipeline } from '../../src/demo/pipeline.js';
import { col } from '../../src/index.js';
import { KafkaAdmin, OutgoingRecord, readTopic } from '../../src/kafka/client.js';
import { fromAvro, toAvro } from '../../src/serde/avro.js';
import { registryClient } from '../../src/serde/registry.js';
import { frame } from '../../src/serde/wireformat.js';
import { bootstrapServers, freshTopics, headersOf, kafka, newCheckpoint, produceRecords, quietSession, readAvro, readKafka, registry } from '../integration/helpers.js';

const session = (logs?: string[]) => quietSession('faults', logs);
const cp = newCheckpoint;

/** A topic that takes records up to 6 MB, so an oversize record can reach the pipeline's input. */
async function bigTopic(name: string): Promise<void> {
  const admin = new KafkaAdmin(kafka());
  try {
    await admin.createTopic(name, 1, 1, { 'max.message.bytes': String(6 << 20) });
  } finally {
    admin.disconnect();
  }
}

const produce = produceRecords;

describe('bad input goes to the dead-letter topic with its reason; nothing is lost', () => {
  it('JSON, wrong magic byte, unknown id, truncated, incompatible schema, tombstone, empty value, trailing bytes, oversize', async () => {
    const t = await freshTopics('bad-input', 1);
    const input = `${t.input}-big`;
    await bigTopic(input);
    const client = registryClient(registry());
    const type = avro.Type.forSchema(JSON.parse(userEventSchema()) as avro.Schema);
    const id = await client.register(`${input}-value`, userEventSchema());
    // A schema the reader cannot resolve: user_id is an int where the reader wants a string.
    const otherId = await client.register(
      `${input}-other-value`,
      JSON.stringify({ type: 'record', name: 'UserEvent', namespace: 'sluice.examples', fields: [{ name: 'user_id', type: 'int' }] }),
    );
    const events = [...generateEvents(21, { seed: 5 })].flatMap((r) => (r.event ? [r.event] : []));
    expect(events.length).toBeGreaterThanOrEqual(21);
    const good = events.slice(0, 20);
    const payload = type.toBuffer(good[0]);
    const k = (s: string): Buffer => Buffer.from(s);
    const records: OutgoingRecord[] = [
      ...good.map((e, i) => ({ topic: input, key: k(`good-${i}`), value: frame(id, type.toBuffer(e)) })),
      { topic: input, key: k('json'), value: Buffer.from(JSON.stringify(good[0])) },
      { topic: input, key: k('magic'), value: Buffer.concat([Buffer.from([1]), frame(id, payload).subarray(1)]) },
      { topic: input, key: k('unknown-id'), value: frame(0x7ffffff0, payload) },
      { topic: input, key: k('truncated'), value: frame(id, payload.subarray(0, payload.length - 6)) },
      { topic: input, key: k('incompatible'), value: frame(otherId, avro.Type.forSchema({ type: 'record', name: 'U', fields: [{ name: 'user_id', type: 'int' }] }).toBuffer({ user_id: 7 })) },
      { topic: input, key: k('tombstone'), value: null },
      { topic: input, key: k('empty'), value: Buffer.alloc(0) },
      { topic: input, key: k('trailing'), value: Buffer.concat([frame(id, payload), Buffer.from([1, 2, 3])]) },
      // A good record whose output (session_id is carried over) is 1.5 MB: above the sink producer's 1 MB limit.
      { topic: input, key: k('oversize'), value: frame(id, type.toBuffer({ ...events[20]!, session_id: 'x'.repeat(1_500_000) })) },
    ];
    await produce(records, { 'message.max.bytes': String(6 << 20) });

    const logs: string[] = [];
    const q = await demoPipeline(session(logs), {
      bootstrapServers: bootstrapServers(),
      registry: registry(),
      inputTopic: input,
      outputTopic: t.output,
      deadLetterTopic: t.dlq,
      checkpointLocation: cp(),
      trigger: { availableNow: true },
    }).start();
    await q.awaitTermination();
    expect(q.exception).toBeNull(); // before the fix: "Message size too large", on every restart

    const out = await readAvro(t.output);
    const dead = await readTopic(kafka(), t.dlq);
    // Output: exactly the 20 good records, each once.
    expect(out.map((r) => r.record.key!.toString()).sort()).toEqual(good.map((_, i) => `good-${i}`).sort());
    const reasons = Object.fromEntries(dead.map((r) => [r.key?.toString() ?? 'null-key', headersOf(r)['sluice.error.reason']]));
    expect(reasons).toEqual({
      json: 'wire.bad-magic-byte', // '{' is not the magic byte 0
      magic: 'wire.bad-magic-byte',
      'unknown-id': 'avro.unknown-schema-id',
      truncated: 'avro.decode',
      incompatible: 'avro.incompatible-schema',
      tombstone: 'tombstone',
      empty: 'wire.truncated', // 0 bytes: not even the 5-byte header
      trailing: 'avro.trailing-bytes',
      oversize: 'sink.record-too-large',
    });
    // in = out + dead letters, in the progress too.
    expect(out.length + dead.length).toBe(records.length);
    const totals = q.recentProgress.reduce((a, p) => ({ in: a.in + p.numInputRows, out: a.out + p.sink.numOutputRows, dl: a.dl + p.numDeadLetterRows }), { in: 0, out: 0, dl: 0 });
    expect(totals).toEqual({ in: records.length, out: 20, dl: 9 });

    const byKey = new Map(dead.map((r) => [r.key?.toString(), r]));
    // The empty value stays an empty value in the dead-letter topic (it was written as null: a tombstone).
    expect(byKey.get('empty')!.value).toEqual(Buffer.alloc(0));
    // The tombstone stays a tombstone.
    expect(byKey.get('tombstone')!.value).toBeNull();
    // The oversize record's letter fits: its 1.5 MB value is left out, its size and the fix are in the headers.
    const big = headersOf(byKey.get('oversize')!);
    expect(big['sluice.error.message']).toMatch(/is \d+ bytes, above the producer's message\.max\.bytes \(1000000\).*max\.message\.bytes/);
    // The output row no longer knows its input offset: the letter names its batch's input range instead.
    expect(big['sluice.error.message']).toMatch(new RegExp(`It came from batch \\d+, which read KafkaV2\\[Subscribe\\[${input}\\]\\] from .* to \\{"${input}":\\{"0":\\d+\\}\\}`));
    expect(Number(big['sluice.error.value.omitted.bytes'])).toBeGreaterThan(1_500_000);
    const letter = JSON.parse(byKey.get('oversize')!.value!.toString()) as { key: unknown; value: { omitted: boolean; bytes: number } };
    expect(letter.value).toEqual({ omitted: true, bytes: expect.any(Number) });
    expect(letter.value.bytes).toBeGreaterThan(1_500_000);
    expect(logs.some((l) => /record\(s\) sent to the dead-letter destination/.test(l))).toBe(true);
  });

  it('the Kafka sink writes an empty value as empty and a null value as a tombstone', async () => {
    const t = await freshTopics('empty-values', 1);
    await produce([
      { topic: t.input, key: Buffer.from('empty'), value: Buffer.alloc(0) },
      { topic: t.input, key: Buffer.from('null'), value: null },
      { topic: t.input, key: Buffer.alloc(0), value: Buffer.from('empty key') },
    ]);
    const q = await readKafka(session(), t.input)
      .select(col('key'), col('value'))
      .writeStream.format('kafka')
      .option('kafka.bootstrap.servers', bootstrapServers())
      .option('topic', t.output)
      .option('checkpointLocation', cp())
      .trigger({ availableNow: true })
      .start();
    await q.awaitTermination();
    const out = await readTopic(kafka(), t.output);
    // Before the fix the client sent both 0-byte buffers as null: a tombstone, and a null key.
    expect(out.map((r) => [r.key, r.value])).toEqual([
      [Buffer.from('empty'), Buffer.alloc(0)],
      [Buffer.from('null'), null],
      [Buffer.alloc(0), Buffer.from('empty key')],
    ]);
  });

  it("fromAvro(…, { tombstones: 'keep' }) passes a delete through: toAvro of the null struct writes a tombstone", async () => {
    const t = await freshTopics('tombstones', 1);
    const client = registryClient(registry());
    const id = await client.register(`${t.input}-value`, userEventSchema());
    const type = avro.Type.forSchema(JSON.parse(userEventSchema()) as avro.Schema);
    const [e] = [...generateEvents(1, { seed: 9 })].flatMap((r) => (r.event ? [r.event] : []));
    await produce([
      { topic: t.input, key: Buffer.from('u1'), value: frame(id, type.toBuffer(e)) },
      { topic: t.input, key: Buffer.from('u1'), value: null },
    ]);
    const q = await readKafka(session(), t.input)
      .select(col('key'), fromAvro(col('value'), { registry: registry(), subject: `${t.input}-value`, tombstones: 'keep' }).alias('event'))
      .select(col('key'), toAvro(col('event'), { registry: registry(), subject: `${t.output}-value` }).alias('value'))
      .writeStream.format('kafka')
      .option('kafka.bootstrap.servers', bootstrapServers())
      .option('topic', t.output)
      .option('deadLetter.topic', t.dlq)
      .option('checkpointLocation', cp())
      .trigger({ availableNow: true })
      .start();
    await q.awaitTermination();
    const out = await readTopic(kafka(), t.output);
    expect(out.map((r) => [r.key?.toString(), r.value === null ? 'tombstone' : 'record'])).toEqual([
      ['u1', 'record'],
      ['u1', 'tombstone'],
    ]);
    expect(await readTopic(kafka(), t.dlq)).toEqual([]);
  });
});
