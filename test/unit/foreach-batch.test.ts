/**
 * foreachBatch and foreach as Spark 3.5's (issue 10 item 4), on memory streams:
 *  - batchDF is a full batch DataFrame: written to several sinks with batchDF.write (json, memory, console;
 *    Kafka's batch write is in test/integration/foreach-batch-kafka.test.ts), persisted while it is;
 *  - batchId makes writes idempotent; a throwing function fails the query, uncommitted, and a restart
 *    re-runs that batch with the same id and rows;
 *  - the last of format()/foreachBatch()/foreach() wins, with a warning naming it;
 *  - each output mode gives the function the rows Spark's would;
 *  - foreach follows Spark's ForeachWriter contract (open/process/close).
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AnalysisError, SluiceSession, col, count, window } from '../../src/index.js';
import type { DataFrame, DataStreamWriter, OutputMode, Row } from '../../src/index.js';
import { ForeachWriterSink } from '../../src/sinks/foreach.js';
import { IntegerType, StructType } from '../../src/types/index.js';

function newSession(logs?: string[]): SluiceSession {
  const s = new SluiceSession('fb');
  s.out = () => {};
  s.log = logs ? (l) => void logs.push(l) : () => {};
  return s;
}
const tmp = (): string => mkdtempSync(join(tmpdir(), 'sluice-fb-'));
const t = (hhmm: string): Date => new Date(`2025-01-01T${hhmm}:00Z`);
const hm = (d: unknown): string => (d as Date).toISOString().slice(11, 16);
const PART = /^part-00000-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-c\d{3}\.json$/;
const parts = (dir: string): string[] => readdirSync(dir).filter((n) => !n.startsWith('_') && !n.startsWith('.')).sort();
const jsonRows = (dir: string): unknown[] =>
  parts(dir).flatMap((n) => readFileSync(join(dir, n), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as unknown));

/** Runs `df` into foreachBatch, one addData per step, and returns each call's batch id and rows. */
async function batches(
  build: (df: DataFrame) => DataFrame,
  mode: OutputMode,
  steps: Array<Array<Record<string, unknown>>>,
  schema = 'id STRING, ts TIMESTAMP',
): Promise<Array<{ batchId: number; rows: Row[] }>> {
  const s = newSession();
  const input = s.memoryStream(schema);
  const calls: Array<{ batchId: number; rows: Row[] }> = [];
  const q = await build(input.toDF())
    .writeStream.outputMode(mode)
    .option('checkpointLocation', tmp())
    .foreachBatch(async (batch, batchId) => void calls.push({ batchId, rows: await batch.collect() }))
    .start();
  for (const rows of steps) {
    input.addData(rows);
    await q.processAllAvailable();
  }
  await q.stop();
  return calls;
}

