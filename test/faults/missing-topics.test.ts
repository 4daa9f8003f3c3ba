/**
 * Issue 16 item 8 — a missing sink or dead-letter topic was found about 30 s into the query, with ten
 * copies of "Unknown topic or partition" and no topic name. Now start() checks them and fails at once with
 * one sentence naming the topic and the fix; `createMissingTopics=true` creates them.
 */
import { describe, expect, it } from 'vitest';
import { col, type SluiceSession } from '../../src/index.js';
import { KafkaAdmin, readTopic } from '../../src/kafka/client.js';
import { bootstrapServers, freshTopics, kafka, newCheckpoint, produceRecords, quietSession, readKafka } from '../integration/helpers.js';

const session = (logs?: string[]) => quietSession('faults', logs);
const cp = newCheckpoint;

function copyQuery(s: SluiceSession, input: string, options: Record<string, string>) {
  return readKafka(s, input)
    .select(col('key'), col('value'))
    .writeStream.format('kafka')
    .option('kafka.bootstrap.servers', bootstrapServers())
    .option('checkpointLocation', cp())
    .options(options)
    .trigger({ availableNow: true });
}

describe('missing output topics', () => {
  it('a missing sink topic or dead-letter topic fails start() at once, naming the topic and the fix', async () => {
    const t = await freshTopics('missing', 1);
    const gone = `${t.output}-missing`;
    const t0 = Date.now();
    await expect(copyQuery(session(), t.input, { topic: gone }).start()).rejects.toThrow(
      new RegExp(`The output topic "${gone}" \\(option topic\\) does not exist on .*sluice topics create ${gone}.*createMissingTopics`),
    );
    await expect(copyQuery(session(), t.input, { topic: t.output, 'deadLetter.topic': `${gone}-dlq` }).start()).rejects.toThrow(
      new RegExp(`The output topic "${gone}-dlq" \\(option deadLetter.topic\\) does not exist`),
    );
    // Seconds, not the ~30 s librdkafka waits for a topic to appear (the bound is generous for a loaded machine).
    expect(Date.now() - t0).toBeLessThan(15_000);
  });

  it('createMissingTopics=true creates them (broker defaults) and the query writes', async () => {
    const t = await freshTopics('create', 1);
    const out = `${t.output}-new`;
    await produceRecords([{ topic: t.input, key: Buffer.from('k'), value: Buffer.from('v') }]);
    const logs: string[] = [];
    const q = await copyQuery(session(logs), t.input, { topic: out, 'deadLetter.topic': `${out}-dlq`, createMissingTopics: 'true' }).start();
    await q.awaitTermination();
    expect(logs.filter((l) => l.startsWith('Created topic'))).toHaveLength(2);
    const admin = new KafkaAdmin(kafka());
    try {
      expect((await admin.listTopics()).filter((n) => n.startsWith(out))).toEqual([out, `${out}-dlq`]);
    } finally {
      admin.disconnect();
    }
    expect((await readTopic(kafka(), out)).map((r) => r.value?.toString())).toEqual(['v']);
  });

  it('a topic column naming a missing topic fails the batch with one line naming the topic, not ten', async () => {
    const t = await freshTopics('column', 1);
    await produceRecords([1, 2, 3].map((i) => ({ topic: t.input, value: Buffer.from(`v${i}`) })));
    const gone = `${t.output}-by-column`;
    const q = await readKafka(session(), t.input)
      .selectExpr(`'${gone}' AS topic`, 'value')
      .writeStream.format('kafka')
      .option('kafka.bootstrap.servers', bootstrapServers())
      .option('kafka.topic.metadata.propagation.max.ms', '2000')
      .option('checkpointLocation', cp())
      .trigger({ availableNow: true })
      .start();
    await q.awaitTermination().catch(() => {});
    const msg = q.exception?.message ?? '';
    expect(msg).toMatch(new RegExp(`3 record\\(s\\) to topic "${gone}" failed: .*The topic does not exist: create it \\(sluice topics create ${gone}\\)`));
    expect(msg.match(/failed:/g)).toHaveLength(1);
  });
});
