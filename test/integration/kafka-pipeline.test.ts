/**
 * The demo pipeline end to end on a real Kafka broker and a real Schema Registry (Apicurio): Avro in via
 * the registry → parse/filter/derive → Avro out, dead letters, stop/restart, re-run of an uncommitted batch.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Checkpoint } from '../../src/checkpoint/checkpoint.js';
import { produceEvents } from '../../src/demo/events.js';
import { demoPipeline } from '../../src/demo/pipeline.js';
import { SluiceSession } from '../../src/index.js';
import type { TriggerOptions } from '../../src/exec/trigger.js';
import { bootstrapServers, expectedEvents, freshTopics, headersOf, kafka, readAvro, registry } from './helpers.js';

function session(): SluiceSession {
  const s = new SluiceSession('it');
  s.out = () => {};
  s.log = () => {};
  return s;
}

async function runPipeline(t: { input: string; output: string; dlq: string }, checkpointLocation: string, trigger: TriggerOptions, maxOffsetsPerTrigger?: number) {
  return demoPipeline(session(), {
    bootstrapServers: bootstrapServers(),
    registry: registry(),
    inputTopic: t.input,
    outputTopic: t.output,
    deadLetterTopic: t.dlq,
    checkpointLocation,
    trigger,
    ...(maxOffsetsPerTrigger ? { maxOffsetsPerTrigger } : {}),
  }).start();
}

const cp = (): string => join(mkdtempSync(join(tmpdir(), 'sluice-it-')), 'checkpoint');
const keyOf = (v: { user_id: unknown; timestamp: unknown }): string => `${String(v.user_id)}@${Number(v.timestamp)}`;

describe('Kafka + Schema Registry pipeline', () => {
  it('turns N Avro records into exactly the N expected records, field by field', async () => {
    const t = await freshTopics('exact');
    const N = 500;
    await produceEvents(N, { topic: t.input, kafka: kafka(), format: 'avro', registry: registry(), seed: 7 });
    const q = await runPipeline(t, cp(), { availableNow: true });
    await q.awaitTermination();
    const out = await readAvro(t.output);
    expect(out).toHaveLength(N);
    // Expected values worked out from the generated events: hour and date in UTC, mobile = mobile|tablet,
    // category commerce for add_to_cart/purchase, account for login/logout, else engagement.
    const byKey = new Map(out.map((o) => [keyOf(o.value as { user_id: string; timestamp: number }), o]));
    for (const e of expectedEvents(N, { seed: 7 })) {
      const o = byKey.get(keyOf(e));
      expect(o, `event ${keyOf(e)}`).toBeDefined();
      const d = new Date(e.timestamp);
      const category = ['add_to_cart', 'purchase'].includes(e.event_type) ? 'commerce' : ['login', 'logout'].includes(e.event_type) ? 'account' : 'engagement';
      expect(o!.value).toEqual({
        user_id: e.user_id,
        event_type: e.event_type,
        timestamp: e.timestamp,
        session_id: e.session_id,
        country: e.country,
        device_type: e.device_type,
        event_hour: d.getUTCHours(),
        // Avro `date` is days since the epoch.
        event_date: Math.floor(e.timestamp / 86_400_000),
        is_mobile: e.device_type == null ? null : ['mobile', 'tablet'].includes(e.device_type),
        event_category: category,
      });
      expect(o!.record.key!.toString()).toBe(e.user_id);
    }
    const p = q.lastProgress!;
    expect(p.sources[0]!.description).toBe(`KafkaV2[Subscribe[${t.input}]]`);
  });

  it('routes malformed records to the dead-letter topic with their reason: in = out + dead letters', async () => {
    const t = await freshTopics('dlq');
    const N = 1000;
    const produced = await produceEvents(N, { topic: t.input, kafka: kafka(), format: 'avro', registry: registry(), malformedFraction: 0.05, seed: 11 });
    expect(produced.malformed).toBeGreaterThan(20); // the generator's 5% of 1000
    const q = await runPipeline(t, cp(), { availableNow: true });
    await q.awaitTermination();
    const [out, dead] = await Promise.all([readAvro(t.output), (await import('../../src/kafka/client.js')).readTopic(kafka(), t.dlq)]);
    expect(out.length).toBe(N - produced.malformed);
    expect(dead.length).toBe(produced.malformed);
    expect(out.length + dead.length).toBe(N);
    const reasons = new Set(dead.map((r) => headersOf(r)['sluice.error.reason']));
    expect(reasons).toEqual(new Set(['wire.bad-magic-byte', 'wire.truncated', 'avro.unknown-schema-id']));
    const h = headersOf(dead[0]!);
    expect(h['sluice.source.topic']).toBe(t.input);
    expect(Number(h['sluice.source.offset'])).toBeGreaterThanOrEqual(0);
    expect(h['sluice.error.message']!.length).toBeGreaterThan(10);
    const totals = q.recentProgress.reduce((a, p) => ({ in: a.in + p.numInputRows, dl: a.dl + p.numDeadLetterRows }), { in: 0, dl: 0 });
    expect(totals).toEqual({ in: N, dl: produced.malformed });
  });

  it('stops and restarts from the checkpoint mid-stream with no record lost or duplicated', async () => {
    const t = await freshTopics('restart');
    const dir = cp();
    await produceEvents(2000, { topic: t.input, kafka: kafka(), format: 'avro', registry: registry(), seed: 3 });
    const q1 = await runPipeline(t, dir, { processingTime: '0 seconds' }, 300);
    while ((q1.lastProgress?.batchId ?? -1) < 2) await new Promise((r) => setTimeout(r, 20));
    await q1.stop();
    const firstRun = q1.recentProgress.reduce((n, p) => n + p.numInputRows, 0);
    expect(firstRun).toBeLessThan(2000); // stopped mid-stream
    // More events arrive while it is down (a later seed part: new timestamps, same schema).
    await produceEvents(1000, { topic: t.input, kafka: kafka(), format: 'avro', registry: registry(), seed: 4, startMs: Date.parse('2025-09-01T00:00:00Z') });
    const q2 = await runPipeline(t, dir, { availableNow: true }, 300);
    await q2.awaitTermination();
    expect(q2.recentProgress[0]!.batchId).toBe(q1.lastProgress!.batchId + 1);
    const out = await readAvro(t.output);
    const keys = out.map((o) => keyOf(o.value as { user_id: string; timestamp: number }));
    expect(new Set(keys).size).toBe(keys.length); // no duplicates
    expect(keys.length).toBe(3000); // nothing lost
  });

  it('re-runs a planned-but-uncommitted batch with the same offsets (and the at-least-once sink writes it again)', async () => {
    const t = await freshTopics('rerun');
    const dir = cp();
    await produceEvents(300, { topic: t.input, kafka: kafka(), format: 'avro', registry: registry(), seed: 5 });
    const q1 = await runPipeline(t, dir, { availableNow: true });
    await q1.awaitTermination();
    const logged = new Checkpoint(dir).offsets.get(0)!;
    // Crash after the sink wrote batch 0 but before commits/0: remove the commit.
    new Checkpoint(dir).commits.truncateFrom(0);
    await produceEvents(100, { topic: t.input, kafka: kafka(), format: 'avro', registry: registry(), seed: 6, startMs: Date.parse('2025-09-01T00:00:00Z') });
    const q2 = await runPipeline(t, dir, { availableNow: true });
    await q2.awaitTermination();
    const rerun = q2.recentProgress[0]!;
    expect(rerun.batchId).toBe(0);
    expect(rerun.sources[0]!.endOffset).toEqual(logged.offsets[0]); // exactly the logged offsets
    expect(rerun.numInputRows).toBe(300);
    expect(q2.recentProgress[1]!.numInputRows).toBe(100);
    // The Kafka sink is at-least-once (as Spark's): batch 0 is in the topic twice.
    const out = await readAvro(t.output);
    expect(out.length).toBe(300 * 2 + 100);
  });
});