describe('foreachBatch: batchDF is a batch DataFrame', () => {
  // Why: the point of foreachBatch is writing one micro-batch to several places with batch writers (Spark's
  // "write to multiple locations" pattern: persist, write, write, unpersist). Each destination must hold
  // exactly the batch, in Spark's layout (part files + _SUCCESS), readable back by session.read.
  it('writes each batch to JSON files, a memory table and the console, persisted meanwhile', async () => {
    const s = newSession();
    const printed: string[] = [];
    s.out = (text) => void printed.push(text);
    const out = tmp();
    const input = s.memoryStream('id INT, name STRING');
    const q = await input
      .toDF()
      .writeStream.option('checkpointLocation', tmp())
      .foreachBatch(async (batch, batchId) => {
        const kept = batch.persist();
        await kept.write.mode('overwrite').json(join(out, `batch=${batchId}`)); // idempotent: a re-run replaces it
        await kept.write.format('memory').mode('append').save('copy');
        await kept.write.format('console').option('numRows', 5).save();
        kept.unpersist();
      })
      .start();
    input.addData({ id: 1, name: 'a' }, { id: 2, name: null });
    await q.processAllAvailable();
    input.addData({ id: 3, name: 'c' });
    await q.processAllAvailable();
    await q.stop();

    expect(readdirSync(out).sort()).toEqual(['batch=0', 'batch=1']);
    const b0 = join(out, 'batch=0');
    expect(parts(b0)).toHaveLength(1);
    expect(parts(b0)[0]).toMatch(PART);
    expect(readdirSync(b0)).toContain('_SUCCESS');
    expect(readdirSync(b0)).not.toContain('_temporary'); // staging is removed once the files are in place
    // Spark's JSON writer leaves null fields out.
    expect(readFileSync(join(b0, parts(b0)[0]!), 'utf8')).toBe('{"id":1,"name":"a"}\n{"id":2}\n');
    expect(jsonRows(join(out, 'batch=1'))).toEqual([{ id: 3, name: 'c' }]);
    // session.read reads the folder back (it skips _SUCCESS, as Spark does).
    expect(await s.read.schema('id INT, name STRING').json(b0).collect()).toEqual([{ id: 1, name: 'a' }, { id: 2, name: null }]);
    expect(await s.table('copy').collect()).toEqual([{ id: 1, name: 'a' }, { id: 2, name: null }, { id: 3, name: 'c' }]);
    // Spark's batch console format: the table, no "Batch: N" header.
    expect(printed[0]).toBe(['+---+----+', '| id|name|', '+---+----+', '|  1|   a|', '|  2|null|', '+---+----+', ''].join('\n'));
  });

  // Why: "not re-evaluated per action" — a derived batch DataFrame that feeds several writes must run once
  // when persisted, and persisting the batch itself must cost no run at all (its rows are in memory).
  it('persist(): a derived DataFrame runs once for several writes; the batch itself is kept without a run', async () => {
    const s = newSession();
    let evaluated = 0;
    const batch = s.createDataFrame([{ n: 1 }, { n: 2 }], 'n INT');
    const kept = batch.persist();
    expect(kept.explain()).toMatch(/^InMemoryRelation \(2 rows cached\)/); // kept at once, no plan run needed
    const derived = batch.map((r) => (evaluated++, { n: (r.n as number) * 10 }), 'n INT').persist();
    await derived.write.format('memory').save('a');
    await derived.write.format('memory').save('b');
    expect(await derived.filter(col('n').gt(10)).collect()).toEqual([{ n: 20 }]);
    expect(evaluated).toBe(2); // two rows, computed once for three actions
    const fresh = derived.unpersist();
    await fresh.collect();
    expect(evaluated).toBe(4); // unpersisted: computed again
    expect(await s.table('a').collect()).toEqual([{ n: 10 }, { n: 20 }]);

    // The cache is a snapshot: rows a memory-sink query adds to its table later are not in it.
    const input = s.memoryStream('w STRING');
    const q = await input.toDF().writeStream.format('memory').queryName('words').start();
    input.addData({ w: 'x' });
    await q.processAllAvailable();
    const snapshot = s.table('words').persist();
    input.addData({ w: 'y' });
    await q.processAllAvailable();
    await q.stop();
    expect(await snapshot.collect()).toEqual([{ w: 'x' }]);
    expect(await s.table('words').collect()).toEqual([{ w: 'x' }, { w: 'y' }]);
  });
});

