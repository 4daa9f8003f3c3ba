/**
 * A windowed Avro pipeline end to end on the real stack: Avro in via the registry → watermark → count per
 * (1-minute window, event type) in append mode → Avro out; rows behind the watermark go to a late-events
 * topic. The expected output is computed independently from the generated events.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SluiceSession, col, count, fromAvro, struct, toAvro, window } from '../../src/index.js';
import { produceEvents } from '../../src/demo/events.js';
import { readTopic } from '../../src/kafka/client.js';
import { bootstrapServers, expectedEvents, freshTopics, headersOf, kafka, readAvro, registry } from './helpers.js';

const START = Date.parse('2025-08-22T17:00:00Z');

async function run(t: { input: string; output: string; dlq: string }, checkpoint: string) {
  const s = new SluiceSession('win');
  s.log = () => {};
  const reg = registry();
  const q = await s.readStream.format('kafka').option('kafka.bootstrap.servers', bootstrapServers()).option('subscribe', t.input).option('startingOffsets', 'earliest')
    .load()
    .select(fromAvro(col('value'), { registry: reg, subject: `${t.input}-value` }).alias('e'))
    .select('e.*')
    .withWatermark('timestamp', '2 minutes')
    .groupBy(window(col('timestamp'), '1 minute'), col('event_type'))
    .agg(count('*').alias('events'))
    .select(toAvro(struct(col('window.start').alias('window_start'), col('window.end').alias('window_end'), 'event_type', 'events'), { registry: reg, subject: `${t.output}-value` }).alias('value'))
    .writeStream.format('kafka')
    .option('kafka.bootstrap.servers', bootstrapServers())
    .option('topic', t.output)
    .option('lateEvents.topic', t.dlq)
    .option('checkpointLocation', checkpoint)
    .outputMode('append')
    .trigger({ availableNow: true })
    .start();
  await q.awaitTermination();
  return q;
}

describe('windowed aggregation over Kafka with Avro and the registry', () => {
  it('emits each final window once with exact counts, and routes late rows to the late-events topic', async () => {
    const t = await freshTopics('win', 3);
    const cp = join(mkdtempSync(join(tmpdir(), 'sluice-win-')), 'cp');
    await produceEvents(600, { topic: t.input, kafka: kafka(), format: 'avro', registry: registry(), seed: 31, startMs: START });
    const q1 = await run(t, cp);
    // Events are 1 s apart from 17:00:00 to 17:09:59 → the watermark after batch 0 is 17:09:59 − 2 min = 17:07:59.
    // The no-data batch that follows emits the windows that end by then: 17:00-17:01 … 17:06-17:07.
    expect(q1.recentProgress.map((p) => [p.batchId, p.numInputRows, p.eventTime.watermark])).toEqual([
      [0, 600, '1970-01-01T00:00:00.000Z'],
      [1, 0, '2025-08-22T17:07:59.000Z'],
    ]);
    const expected = new Map<string, number>();
    for (const e of expectedEvents(600, { seed: 31, startMs: START })) {
      const start = Math.floor(e.timestamp / 60_000) * 60_000;
      if (start + 60_000 > Date.parse('2025-08-22T17:07:59Z')) continue; // not final yet
      const k = `${new Date(start).toISOString()}|${e.event_type}`;
      expected.set(k, (expected.get(k) ?? 0) + 1);
    }
    const out = await readAvro(t.output);
    const got = new Map(out.map((o) => [`${new Date(Number(o.value.window_start)).toISOString()}|${String(o.value.event_type)}`, Number(o.value.events)]));
    expect(out.length).toBe(expected.size); // each window and type exactly once
    expect(got).toEqual(expected);
    expect(out.every((o) => Number(o.value.window_end) - Number(o.value.window_start) === 60_000)).toBe(true);

    // Three events from 17:03 arrive now: their window ended at 17:04, behind the watermark 17:07:59.
    await produceEvents(3, { topic: t.input, kafka: kafka(), format: 'avro', registry: registry(), seed: 32, startMs: Date.parse('2025-08-22T17:03:00Z') });
    const q2 = await run(t, cp);
    expect(q2.recentProgress.map((p) => [p.batchId, p.numInputRows, p.stateOperators[0]!.numRowsDroppedByWatermark])).toEqual([[2, 3, 3]]);
    const late = await readTopic(kafka(), t.dlq);
    expect(late).toHaveLength(3);
    expect(late.map((r) => headersOf(r)['sluice.late.watermark'])).toEqual(Array(3).fill('2025-08-22T17:07:59.000Z'));
    expect(late.map((r) => JSON.parse(r.value!.toString()).timestamp).sort()).toEqual(['2025-08-22T17:03:00.000Z', '2025-08-22T17:03:01.000Z', '2025-08-22T17:03:02.000Z']);
    expect((await readAvro(t.output)).length).toBe(expected.size); // nothing re-emitted
  });
});
