/**
 * session.read.format('kafka'): Spark's batch Kafka source on a real broker — a topic's contents between
 * startingOffsets (default earliest) and endingOffsets (default latest), as a static DataFrame that a
 * stream can be joined with.
 */
import { describe, expect, it } from 'vitest';
import { AckedProducer } from '../../src/kafka/client.js';
import { SluiceSession, col } from '../../src/index.js';
import { bootstrapServers, freshTopics, kafka } from './helpers.js';

async function send(topic: string, values: string[], partition: number, headers?: Record<string, string>): Promise<void> {
  const p = new AckedProducer(kafka());
  await p.send(values.map((v) => ({ topic, partition, value: Buffer.from(v), key: Buffer.from(`k-${v}`), ...(headers ? { headers: [headers] } : {}) })));
  await p.flush();
  await p.close();
}

describe('Kafka as a batch source', () => {
  it('reads a topic as it is now, between startingOffsets and endingOffsets, with headers on request', async () => {
    const t = await freshTopics('batchread', 2);
    await send(t.input, ['a0', 'a1', 'a2'], 0, { h: 'x' });
    await send(t.input, ['b0', 'b1'], 1);
    const s = new SluiceSession('batch-read');
    s.out = () => {};
    const read = () => s.read.format('kafka').option('kafka.bootstrap.servers', bootstrapServers()).option('subscribe', t.input);
    const all = await read().load().select(col('value').cast('string').alias('v'), col('partition'), col('offset')).collect();
    expect(all.map((r) => `${r.partition}:${r.offset}:${r.v}`).sort()).toEqual(['0:0:a0', '0:1:a1', '0:2:a2', '1:0:b0', '1:1:b1']);
    const range = await read()
      .option('startingOffsets', JSON.stringify({ [t.input]: { '0': 1, '1': -2 } }))
      .option('endingOffsets', JSON.stringify({ [t.input]: { '0': 2, '1': -1 } }))
      .load().select(col('value').cast('string').alias('v')).collect();
    expect(range.map((r) => r.v).sort()).toEqual(['a1', 'b0', 'b1']);
    const [first] = await read().option('includeHeaders', 'true').load().filter(col('partition').eq(0)).filter(col('offset').eq(0)).collect();
    expect(first!.headers).toEqual([{ key: 'h', value: Buffer.from('x') }]);
    // Read again, it sees what was added since: a static DataFrame is evaluated when it runs.
    await send(t.input, ['a3'], 0);
    expect(await read().load().count()).toBe(6);
  });
});