describe('df.write: formats, save modes, errors', () => {
  // Why: Spark's save modes decide what happens to an existing folder; errorifexists is the default, so an
  // accidental second write fails instead of mixing data; ignore does not even run the DataFrame.
  it('json: errorifexists (default), ignore, append, overwrite; maxRecordsPerFile; an empty DataFrame', async () => {
    const s = newSession();
    const dir = join(tmp(), 'out');
    const df = s.createDataFrame([{ n: 1 }, { n: 2 }, { n: 3 }], 'n INT');
    await df.write.json(dir);
    expect(jsonRows(dir)).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
    await expect(df.write.json(dir)).rejects.toThrow(/\[PATH_ALREADY_EXISTS\] Path .*out already exists\. Set mode as "overwrite"/);
    await expect(df.write.mode('error').json(dir)).rejects.toThrow(/PATH_ALREADY_EXISTS/);

    let ran = false;
    const watched = df.map((r) => ((ran = true), r), 'n INT');
    await watched.write.mode('ignore').json(dir);
    expect(ran).toBe(false);
    expect(parts(dir)).toHaveLength(1);

    await s.createDataFrame([{ n: 4 }], 'n INT').write.mode('append').json(dir);
    expect(parts(dir)).toHaveLength(2); // a new part file, its own job id
    expect((jsonRows(dir) as Array<{ n: number }>).map((r) => r.n).sort()).toEqual([1, 2, 3, 4]);

    await df.write.mode('OVERWRITE').option('maxRecordsPerFile', 2).json(dir);
    const split = parts(dir);
    expect(split.map((n) => n.slice(-9))).toEqual(['c000.json', 'c001.json']);
    expect(new Set(split.map((n) => n.slice(11, 47))).size).toBe(1); // one job, one uuid
    expect(jsonRows(dir)).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);

    // As Spark: partition 0 always writes its file, so an empty batch leaves an empty part file.
    const empty = join(tmp(), 'empty');
    await s.createDataFrame([], 'n INT').write.json(empty);
    expect(parts(empty)).toHaveLength(1);
    expect(readFileSync(join(empty, parts(empty)[0]!), 'utf8')).toBe('');

    // A folder left by a write that crashed before moving its files holds only _temporary/: readers skip it.
    const crashed = join(tmp(), 'crashed');
    mkdirSync(join(crashed, '_temporary', 'job'), { recursive: true });
    writeFileSync(join(crashed, '_temporary', 'job', 'part-00000-x-c000.json'), '{"n":1}\n');
    await df.write.mode('append').json(crashed);
    expect(await s.read.schema('n INT').json(crashed).count()).toBe(3);
    expect(existsSync(join(crashed, '_temporary', 'job'))).toBe(true); // another job's staging is not ours to delete
  });

  // Why: Sluice's errors say what exists — unknown formats, modes and options list the accepted ones (Spark
  // ignores an unknown option, so a typo silently does nothing); what a format cannot do is refused before
  // the DataFrame runs.
  it('refuses unknown formats, modes and options, and what a format cannot do, listing what exists', async () => {
    const s = newSession();
    const df = s.createDataFrame([{ value: 'v' }], 'value STRING');
    await expect(df.write.format('parquet').save('x')).rejects.toThrow(/Unknown format "parquet" for df.write\. Sluice writes: json, kafka, console, memory/);
    await expect(df.write.format('jsn').save('x')).rejects.toThrow(/did you mean json\?/);
    await expect(df.write.save('x')).rejects.toThrow(/call \.format\(…\) before save\(\): Sluice writes json, kafka, console, memory/);
    expect(() => df.write.mode('upsert')).toThrow(/Unknown save mode "upsert"\. Accepted save modes are 'overwrite', 'append', 'ignore', 'error', 'errorifexists', 'default'/);
    await expect(df.write.format('json').option('maxRecordPerFile', 1).save(tmp())).rejects.toThrow(
      /df\.write\.format\('json'\) has no option "maxRecordPerFile" \(did you mean maxRecordsPerFile\?\)/,
    );
    await expect(df.write.format('json').save()).rejects.toThrow(/needs a path: the folder that receives the part files/);
    await expect(df.write.mode('overwrite').json('.')).rejects.toThrow(/Refusing to overwrite .*: it is the working folder or one of its parents/);
    const kafka = df.write.format('kafka').option('kafka.bootstrap.servers', '127.0.0.1:9').option('topic', 't');
    await expect(kafka.mode('overwrite').save()).rejects.toThrow(/Save mode overwrite is not allowed for kafka\. Allowed save modes are errorifexists and append/);
    await expect(df.write.format('kafka').option('topic', 't').save('some/path')).rejects.toThrow(/takes no path .*set \.option\("topic", …\) or give the rows a "topic" column/);
    // The Kafka sink's own schema check, before anything runs or connects.
    const noValue = s.createDataFrame([{ v: 'x' }], 'v STRING');
    await expect(noValue.write.format('kafka').option('kafka.bootstrap.servers', '127.0.0.1:9').option('topic', 't').save()).rejects.toThrow(
      /The Kafka sink needs a "value" column/,
    );
    await expect(df.write.format('memory').save('m')).resolves.toBeUndefined();
    await expect(df.write.format('memory').save('m')).rejects.toThrow(/Table m already exists/);
    const stream = s.memoryStream('n INT').toDF();
    expect(() => stream.write).toThrow(AnalysisError);
    expect(() => stream.write).toThrow(/use writeStream/);
  });
});

