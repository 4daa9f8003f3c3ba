/**
 * The micro-batch protocol of DESIGN §3 on in-memory sources and sinks: write-ahead offsets, commits after
 * the sink, re-run of a planned-but-uncommitted batch with its logged offsets, refusals before start.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import avro from 'avsc';
import { describe, expect, it } from 'vitest';
import { CheckpointError, SluiceSession, UnsupportedOperationError, col, fromAvro, upper, current_timestamp } from '../../src/index.js';
import { Checkpoint } from '../../src/checkpoint/checkpoint.js';

function newSession(): SluiceSession {
  const s = new SluiceSession('test');
  s.out = () => {};
  s.log = () => {};
  return s;
}
const tmp = (): string => mkdtempSync(join(tmpdir(), 'sluice-mb-'));

describe('micro-batch execution', () => {
  it('writes offsets/N before the batch and commits/N after it, one batch per trigger', async () => {
    const s = newSession();
    const input = s.memoryStream('word STRING');
    const cpDir = tmp();
    const q = await input
      .toDF()
      .select(upper(col('word')).alias('w'))
      .writeStream.format('memory')
      .queryName('words')
      .option('checkpointLocation', cpDir)
      .start();
    input.addData({ word: 'a' }, { word: 'b' });
    await q.processAllAvailable();
    input.addData({ word: 'c' });
    await q.processAllAvailable();
    await q.stop();
    expect(await s.table('words').collect()).toEqual([{ w: 'A' }, { w: 'B' }, { w: 'C' }]);
    expect(readdirSync(join(cpDir, 'offsets')).sort()).toEqual(['0', '1']);
    expect(readdirSync(join(cpDir, 'commits')).sort()).toEqual(['0', '1']);
    // Memory offsets are row counts: batch 0 = (0, 2], batch 1 = (2, 3].
    expect(readFileSync(join(cpDir, 'offsets', '1'), 'utf8').split('\n')[2]).toBe('3');
    expect(readFileSync(join(cpDir, 'sources', '0', '0'), 'utf8')).toBe('v1\n0\n');
    expect(q.recentProgress.map((p) => [p.batchId, p.numInputRows, p.sink.numOutputRows, p.sources[0]!.startOffset, p.sources[0]!.endOffset])).toEqual([
      [0, 2, 2, 0, 2],
      [1, 1, 1, 2, 3],
    ]);
    expect(q.lastProgress!.sink.description).toBe('MemorySink[words]');
    expect(q.status.message).toBe('Stopped');
  });

  it('re-runs a planned but uncommitted batch with exactly the logged offsets and batch time', async () => {
    const cpDir = tmp();
    // Each run is a new process: a new session, and a memory stream holding the data that exists by then.
    const run = async (data: Array<{ n: number }>): Promise<SluiceSession> => {
      const s = newSession();
      const input = s.memoryStream('n INT');
      input.addData(data);
      const q = await input.toDF().select(col('n'), current_timestamp().alias('t')).writeStream.format('memory').queryName('n').option('checkpointLocation', cpDir).start();
      await q.processAllAvailable();
      await q.stop();
      return s;
    };
    const rows0 = await (await run([{ n: 1 }, { n: 2 }])).table('n').collect();
    // Crash simulation: the sink wrote batch 0 but commits/0 never reached the disk.
    new Checkpoint(cpDir).commits.truncateFrom(0);
    // n=3 arrived while the query was down; the re-run of batch 0 must still read only (0, 2].
    const second = await run([{ n: 1 }, { n: 2 }, { n: 3 }]);
    const rows = await second.table('n').collect();
    // Batch 0 again, same rows and same batch timestamp (current_timestamp is fixed per batch), then batch 1 with n=3.
    expect(rows.slice(0, 2)).toEqual(rows0);
    expect(rows[2]).toMatchObject({ n: 3 });
    const logged = new Checkpoint(cpDir).offsets.get(0)!;
    expect(logged.offsets).toEqual([2]);
    expect(rows0[0]!.t).toEqual(new Date(logged.metadata.batchTimestampMs));
    expect(readdirSync(join(cpDir, 'commits')).sort()).toEqual(['0', '1']);
  });

  it('startingOffsets apply once: a restarted query continues from its checkpoint', async () => {
    const cpDir = tmp();
    const data = [{ n: 1 }];
    for (const expected of [[{ n: 1 }], [{ n: 2 }]]) {
      const s = newSession();
      const input = s.memoryStream('n INT');
      input.addData(data);
      const q = await input.toDF().writeStream.format('memory').queryName('x').option('checkpointLocation', cpDir).trigger({ availableNow: true }).start();
      await q.awaitTermination();
      expect(await s.table('x').collect()).toEqual(expected);
      data.push({ n: 2 });
    }
  });

  it('refuses complete mode without aggregation, with the reason', async () => {
    const s = newSession();
    const df = s.memoryStream('n INT').toDF();
    await expect(df.writeStream.format('console').outputMode('complete').start()).rejects.toThrow(UnsupportedOperationError);
    await expect(df.writeStream.format('console').outputMode('complete').start()).rejects.toThrow(/grows without bound/);
    await expect(df.orderBy('n').writeStream.format('console').start()).rejects.toThrow(/Sorting is not supported on streaming DataFrames/);
    await expect(df.select(col('n').cast('string').alias('value')).writeStream.format('kafka').option('kafka.bootstrap.servers', '127.0.0.1:1').option('topic', 't').start()).rejects.toThrow(/needs a checkpoint/);
    await expect(df.collect()).rejects.toThrow(/a stream never ends/);
  });

  it('refuses a checkpoint written by a query with other sources, saying what changed', async () => {
    const s = newSession();
    const a = s.memoryStream('n INT');
    const cpDir = tmp();
    a.addData({ n: 1 });
    const q = await a.toDF().writeStream.format('memory').queryName('a').option('checkpointLocation', cpDir).start();
    await q.processAllAvailable();
    await q.stop();
    const b = s.memoryStream('m INT, extra STRING');
    const q2 = await b.toDF().writeStream.format('memory').queryName('b').option('checkpointLocation', cpDir).start();
    await expect(q2.awaitTermination()).rejects.toThrow(/belongs to a query with different sources[\s\S]*MemoryStream\[n\][\s\S]*MemoryStream\[m,extra\]/);
    expect(q2.exception).toBeInstanceOf(Error);
    expect((q2.exception as Error & { cause?: unknown }).cause).toBeInstanceOf(CheckpointError);
  });

  it('sends undecodable records to the dead-letter folder and keeps going; onBadRecord=fail stops', async () => {
    const schema = { type: 'record', name: 'R', fields: [{ name: 'a', type: 'int' }] };
    const type = avro.Type.forSchema(schema as avro.Schema);
    const good = type.toBuffer({ a: 7 });
    const s = newSession();
    const input = s.memoryStream('value BINARY');
    input.addData({ value: good }, { value: Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]) }, { value: good });
    const cpDir = tmp();
    const df = input.toDF().select(fromAvro(col('value'), { schema }).alias('r')).select('r.*');
    const q = await df.writeStream.format('memory').queryName('ok').option('checkpointLocation', cpDir).start();
    await q.processAllAvailable();
    await q.stop();
    expect(await s.table('ok').collect()).toEqual([{ a: 7 }, { a: 7 }]);
    expect(q.lastProgress!.numDeadLetterRows).toBe(1);
    const letters = readFileSync(join(cpDir, 'deadletter', '0.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(letters).toEqual([{ reason: 'avro.decode', message: expect.stringMatching(/Avro decoding failed/), row: { value: { base64: '////////' } } }]);

    const failing = await df.writeStream.format('memory').queryName('strict').option('checkpointLocation', tmp()).option('onBadRecord', 'fail').start();
    await expect(failing.awaitTermination()).rejects.toThrow(/stopped the query because onBadRecord=fail/);
    expect(existsSync(join(cpDir, 'commits', '0'))).toBe(true);
  });

  it('Trigger.Once runs one batch and stops', async () => {
    const s = newSession();
    const input = s.memoryStream('n INT');
    input.addData({ n: 1 }, { n: 2 });
    const q = await input.toDF().writeStream.format('memory').queryName('once').trigger({ once: true }).start();
    expect(await q.awaitTermination(10_000)).toBe(true);
    expect(q.recentProgress).toHaveLength(1);
    expect(q.isActive).toBe(false);
  });

  it('processingTime starts a batch at most once per interval, even when data is waiting', async () => {
    // Spark's ProcessingTimeExecutor: the next trigger starts at the next interval boundary after the last
    // one started. Data added right after batch 0 waits for it: batch 1 starts >= 400 ms after batch 0.
    const s = newSession();
    const input = s.memoryStream('n INT');
    input.addData({ n: 1 });
    const q = await input.toDF().writeStream.format('memory').queryName('paced').trigger({ processingTime: '400 milliseconds' }).start();
    await q.processAllAvailable();
    input.addData({ n: 2 });
    await q.processAllAvailable();
    await q.stop();
    const starts = q.recentProgress.map((p) => Date.parse(p.timestamp));
    expect(starts).toHaveLength(2);
    expect(starts[1]! - starts[0]!).toBeGreaterThanOrEqual(400);
  });
});

describe('rate source', () => {
  it('generates value 0, 1, 2, … with timestamps rowsPerSecond apart, the same rows on every read', async () => {
    const { RateSource } = await import('../../src/sources/rate.js');
    const src = new RateSource({ rowsPerSecond: '4' });
    const start = { startMs: Date.parse('2025-01-01T00:00:00Z'), value: 0 };
    const end = { startMs: start.startMs, value: 5 };
    const read = async (): Promise<unknown[]> => {
      const out: unknown[] = [];
      for await (const chunk of src.getBatch(start, end)) out.push(...chunk);
      return out;
    };
    const rows = await read();
    expect(rows).toEqual([0, 250, 500, 750, 1000].map((ms, value) => ({ timestamp: new Date(start.startMs + ms), value })));
    expect(await read()).toEqual(rows);
    // The offset only counts rows that are due; a cap (maxRows) limits a batch.
    const latest = (await src.latestOffset(start, { maxRows: 3 })) as { value: number };
    expect(latest.value).toBe(3);
    expect(() => new RateSource({ rowsPerSecond: '0' })).toThrow(/positive/);
  });
});
