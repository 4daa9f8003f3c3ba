/**
 * Tasks on a real broker and registry: the demo pipeline (Avro in via the registry → filter → derived
 * columns → Avro out, dead letters) run once with its per-row steps in the query's thread
 * (`sluice.sql.streaming.tasks=0`) and once in two worker threads (`=2`, every chunk of any size) writes the
 * same records to every output partition, in the same order, and the same dead letters.
 *
 * 30,000 events in batches of at most 12,000 (maxOffsetsPerTrigger), so a batch is read as chunks of up to
 * 10,000 records per partition and the workers get several chunks per batch; 2% of the records are not
 * framed Avro (bad magic byte, cut short, unknown schema id) and must reach the dead-letter topic.
 */
import { describe, expect, it } from 'vitest';
import { produceEvents } from '../../src/demo/events.js';
import { demoPipeline } from '../../src/demo/pipeline.js';
import { readTopic, type KafkaRecord } from '../../src/kafka/client.js';
import { bootstrapServers, freshTopics, kafka, newCheckpoint, quietSession, registry } from './helpers.js';

/** A topic's records per partition, in offset order: key, the Avro payload without the schema id, and for dead letters the reason header. */
function byPartition(records: KafkaRecord[], stripHeader: boolean): Record<number, string[]> {
  const out: Record<number, string[]> = {};
  for (const r of [...records].sort((a, b) => a.partition - b.partition || a.offset - b.offset)) {
    const value = r.value == null ? 'null' : (stripHeader ? r.value.subarray(5) : r.value).toString('base64');
    const reason = r.headers?.find((h) => Object.keys(h)[0] === 'sluice.reason');
    (out[r.partition] ??= []).push(`${r.key?.toString('base64') ?? 'null'}|${value}${reason ? `|${String(Object.values(reason)[0])}` : ''}`);
  }
  return out;
}

async function run(tasks: number, label: string, input: string): Promise<{ output: Record<number, string[]>; dlq: Record<number, string[]>; tasksLine: string }> {
  const t = await freshTopics(label);
  const s = quietSession(label);
  s.conf.set('sluice.sql.streaming.tasks', String(tasks));
  s.conf.set('sluice.sql.streaming.tasks.minRows', '0');
  const q = await demoPipeline(s, {
    bootstrapServers: bootstrapServers(),
    registry: registry(),
    inputTopic: input,
    outputTopic: t.output,
    deadLetterTopic: t.dlq,
    checkpointLocation: newCheckpoint(),
    trigger: { availableNow: true },
    maxOffsetsPerTrigger: 12_000,
  }).start();
  await q.awaitTermination();
  const tasksLine = q.explain().split('\n').find((l) => l.startsWith('tasks:'))!;
  return { output: byPartition(await readTopic(kafka(), t.output), true), dlq: byPartition(await readTopic(kafka(), t.dlq), false), tasksLine };
}

describe('tasks on Kafka', () => {
  it('the demo pipeline writes the same records, partition by partition in the same order, with and without worker threads', async () => {
    const src = await freshTopics('tasks-src');
    const N = 30_000;
    await produceEvents(N, { topic: src.input, kafka: kafka(), format: 'avro', registry: registry(), seed: 12, malformedFraction: 0.02 });

    const serial = await run(0, 'tasks-serial', src.input);
    const parallel = await run(2, 'tasks-parallel', src.input);

    expect(serial.tasksLine).toMatch(/in the query's thread/);
    // Workers start with the first chunk, so the first batch's chunks may run in the query's thread; later ones not.
    expect(Number(/(\d+) in workers/.exec(parallel.tasksLine)?.[1])).toBeGreaterThan(0);

    const count = (p: Record<number, string[]>): number => Object.values(p).reduce((n, l) => n + l.length, 0);
    const bad = count(serial.dlq);
    expect(bad).toBeGreaterThan(0.01 * N);
    expect(count(serial.output) + bad).toBe(N); // the generator makes no nulls: nothing is filtered
    expect(parallel.output).toEqual(serial.output); // same records, same order, in every output partition
    // Dead letters have no key, so librdkafka's partitioner spreads them at random: the same letters, any partition.
    const letters = (p: Record<number, string[]>): string[] => Object.values(p).flat().sort();
    expect(letters(parallel.dlq)).toEqual(letters(serial.dlq));
  });
});