describe('foreachBatch: batch ids, failures, restarts', () => {
  // Why: Spark's contract — an exception in the function fails the query with it, the batch is not
  // committed, and a restart calls the function again with the same batchId and the same rows. Writing to a
  // folder named by batchId in overwrite mode is then idempotent: after the crash and re-run every row is
  // in the output once.
  it('a throwing function fails the query uncommitted; the restart re-runs that batch id; per-batch overwrite keeps rows once', async () => {
    const cp = tmp();
    const out = tmp();
    const seen: Array<[number, number[]]> = [];
    const boom = new Error('store unavailable');
    const run = async (failOn?: number) => {
      const s = newSession();
      const input = s.memoryStream('n INT');
      const q = await input
        .toDF()
        .writeStream.option('checkpointLocation', cp)
        .foreachBatch(async (batch, batchId) => {
          seen.push([batchId, (await batch.collect()).map((r) => r.n as number)]);
          await batch.write.mode('overwrite').json(join(out, `batch=${batchId}`));
          if (batchId === failOn) throw boom; // after the write: the crash a re-run must repair
        })
        .start();
      return { q, input };
    };
    const first = await run(1);
    first.input.addData({ n: 1 }, { n: 2 });
    await first.q.processAllAvailable();
    first.input.addData({ n: 3 });
    await expect(first.q.awaitTermination()).rejects.toThrow(/terminated with exception: store unavailable/);
    expect(first.q.exception?.cause).toBe(boom); // the function's own error
    expect(readdirSync(join(cp, 'offsets')).sort()).toEqual(['0', '1']);
    expect(readdirSync(join(cp, 'commits'))).toEqual(['0']); // batch 1 planned, not committed

    // The restarted process has the same data (a memory stream's offsets are row counts).
    const second = await run();
    second.input.addData({ n: 1 }, { n: 2 }, { n: 3 });
    await second.q.processAllAvailable();
    await second.q.stop();
    expect(seen).toEqual([
      [0, [1, 2]],
      [1, [3]],
      [1, [3]], // the same batch id and rows again
    ]);
    expect(readdirSync(join(cp, 'commits')).sort()).toEqual(['0', '1']);
    const all = readdirSync(out).flatMap((d) => jsonRows(join(out, d)) as Array<{ n: number }>);
    expect(all.map((r) => r.n).sort()).toEqual([1, 2, 3]);
  });

  // Why: Spark's DataStreamWriter keeps one sink choice and the last of format()/foreachBatch()/foreach()
  // sets it — silently; Sluice says which one won, since options set up for the loser are then ignored.
  it('the last of format(), foreachBatch() and foreach() wins, with a warning naming it', async () => {
    const run = async (build: (w: DataStreamWriter, calls: string[]) => unknown) => {
      const logs: string[] = [];
      const s = newSession(logs);
      const input = s.memoryStream('n INT');
      const calls: string[] = [];
      const w = input.toDF().writeStream.queryName('sink').option('checkpointLocation', tmp());
      build(w, calls);
      const q = await w.start();
      input.addData({ n: 1 });
      await q.processAllAvailable();
      await q.stop();
      const memory = s.catalog.tableExists('sink') ? (await s.table('sink').collect()).length : 0;
      return { calls, memory, warnings: logs.filter((l) => l.startsWith('WARN writeStream')) };
    };
    const a = await run((w, calls) => w.format('memory').foreachBatch(() => void calls.push('batch')));
    expect(a).toMatchObject({ calls: ['batch'], memory: 0 });
    expect(a.warnings).toEqual([
      "WARN writeStream: format('memory') was set, then replaced: the last of format(), foreachBatch() and foreach() wins, so this query writes with foreachBatch() (as Spark does). Remove the other call.",
    ]);
    const b = await run((w, calls) => w.foreachBatch(() => void calls.push('batch')).format('memory'));
    expect(b).toMatchObject({ calls: [], memory: 1 });
    expect(b.warnings[0]).toMatch(/foreachBatch\(\) was set, then replaced: .* writes with format\('memory'\)/);
    const c = await run((w, calls) => w.foreach(() => void calls.push('row')).foreachBatch(() => void calls.push('batch')).format('console').foreach(() => void calls.push('row2')));
    expect(c.calls).toEqual(['row2']);
    expect(c.warnings[0]).toMatch(/foreachBatch\(\) and format\('console'\) were set, then replaced: .* writes with foreach\(\)/);
    const d = await run((w, calls) => w.foreachBatch(() => void calls.push('batch')));
    expect(d.warnings).toEqual([]); // one kind of call: nothing to say
    const e = await run((w) => w.format('console').format('memory'));
    expect(e).toMatchObject({ memory: 1, warnings: [] }); // two formats: an ordinary re-set, as any option
    const s = newSession();
    await expect(s.memoryStream('n INT').toDF().writeStream.format('foreachBatch').option('checkpointLocation', tmp()).start()).rejects.toThrow(
      /format\("foreachBatch"\) needs the function: call \.foreachBatch/,
    );
  });
});

