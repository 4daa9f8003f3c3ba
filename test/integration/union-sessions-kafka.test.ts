/**
 * Two Kafka topics (web and app clicks, JSON), each with its own watermark, unioned, grouped into
 * per-user session windows (gap 5 minutes) in append mode, written to a third topic; the query is stopped
 * and restarted from its checkpoint in between. Expected output worked out by hand below.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SluiceSession, col, count, from_json, session_window, struct, to_json } from '../../src/index.js';
import { AckedProducer, KafkaAdmin, readTopic } from '../../src/kafka/client.js';
import { bootstrapServers, kafka } from './helpers.js';

const T = (hhmm: string): string => `2025-08-22T${hhmm}:00.000Z`;

async function send(topic: string, clicks: Array<[string, string]>): Promise<void> {
  const p = new AckedProducer(kafka());
  await p.send(clicks.map(([user, time]) => ({ topic, key: Buffer.from(user), value: Buffer.from(JSON.stringify({ user, ts: T(time) })) })));
  await p.flush();
  await p.close();
}

async function run(topics: { web: string; app: string; out: string }, checkpoint: string) {
  const s = new SluiceSession('union');
  s.log = () => {};
  const clicks = (topic: string) =>
    s.readStream.format('kafka').option('kafka.bootstrap.servers', bootstrapServers()).option('subscribe', topic).option('startingOffsets', 'earliest').load()
      .select(from_json(col('value').cast('string'), 'user STRING, ts TIMESTAMP').alias('c')).select('c.*')
      .withWatermark('ts', '5 minutes');
  const q = await clicks(topics.web).union(clicks(topics.app))
    .groupBy(col('user'), session_window(col('ts'), '5 minutes')).agg(count('*').alias('clicks'))
    .select(col('user').alias('key'), to_json(struct('user', col('session_window.start').alias('start'), col('session_window.end').alias('end'), 'clicks')).alias('value'))
    .writeStream.format('kafka').option('kafka.bootstrap.servers', bootstrapServers()).option('topic', topics.out)
    .option('checkpointLocation', checkpoint).outputMode('append').trigger({ availableNow: true }).start();
  await q.awaitTermination();
  return q.recentProgress.map((p) => [p.batchId, p.numInputRows, p.eventTime.watermark]);
}

describe('union of two Kafka topics into session windows', () => {
  it('merges sessions across topics; the slower topic holds the watermark; a restart resumes both offsets', async () => {
    const id = `${process.pid}-${Date.now()}`;
    const topics = { web: `web-${id}`, app: `app-${id}`, out: `sessions-${id}` };
    const admin = new KafkaAdmin(kafka());
    await admin.createTopic(topics.web, 2);
    await admin.createTopic(topics.app, 1);
    await admin.createTopic(topics.out, 1);
    admin.disconnect();
    const cp = join(mkdtempSync(join(tmpdir(), 'sluice-union-')), 'cp');

    await send(topics.web, [['u1', '12:00'], ['u1', '12:03'], ['u2', '12:01']]);
    await send(topics.app, [['u1', '12:06'], ['u2', '12:30']]);
    // Batch 0 reads all five. Watermarks after it: web 12:03 − 5 = 11:58, app 12:30 − 5 = 12:25; the query's is
    // the minimum, 11:58 — the slow web topic holds it back. No-data batch 1 with 11:58 closes nothing.
    // u1: [12:00,12:05) + [12:03,12:08) + [12:06,12:11) (from app) merge into [12:00,12:11), 3 clicks.
    expect(await run(topics, cp)).toEqual([
      [0, 5, '1970-01-01T00:00:00.000Z'],
      [1, 0, '2025-08-22T11:58:00.000Z'],
    ]);
    expect(await readTopic(kafka(), topics.out)).toEqual([]);

    await send(topics.web, [['u3', '12:40']]);
    // Restart: batch 2 reads only the new web record. Web's watermark → 12:35; min(12:35, 12:25) = 12:25, so
    // no-data batch 3 closes the sessions that end by 12:25: u1's and u2's first. u2 [12:30,12:35) and u3 stay open.
    expect(await run(topics, cp)).toEqual([
      [2, 1, '2025-08-22T11:58:00.000Z'],
      [3, 0, '2025-08-22T12:25:00.000Z'],
    ]);
    const out = (await readTopic(kafka(), topics.out)).map((r) => JSON.parse(r.value!.toString()));
    expect(out.sort((a, b) => a.start.localeCompare(b.start))).toEqual([
      { user: 'u1', start: T('12:00'), end: T('12:11'), clicks: 3 },
      { user: 'u2', start: T('12:01'), end: T('12:06'), clicks: 1 },
    ]);
  });
});
