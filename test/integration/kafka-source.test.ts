/** The Kafka source's options on a real broker, with Spark's semantics for each. */
import { describe, expect, it } from 'vitest';
import { AckedProducer, KafkaAdmin } from '../../src/kafka/client.js';
import { SluiceSession, col } from '../../src/index.js';
import { bootstrapServers, freshTopics, kafka } from './helpers.js';

function session(): SluiceSession {
  const s = new SluiceSession('src');
  s.out = () => {};
  s.log = () => {};
  return s;
}

async function send(topic: string, values: string[], partition = 0, headers?: Record<string, string>): Promise<void> {
  const p = new AckedProducer(kafka());
  await p.send(values.map((v) => ({ topic, partition, value: Buffer.from(v), key: Buffer.from(`k-${v}`), ...(headers ? { headers: [headers] } : {}) })));
  await p.flush();
  await p.close();
}

/** Runs a Trigger.AvailableNow query into a memory table and returns the table's rows. */
async function readAll(options: Record<string, string>, name: string, select = ['value']): Promise<Array<Record<string, unknown>>> {
  const s = session();
  const q = await s.readStream
    .format('kafka')
    .option('kafka.bootstrap.servers', bootstrapServers())
    .options(options)
    .load()
    .select(...select.map((c) => (c === 'value' ? col('value').cast('string').alias('value') : col(c))))
    .writeStream.format('memory')
    .queryName(name)
    .trigger({ availableNow: true })
    .start();
  await q.awaitTermination();
  return s.table(name).collect();
}

describe('Kafka source options', () => {
  it('subscribePattern reads every matching topic; assign reads only the named partitions', async () => {
    const a = await freshTopics('patA', 2);
    const b = await freshTopics('patB', 2);
    await send(a.input, ['a1', 'a2'], 0);
    await send(a.input, ['a3'], 1);
    await send(b.input, ['b1'], 1);
    const both = await readAll({ subscribePattern: `in-pat[AB]-${process.pid}-.*`, startingOffsets: 'earliest' }, 'pattern');
    expect(both.map((r) => r.value).sort()).toEqual(['a1', 'a2', 'a3', 'b1']);
    const one = await readAll({ assign: JSON.stringify({ [a.input]: [1] }), startingOffsets: 'earliest' }, 'assign');
    expect(one.map((r) => r.value)).toEqual(['a3']);
  });

  it('startingOffsets: latest skips what is there; JSON picks an offset per partition (-2 earliest)', async () => {
    const t = await freshTopics('start', 2);
    await send(t.input, ['p0-0', 'p0-1', 'p0-2'], 0);
    await send(t.input, ['p1-0', 'p1-1'], 1);
    expect(await readAll({ subscribe: t.input, startingOffsets: 'latest' }, 'latest')).toEqual([]);
    const json = await readAll({ subscribe: t.input, startingOffsets: JSON.stringify({ [t.input]: { '0': 2, '1': -2 } }) }, 'json');
    expect(json.map((r) => r.value).sort()).toEqual(['p0-2', 'p1-0', 'p1-1']);
  });

  it('exposes key, topic, partition, offset, timestamp and, with includeHeaders, headers', async () => {
    const t = await freshTopics('cols', 1);
    const before = Date.now();
    await send(t.input, ['x'], 0, { trace: 'abc' });
    const [row] = await readAll({ subscribe: t.input, startingOffsets: 'earliest', includeHeaders: 'true' }, 'cols', [
      'key', 'value', 'topic', 'partition', 'offset', 'timestamp', 'timestampType', 'headers',
    ]);
    expect(row).toMatchObject({ key: Buffer.from('k-x'), value: 'x', topic: t.input, partition: 0, offset: 0, timestampType: 0 });
    expect((row!.timestamp as Date).getTime()).toBeGreaterThanOrEqual(before - 1000);
    expect(row!.headers).toEqual([{ key: 'trace', value: Buffer.from('abc') }]);
  });

  it('maxOffsetsPerTrigger caps each batch; the cap is shared by the partitions', async () => {
    const t = await freshTopics('cap', 2);
    await send(t.input, Array.from({ length: 30 }, (_, i) => `a${i}`), 0);
    await send(t.input, Array.from({ length: 10 }, (_, i) => `b${i}`), 1);
    const s = session();
    const q = await s.readStream.format('kafka').option('kafka.bootstrap.servers', bootstrapServers()).option('subscribe', t.input)
      .option('startingOffsets', 'earliest').option('maxOffsetsPerTrigger', 20).load()
      .writeStream.format('memory').queryName('cap').trigger({ availableNow: true }).start();
    await q.awaitTermination();
    // 40 records, at most 20 per batch, split 30:10 → 15 + 5 per batch (Spark's proportional rate limit).
    expect(q.recentProgress.map((p) => p.numInputRows)).toEqual([20, 20]);
    expect(q.recentProgress[0]!.sources[0]!.endOffset).toEqual({ [t.input]: { '0': 15, '1': 5 } });
  });

  it('failOnDataLoss: records deleted before they were read stop the query, unless set to false', async () => {
    const t = await freshTopics('loss', 1);
    await send(t.input, ['1', '2', '3'], 0);
    const cp = `${process.env.TMPDIR ?? '/tmp'}/sluice-loss-${Date.now()}`;
    const run = async (failOnDataLoss: string) => {
      const s = session();
      const q = await s.readStream.format('kafka').option('kafka.bootstrap.servers', bootstrapServers()).option('subscribe', t.input)
        .option('startingOffsets', 'earliest').option('failOnDataLoss', failOnDataLoss).load()
        .select(col('value').cast('string').alias('value'))
        .writeStream.format('memory').queryName('loss').option('checkpointLocation', cp).trigger({ availableNow: true }).start();
      return { q, s };
    };
    const first = await run('true');
    await first.q.awaitTermination();
    await send(t.input, ['4', '5', '6'], 0);
    const admin = new KafkaAdmin(kafka());
    await admin.deleteRecordsBefore(t.input, 0, 5); // offsets 3 and 4 ("4", "5") vanish unread
    admin.disconnect();
    const strict = await run('true');
    await expect(strict.q.awaitTermination()).rejects.toThrow(/offsets 3\.\.4 were deleted before they were read[\s\S]*failOnDataLoss/);
    const lenient = await run('false');
    await lenient.q.awaitTermination();
    expect(await lenient.s.table('loss').collect()).toEqual([{ value: '6' }]);
  });

  it('a topic that does not exist gets a clear error', async () => {
    const s = session();
    const q = await s.readStream.format('kafka').option('kafka.bootstrap.servers', bootstrapServers()).option('subscribe', 'no-such-topic-xyz').load()
      .writeStream.format('memory').queryName('none').start();
    await expect(q.awaitTermination()).rejects.toThrow(/Topic "no-such-topic-xyz" does not exist[\s\S]*sluice topics create/);
  });
});