describe('foreachBatch: output modes', () => {
  const tumbling = (df: DataFrame): DataFrame => df.withWatermark('ts', '10 minutes').groupBy(window(col('ts'), '10 minutes')).agg(count('*').alias('n'));
  const show = (r: Row): string => `${hm((r.window as { start: Date }).start)}-${hm((r.window as { end: Date }).end)}:${String(r.n)}`;
  const steps = [
    [{ id: 'a', ts: t('12:01') }, { id: 'b', ts: t('12:05') }],
    [{ id: 'a', ts: t('12:21') }],
  ];

  // Why: foreachBatch gets what the output mode emits, as any sink, including the empty no-data batches Spark
  // runs when the watermark moves. Append: a window once, when the watermark passes its end.
  it('append: a window arrives once, in the batch whose watermark passes its end', async () => {
    const calls = await batches(tumbling, 'append', steps);
    // batch 0 (watermark 0): 12:00-12:10 open, nothing; watermark becomes 12:05-10m = 11:55
    // batch 1 (no-data, watermark 11:55): 12:10 > 11:55, nothing
    // batch 2 (12:21 arrives, watermark 11:55): nothing; watermark becomes 12:11
    // batch 3 (no-data, watermark 12:11): 12:00-12:10 closes (12:10 <= 12:11) with its 2 rows
    expect(calls.map((c) => [c.batchId, c.rows.map(show)])).toEqual([
      [0, []],
      [1, []],
      [2, []],
      [3, ['12:00-12:10:2']],
    ]);
  });

  // Why: update gives the groups that changed in the batch (and nothing for a batch that only evicts).
  it('update: the windows and groups changed by the batch', async () => {
    const calls = await batches(tumbling, 'update', steps);
    // batch 0: 12:00-12:10 counted 2; batch 1 (no-data, wm 11:55): nothing changed;
    // batch 2: 12:20-12:30 counted 1 (12:00-12:10 unchanged, not emitted); batch 3 (no-data, wm 12:11): evicts 12:00-12:10, emits nothing
    expect(calls.map((c) => [c.batchId, c.rows.map(show)])).toEqual([
      [0, ['12:00-12:10:2']],
      [1, []],
      [2, ['12:20-12:30:1']],
      [3, []],
    ]);
    const plain = await batches((df) => df.groupBy('id').count(), 'update', [
      [{ id: 'a' }, { id: 'a' }, { id: 'b' }],
      [{ id: 'a' }, { id: 'c' }],
    ]);
    // batch 1: a goes 2 → 3 and c is new; b did not change, so it is not in the batch
    expect(plain.map((c) => [c.batchId, c.rows.map((r) => `${String(r.id)}:${String(r.count)}`).sort()])).toEqual([
      [0, ['a:2', 'b:1']],
      [1, ['a:3', 'c:1']],
    ]);
  });

  // Why: complete gives every group each batch (and runs no no-data batches: nothing is ever evicted).
  it('complete: every group, every batch', async () => {
    const calls = await batches(tumbling, 'complete', steps);
    expect(calls.map((c) => [c.batchId, c.rows.map(show).sort()])).toEqual([
      [0, ['12:00-12:10:2']],
      [1, ['12:00-12:10:2', '12:20-12:30:1']],
    ]);
    const plain = await batches((df) => df.groupBy('id').count(), 'complete', [
      [{ id: 'a' }, { id: 'a' }, { id: 'b' }],
      [{ id: 'a' }, { id: 'c' }],
    ]);
    expect(plain.map((c) => [c.batchId, c.rows.map((r) => `${String(r.id)}:${String(r.count)}`).sort()])).toEqual([
      [0, ['a:2', 'b:1']],
      [1, ['a:3', 'b:1', 'c:1']],
    ]);
  });
});

