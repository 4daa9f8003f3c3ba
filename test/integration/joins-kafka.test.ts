/**
 * Orders ⋈ payments on a real Kafka broker: two topics in (JSON values), a stream-stream join with
 * watermarks and a 10-minute range, the enriched orders out to a third topic; then a restart that picks up
 * where the checkpoint left off. Expected records worked out by hand (Spark's rules, test/unit/joins.test.ts).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AckedProducer, readTopic } from '../../src/kafka/client.js';
import { SluiceSession, col, expr, from_json, struct, to_json } from '../../src/index.js';
import { bootstrapServers, freshTopics, kafka } from './helpers.js';

async function send(topic: string, values: object[]): Promise<void> {
  const p = new AckedProducer(kafka());
  await p.send(values.map((v) => ({ topic, value: Buffer.from(JSON.stringify(v)) })));
  await p.flush();
  await p.close();
}

describe('stream-stream join on Kafka', () => {
  it('orders joined with their payments within 10 minutes, written to a topic; a restart continues from the checkpoint', async () => {
    const orders = await freshTopics('orders', 2);
    const payments = await freshTopics('payments', 2);
    const checkpoint = join(mkdtempSync(join(tmpdir(), 'sluice-join-it-')), 'cp');
    const start = async () => {
      const s = new SluiceSession('join-it');
      s.out = () => {};
      s.log = () => {};
      const read = (topic: string, ddl: string) =>
        s.readStream.format('kafka').option('kafka.bootstrap.servers', bootstrapServers()).option('subscribe', topic).option('startingOffsets', 'earliest').load()
          .select(from_json(col('value').cast('string'), ddl).alias('v')).select('v.*');
      const o = read(orders.input, 'order_id STRING, user STRING, amount DOUBLE, order_time TIMESTAMP').withWatermark('order_time', '10 minutes').alias('o');
      const p = read(payments.input, 'order_id STRING, method STRING, paid_at TIMESTAMP').withWatermark('paid_at', '10 minutes').alias('p');
      const q = await o
        .join(p, expr('o.order_id = p.order_id AND p.paid_at >= o.order_time AND p.paid_at <= o.order_time + interval 10 minutes'))
        .select(col('o.order_id').alias('key'), to_json(struct(col('o.order_id').alias('order_id'), col('user'), col('amount'), col('method'))).alias('value'))
        .writeStream.format('kafka').option('kafka.bootstrap.servers', bootstrapServers()).option('topic', orders.output)
        .option('checkpointLocation', checkpoint).trigger({ availableNow: true }).start();
      await q.awaitTermination();
      return q;
    };
    await send(orders.input, [
      { order_id: 'o1', user: 'ann', amount: 10, order_time: '2025-01-01T12:00:00Z' },
      { order_id: 'o2', user: 'bob', amount: 20, order_time: '2025-01-01T12:01:00Z' },
      { order_id: 'o3', user: 'cy', amount: 30, order_time: '2025-01-01T12:02:00Z' },
    ]);
    await send(payments.input, [
      { order_id: 'o1', method: 'card', paid_at: '2025-01-01T12:05:00Z' }, // within 10 minutes: joins
      { order_id: 'o2', method: 'cash', paid_at: '2025-01-01T12:30:00Z' }, // 29 minutes later: no match
    ]);
    await start();
    // o3's payment comes later, in the next run: the order waits in state (12:02 is not behind the watermark).
    await send(payments.input, [{ order_id: 'o3', method: 'card', paid_at: '2025-01-01T12:09:00Z' }]);
    const second = await start();
    const out = (await readTopic(kafka(), orders.output)).map((r) => JSON.parse(r.value!.toString()) as Record<string, unknown>);
    expect(out.sort((a, b) => String(a.order_id).localeCompare(String(b.order_id)))).toEqual([
      { order_id: 'o1', user: 'ann', amount: 10, method: 'card' },
      { order_id: 'o3', user: 'cy', amount: 30, method: 'card' },
    ]);
    expect(second.lastProgress!.stateOperators[0]!.operatorName).toBe('symmetricHashJoin');
  });
});
