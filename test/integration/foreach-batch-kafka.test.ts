/**
 * foreachBatch on the real stack (issue 10 item 4): a Kafka stream whose every micro-batch is persisted and
 * written twice with batch writers — to a Kafka topic (batchDF.write.format('kafka'), the streaming Kafka
 * sink's code) and to JSON files (one folder per batch id, overwritten: idempotent on a re-run). Both
 * destinations must hold exactly the input: every record once, none missing.
 */
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readTopic } from '../../src/kafka/client.js';
import { bootstrapServers, freshTopics, kafka, newCheckpoint, produceRecords, quietSession, readKafka } from './helpers.js';

describe('foreachBatch writing each batch to Kafka and JSON files', () => {
  // Why: the multi-sink pattern of Spark's guide (persist, write, write, unpersist) is what foreachBatch is for;
  // on a real broker the Kafka write must be acknowledged before the batch commits, and the two copies must
  // agree with the input record for record across several batches.
  it('every input record is in the output topic and in the JSON files exactly once', async () => {
    const t = await freshTopics('foreach-batch', 3);
    const N = 300;
    const input = Array.from({ length: N }, (_, i) => ({ key: `k${i}`, value: JSON.stringify({ n: i }) }));
    await produceRecords(input.map((r, i) => ({ topic: t.input, partition: i % 3, key: Buffer.from(r.key), value: Buffer.from(r.value) })));

    const logs: string[] = [];
    const s = quietSession('foreach-batch', logs);
    const out = mkdtempSync(join(tmpdir(), 'sluice-it-fb-'));
    const calls: Array<{ batchId: number; rows: number; cached: boolean }> = [];
    const q = await readKafka(s, t.input, { maxOffsetsPerTrigger: 100 })
      .selectExpr('CAST(key AS STRING) AS key', 'CAST(value AS STRING) AS value', 'partition', '`offset`')
      .writeStream.option('checkpointLocation', newCheckpoint())
      .trigger({ availableNow: true })
      .foreachBatch(async (batch, batchId) => {
        const kept = batch.persist();
        // Only key and value go to Kafka: a "partition" column would pick the output partition.
        await kept.select('key', 'value').write.format('kafka').option('kafka.bootstrap.servers', bootstrapServers()).option('topic', t.output).save();
        await kept.write.mode('overwrite').json(join(out, `batchId=${batchId}`));
        calls.push({ batchId, rows: await kept.count(), cached: /rows cached/.test(kept.explain()) });
        kept.unpersist();
      })
      .start();
    await q.awaitTermination();
    expect(q.exception).toBeNull();

    // Several batches (maxOffsetsPerTrigger), ids in order, each persisted while written.
    expect(calls.length).toBeGreaterThanOrEqual(3);
    expect(calls.map((c) => c.batchId)).toEqual(calls.map((_, i) => i));
    expect(calls.every((c) => c.cached)).toBe(true);
    expect(calls.reduce((n, c) => n + c.rows, 0)).toBe(N);

    const expected = input.map((r) => `${r.key}=${r.value}`).sort();
    const written = await readTopic(kafka(), t.output);
    expect(written.map((r) => `${r.key!.toString()}=${r.value!.toString()}`).sort()).toEqual(expected);

    const folders = readdirSync(out).sort();
    expect(folders).toEqual(calls.map((c) => `batchId=${c.batchId}`).sort());
    const rows = folders.flatMap((f) =>
      readdirSync(join(out, f))
        .filter((n) => n.startsWith('part-'))
        .flatMap((n) => readFileSync(join(out, f, n), 'utf8').split('\n').filter(Boolean))
        .map((l) => JSON.parse(l) as { key: string; value: string; partition: number; offset: number }),
    );
    expect(rows.map((r) => `${r.key}=${r.value}`).sort()).toEqual(expected);
    expect(new Set(rows.map((r) => `${r.partition}@${r.offset}`)).size).toBe(N); // each input record once
    expect(logs.filter((l) => l.startsWith('WARN') || l.startsWith('ERROR'))).toEqual([]);
  });
});