describe('foreach: Spark ForeachWriter contract', () => {
  // Why: the order of calls is the contract a writer relies on: open(partition 0, epoch = batch id) before the
  // rows, close(null) after them, for every batch — an empty no-data batch too —, and open → false skips the
  // rows but still closes (e.g. an epoch a store already holds). Async methods are awaited in order.
  it('open(0, batchId) → process(row)… → close(null) per batch; false skips the rows; async allowed', async () => {
    const s = newSession();
    const input = s.memoryStream('n INT');
    const events: string[] = [];
    const q = await input
      .toDF()
      .writeStream.option('checkpointLocation', tmp())
      .foreach({
        async open(partitionId, epochId) {
          await new Promise((r) => setTimeout(r, 1));
          events.push(`open(${partitionId},${epochId})`);
          return epochId !== 1; // epoch 1 "already written": skipped
        },
        async process(row) {
          await new Promise((r) => setTimeout(r, 1));
          events.push(`process(${String(row.n)})`);
        },
        close(error) {
          events.push(`close(${String(error)})`);
        },
      })
      .start();
    input.addData({ n: 1 }, { n: 2 });
    await q.processAllAvailable();
    input.addData({ n: 3 });
    await q.processAllAvailable();
    input.addData({ n: 4 });
    await q.processAllAvailable();
    await q.stop();
    expect(events).toEqual([
      'open(0,0)', 'process(1)', 'process(2)', 'close(null)',
      'open(0,1)', 'close(null)',
      'open(0,2)', 'process(4)', 'close(null)',
    ]);
    expect(q.lastProgress!.sink.description).toBe('ForeachSink');

    // PySpark's function form: the function is process.
    const seen: number[] = [];
    const s2 = newSession();
    const in2 = s2.memoryStream('n INT');
    const q2 = await in2.toDF().writeStream.option('checkpointLocation', tmp()).foreach((row) => void seen.push(row.n as number)).start();
    in2.addData({ n: 7 }, { n: 8 });
    await q2.processAllAvailable();
    await q2.stop();
    expect(seen).toEqual([7, 8]);
  });

  // Why: an exception in process must reach close (to roll back) and fail the query with the writer's error;
  // the batch stays uncommitted so a restart writes it again with the same epoch id.
  it('an exception in process calls close(error) and fails the query, batch uncommitted', async () => {
    const s = newSession();
    const cp = tmp();
    const input = s.memoryStream('n INT');
    const events: string[] = [];
    const bad = new Error('row 2 refused');
    const q = await input
      .toDF()
      .writeStream.option('checkpointLocation', cp)
      .foreach({
        open: (_p, epoch) => (events.push(`open(${epoch})`), true),
        process: (row) => {
          if (row.n === 2) throw bad;
          events.push(`process(${String(row.n)})`);
        },
        close: (error) => void events.push(`close(${error?.message ?? 'null'})`),
      })
      .start();
    input.addData({ n: 1 }, { n: 2 }, { n: 3 });
    await expect(q.awaitTermination()).rejects.toThrow(/row 2 refused/);
    expect(q.exception?.cause).toBe(bad);
    expect(events).toEqual(['open(0)', 'process(1)', 'close(row 2 refused)']);
    expect(existsSync(join(cp, 'commits', '0'))).toBe(false);

    // open must say true or false: a missing return would otherwise skip rows silently (PySpark reads it as false).
    const s2 = newSession();
    const in2 = s2.memoryStream('n INT');
    const closed: Array<string | null> = [];
    const q2 = await in2
      .toDF()
      .writeStream.option('checkpointLocation', tmp())
      .foreach({ open: (() => undefined) as unknown as () => boolean, process: () => {}, close: (e) => void closed.push(e?.message ?? null) })
      .start();
    in2.addData({ n: 1 });
    await expect(q2.awaitTermination()).rejects.toThrow(/ForeachWriter\.open\(0, 0\) returned undefined: it must return true .* or false/);
    expect(closed).toHaveLength(1); // open had run, so close was owed
  });

  // Why: Spark's abort — a batch that fails after open (the query stops mid-batch) still closes the writer,
  // with an error, so it can roll back; a batch already closed is not closed twice.
  it('a batch left open when the query stops is closed with an error (abort)', async () => {
    const closes: Array<string | null> = [];
    const sink = new ForeachWriterSink({ open: () => true, process: () => {}, close: (e) => void closes.push(e?.message ?? null) }, () => {});
    const schema = new StructType().add('n', IntegerType);
    const done = sink.openBatch(0, schema, 'append');
    await done.write([{ n: 1 }]);
    await done.close();
    const open = sink.openBatch(1, schema, 'append');
    await open.write([{ n: 2 }]);
    await sink.stop();
    await sink.stop();
    expect(closes).toEqual([null, 'Foreach writer has been aborted: batch 1 failed before all its rows were written.']);
  });
});
