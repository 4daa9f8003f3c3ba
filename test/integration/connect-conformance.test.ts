/**
 * One DataFrame program, two backends: Sluice in this process, and Apache Spark 3.5.9 through Spark Connect
 * (a real server started for this file by `sparkConnectForTests`, local[2], on 127.0.0.1). Each case builds its query
 * with the same function for both, over the same input topics, feeds the input in steps and waits for both
 * queries after each step (processAllAvailable, so both see the same batch boundaries), then compares what
 * each wrote to its own output topic, record by record (as a multiset: Kafka partitioning and the order of
 * rows within a batch are not part of the semantics). A difference is a bug in one of them — Spark is the
 * reference unless docs/decisions.md says otherwise.
 *
 * Besides agreeing with each other, the outputs are checked against what was worked out by hand for the
 * windowed cases (reasoning next to them), so a case where both engines were wrong the same way still fails.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { DataFrame } from '../../src/api/dataframe.js';
import type { DataStreamWriter } from '../../src/api/writer.js';
import { ConnectUnsupportedError } from '../../src/connect/base.js';
import { demoPipeline } from '../../src/demo/pipeline.js';
import { produceEvents } from '../../src/demo/events.js';
import avro from 'avsc';
import { SluiceSession, col, count, expr, fromAvro, from_json, max, session_window, struct, sum, to_json, window, type StreamingQuery } from '../../src/index.js';
import { readTopic } from '../../src/kafka/client.js';
import { registryClient } from '../../src/serde/registry.js';
import { frame } from '../../src/serde/wireformat.js';
import { bootstrapServers, freshTopics, kafka, produceRecords, registry, sparkConnectForTests, startPipeline } from './helpers.js';

const sparkConnectUrl = sparkConnectForTests();

const logs: string[] = [];
function session(remote: boolean): SluiceSession {
  const s = remote ? SluiceSession.builder().remote(sparkConnectUrl()).getOrCreate() : new SluiceSession('conformance');
  s.out = () => {};
  s.log = (l) => void logs.push(l);
  return s;
}

const checkpoint = (): string => join(mkdtempSync(join(tmpdir(), 'sluice-conformance-')), 'cp');

/** A record as compared across backends: key and value bytes (Avro keeps its 5-byte header: the schema id must agree too). */
const recordText = (r: { key: Buffer | null; value: Buffer | null }, avro = false): string =>
  `${r.key?.toString('utf8') ?? 'null'}|${r.value == null ? 'null' : avro ? r.value.toString('hex') : r.value.toString('utf8')}`;

async function outputOf(topic: string, avro = false): Promise<string[]> {
  return (await readTopic(kafka(), topic)).map((r) => recordText(r, avro)).sort();
}

/** JSON events {id, user, ts} to a topic; ts as seconds after 2026-01-01T00:00:00Z. */
const T0 = Date.parse('2026-01-01T00:00:00Z');
async function sendJson(topic: string, events: Array<{ id: string; user: string; at: number }>): Promise<void> {
  await produceRecords(events.map((e) => ({ topic, value: Buffer.from(JSON.stringify({ id: e.id, user: e.user, ts: new Date(T0 + e.at * 1000).toISOString() })) })));
}

function jsonEvents(s: SluiceSession, topic: string): DataFrame {
  return s.readStream
    .format('kafka')
    .option('kafka.bootstrap.servers', bootstrapServers())
    .option('subscribe', topic)
    .option('startingOffsets', 'earliest')
    .load()
    .select(from_json(col('value').cast('string'), 'id STRING, user STRING, ts TIMESTAMP').alias('e'))
    .select('e.*');
}

const toKafka = (df: DataFrame, topic: string): DataStreamWriter =>
  df.writeStream.format('kafka').option('kafka.bootstrap.servers', bootstrapServers()).option('topic', topic).option('checkpointLocation', checkpoint());

/**
 * Runs `build` on both backends (each writing to its own output topic) through `steps`: before each step's
 * wait, the step's input is produced once (both queries read the same topics). Returns both outputs.
 *
 * Both engines must cut the same batches, or update and complete mode write different (equally right) rows.
 * So the stepwise cases read one-partition topics, and a step's rows for a topic are produced in one call:
 * they go in one record batch, which a reader sees all at once — a running query cannot take half of a step.
 */
async function onBoth(build: (s: SluiceSession, output: string) => DataStreamWriter, steps: Array<() => Promise<void>>, avro = false) {
  const local = await freshTopics('conf-local', 2);
  const remote = await freshTopics('conf-remote', 2);
  const queries: StreamingQuery[] = [];
  try {
    queries.push(await build(session(false), local.output).start());
    queries.push(await build(session(true), remote.output).start());
    for (const step of steps) {
      await step();
      for (const q of queries) await q.processAllAvailable();
    }
  } finally {
    for (const q of queries) await q.stop();
  }
  for (const q of queries) expect(q.exception).toBeNull();
  return { local: await outputOf(local.output, avro), remote: await outputOf(remote.output, avro), queries };
}

/**
 * The windowed input, in three steps, worked out by hand for 10-second windows and a 5-second watermark delay
 * (watermark = max event time seen − 5 s, applied from the batch after the one that saw it):
 *   step 1: a@1s, b@4s, a@12s      → windows [0,10): 2, [10,20): 1; watermark then 12 − 5 = 7 s
 *   step 2: c@26s                  → [20,30): 1; watermark 21 s: [0,10) and [10,20) end ≤ 21 → final
 *   step 3: d@5s (late: its window [0,10) ended at 10 ≤ 21, dropped), e@27s → [20,30): 2; watermark 22 s
 */
const WINDOW_STEPS = (topic: string): Array<() => Promise<void>> => [
  () => sendJson(topic, [{ id: '1', user: 'a', at: 1 }, { id: '2', user: 'b', at: 4 }, { id: '3', user: 'a', at: 12 }]),
  () => sendJson(topic, [{ id: '4', user: 'c', at: 26 }]),
  () => sendJson(topic, [{ id: '5', user: 'd', at: 5 }, { id: '6', user: 'e', at: 27 }]),
];
const windowed = (input: string, mode: 'append' | 'update' | 'complete') => (s: SluiceSession, output: string) =>
  toKafka(
    jsonEvents(s, input)
      .withWatermark('ts', '5 seconds')
      .groupBy(window(col('ts'), '10 seconds'))
      .agg(count('*').alias('n'))
      .select(to_json(struct(col('window.start').alias('start'), col('n'))).alias('value')),
    output,
  ).outputMode(mode);
const win = (startSec: number, n: number): string => `null|{"start":"${new Date(T0 + startSec * 1000).toISOString()}","n":${n}}`;

describe('the same query on Sluice and on Spark Connect', () => {
  it('the demo pipeline (Avro in and out through the registry) writes the same records, header and body', async () => {
    const src = await freshTopics('conf-demo', 3);
    await produceEvents(400, { topic: src.input, kafka: kafka(), format: 'avro', registry: registry(), seed: 5 });
    const build = (s: SluiceSession, output: string): DataStreamWriter =>
      demoPipeline(s, {
        bootstrapServers: bootstrapServers(),
        registry: registry(),
        inputTopic: src.input,
        outputTopic: output,
        deadLetterTopic: src.dlq,
        checkpointLocation: checkpoint(),
        trigger: { processingTime: '0 seconds' },
      });
    // Both outputs register the same derived schema under their own subject: compare bodies, and the ids separately.
    const { local, remote } = await onBoth(build, [async () => {}], true);
    expect(local).toHaveLength(400);
    const body = (hex: string): string => hex.replace(/\|00([0-9a-f]{8})/, '|');
    expect(remote.map(body).sort()).toEqual(local.map(body).sort());
    // Spark was told to warn about what it does not do (dead letters): said once per run, not silently dropped.
    expect(logs.some((l) => l.includes('Spark does not know deadLetter.topic'))).toBe(true);
  });

  it('a windowed count in append mode: only final windows, once', async () => {
    const t = await freshTopics('conf-win-append', 1);
    const { local, remote, queries } = await onBoth(windowed(t.input, 'append'), WINDOW_STEPS(t.input));
    expect(local).toEqual([win(0, 2), win(10, 1)].sort());
    expect(remote).toEqual(local);
    // The remote handle's explain() is Spark's plan for the query once batches ran: its state store operators.
    expect(queries[1]!.explain()).toMatch(/StateStoreSave/);
    expect(queries[1]!.lastProgress?.eventTime.watermark).toBe(new Date(T0 + 22_000).toISOString());
    expect(queries[0]!.lastProgress?.eventTime.watermark).toBe(new Date(T0 + 22_000).toISOString());
  });

  it('a windowed count in update mode: each batch’s changed windows', async () => {
    const t = await freshTopics('conf-win-update', 1);
    const { local, remote } = await onBoth(windowed(t.input, 'update'), WINDOW_STEPS(t.input));
    // batch of step 1: [0,10)=2, [10,20)=1; step 2: [20,30)=1; step 3: [20,30)=2 (d is late and dropped).
    expect(local).toEqual([win(0, 2), win(10, 1), win(20, 1), win(20, 2)].sort());
    expect(remote).toEqual(local);
  });

  it('a windowed count in complete mode: the whole table after every batch with data', async () => {
    const t = await freshTopics('conf-win-complete', 1);
    const { local, remote } = await onBoth(windowed(t.input, 'complete'), WINDOW_STEPS(t.input));
    // Complete mode keeps every window, and the watermark drops nothing: Spark's guide — "Complete mode requires
    // all aggregate data to be preserved, and hence cannot use watermarking to drop intermediate state" — and
    // late rows are not filtered either, so d@5s counts in [0,10) (Spark 3.5 gave the same when this was written).
    // Step 1 → 2 rows, step 2 → 3 rows, step 3 → 3 rows with [0,10)=3 and [20,30)=2.
    expect(local).toEqual([win(0, 2), win(10, 1), win(0, 2), win(10, 1), win(20, 1), win(0, 3), win(10, 1), win(20, 2)].sort());
    expect(remote).toEqual(local);
  });

  it('deduplication: dropDuplicates with the event time, and dropDuplicatesWithinWatermark', async () => {
    // Each run reads its own input topic, fed the same three steps.
    const stepsFor = (t: { input: string }) => [
      () => sendJson(t.input, [{ id: '1', user: 'a', at: 1 }, { id: '1', user: 'a', at: 1 }, { id: '2', user: 'b', at: 2 }]),
      () => sendJson(t.input, [{ id: '1', user: 'a', at: 1 }, { id: '2', user: 'x', at: 3 }, { id: '3', user: 'c', at: 30 }]),
      () => sendJson(t.input, [{ id: '2', user: 'y', at: 4 }, { id: '3', user: 'c', at: 30 }]),
    ];
    const t = await freshTopics('conf-dedupe', 1);
    const steps = stepsFor(t);
    const asJson = (df: DataFrame): DataFrame => df.select(to_json(struct('id', 'user', 'ts')).alias('value'));
    const exact = await onBoth((s, out) => toKafka(asJson(jsonEvents(s, t.input).withWatermark('ts', '10 seconds').dropDuplicates(['id', 'ts'])), out), steps);
    // Watermark = max ts − 10 s, from the next batch. Step 1: (1,1 s) once, (2,2 s); watermark stays 0 (2 − 10 < 0).
    // Step 2: (1,1 s) is in state → dropped; (2,3 s) and (3,30 s) are new; watermark 20 s, and state older than it
    // is evicted after the batch. Step 3: (2,4 s) is behind the watermark → dropped as late; (3,30 s) is in state.
    const row = (id: string, user: string, at: number): string => `null|{"id":"${id}","user":"${user}","ts":"${new Date(T0 + at * 1000).toISOString()}"}`;
    expect(exact.local).toEqual([row('1', 'a', 1), row('2', 'b', 2), row('2', 'x', 3), row('3', 'c', 30)].sort());
    expect(exact.remote).toEqual(exact.local);
    const t2 = await freshTopics('conf-dedupe-within', 1);
    const within = await onBoth((s, out) => toKafka(asJson(jsonEvents(s, t2.input).withWatermark('ts', '10 seconds').dropDuplicatesWithinWatermark(['id'])), out), stepsFor(t2));
    // The first row of each id; an id seen again while its first row is within the delay is dropped (1 and 2
    // in step 2); 2 at 4 s in step 3 is behind the watermark (20 s) and dropped as late.
    expect(within.local).toEqual([row('1', 'a', 1), row('2', 'b', 2), row('3', 'c', 30)].sort());
    expect(within.remote).toEqual(within.local);
  });

  it('a stream-static join (inner and left outer) against in-memory rows sent to Spark as a LocalRelation', async () => {
    for (const how of ['inner', 'left_outer']) {
      const t = await freshTopics(`conf-join-static-${how}`, 1);
      const steps = [() => sendJson(t.input, [{ id: '1', user: 'a', at: 1 }, { id: '2', user: 'b', at: 2 }, { id: '3', user: 'z', at: 3 }])];
      const r = await onBoth((s, out) => {
        const users = s.createDataFrame([{ user: 'a', country: 'NL' }, { user: 'b', country: 'PT' }], 'user STRING, country STRING');
        return toKafka(jsonEvents(s, t.input).join(users, 'user', how).select(to_json(struct('id', 'user', 'country')).alias('value')), out);
      }, steps);
      expect(r.local).toEqual(
        [`null|{"id":"1","user":"a","country":"NL"}`, `null|{"id":"2","user":"b","country":"PT"}`, ...(how === 'inner' ? [] : [`null|{"id":"3","user":"z"}`])].sort(),
      );
      expect(r.remote).toEqual(r.local);
    }
  });

  it('a stream-stream inner join with watermarks and an event-time range', async () => {
    const left = await freshTopics('conf-ss-left', 1);
    const right = await freshTopics('conf-ss-right', 1);
    const steps = [
      async () => {
        await sendJson(left.input, [{ id: 'ad1', user: 'imp', at: 1 }, { id: 'ad2', user: 'imp', at: 2 }]);
        await sendJson(right.input, [{ id: 'ad1', user: 'click', at: 5 }]);
      },
      async () => {
        await sendJson(right.input, [{ id: 'ad2', user: 'click', at: 30 }, { id: 'ad1', user: 'click', at: 9 }]);
      },
    ];
    const r = await onBoth((s, out) => {
      const imps = jsonEvents(s, left.input).select(col('id').alias('imp_ad'), col('ts').alias('imp_ts')).withWatermark('imp_ts', '10 seconds');
      const clicks = jsonEvents(s, right.input).select(col('id').alias('click_ad'), col('ts').alias('click_ts')).withWatermark('click_ts', '10 seconds');
      return toKafka(
        imps.join(clicks, expr('click_ad = imp_ad AND click_ts >= imp_ts AND click_ts <= imp_ts + interval 10 seconds')).select(to_json(struct('imp_ad', 'click_ts')).alias('value')),
        out,
      );
    }, steps);
    // ad1's clicks at 5 s and 9 s are within 10 s of its impression at 1 s; ad2's click at 30 s is not.
    expect(r.local).toEqual([`null|{"imp_ad":"ad1","click_ts":"2026-01-01T00:00:05.000Z"}`, `null|{"imp_ad":"ad1","click_ts":"2026-01-01T00:00:09.000Z"}`]);
    expect(r.remote).toEqual(r.local);
  });

  it('a stream-stream left outer join: unmatched rows come out with nulls once the watermark says no match can come', async () => {
    const left = await freshTopics('conf-lo-left', 1);
    const right = await freshTopics('conf-lo-right', 1);
    // Impressions ad1@1 s and ad2@2 s, a click for ad1@5 s (a match). Then ad3@40 s and a click ad9@45 s move the
    // watermarks to 30 s and 35 s; the global one (min) is 30 s. A click for an impression at t must be in
    // [t, t + 10 s], and clicks before the watermark are dropped, so an impression at t can still match only
    // while t + 10 s ≥ 30 s: ad1 and ad2 leave state, ad2 with nulls (ad1 was matched). ad3 stays.
    const steps = [
      async () => {
        await sendJson(left.input, [{ id: 'ad1', user: 'imp', at: 1 }, { id: 'ad2', user: 'imp', at: 2 }]);
        await sendJson(right.input, [{ id: 'ad1', user: 'click', at: 5 }]);
      },
      async () => {
        await sendJson(left.input, [{ id: 'ad3', user: 'imp', at: 40 }]);
        await sendJson(right.input, [{ id: 'ad9', user: 'click', at: 45 }]);
      },
    ];
    const r = await onBoth((s, out) => {
      const imps = jsonEvents(s, left.input).select(col('id').alias('imp_ad'), col('ts').alias('imp_ts')).withWatermark('imp_ts', '10 seconds');
      const clicks = jsonEvents(s, right.input).select(col('id').alias('click_ad'), col('ts').alias('click_ts')).withWatermark('click_ts', '10 seconds');
      return toKafka(
        imps
          .join(clicks, expr('click_ad = imp_ad AND click_ts >= imp_ts AND click_ts <= imp_ts + interval 10 seconds'), 'left_outer')
          .select(to_json(struct('imp_ad', 'click_ts')).alias('value')),
        out,
      );
    }, steps);
    expect(r.local).toEqual([`null|{"imp_ad":"ad1","click_ts":"2026-01-01T00:00:05.000Z"}`, `null|{"imp_ad":"ad2"}`]);
    expect(r.remote).toEqual(r.local);
  });

  it('a union of two streams, then session windows in append mode', async () => {
    const a = await freshTopics('conf-union-a', 1);
    const b = await freshTopics('conf-union-b', 1);
    // 10-second gap, 5-second watermark delay. Step 1: a@1, a@5 (first stream), a@8, b@3 (second) → sessions
    // a [1 s, 18 s) with 3 events (a session ends at its last event + the gap), b [3 s, 13 s) with 1; the
    // watermark becomes 8 − 5 = 3 s. Step 2: c@40 → watermark 35 s: both sessions ended by then and are
    // emitted once; c's session [40 s, 50 s) is still open.
    const steps = [
      async () => {
        await sendJson(a.input, [{ id: '1', user: 'a', at: 1 }, { id: '2', user: 'a', at: 5 }]);
        await sendJson(b.input, [{ id: '3', user: 'a', at: 8 }, { id: '4', user: 'b', at: 3 }]);
      },
      () => sendJson(a.input, [{ id: '5', user: 'c', at: 40 }]),
    ];
    const r = await onBoth(
      (s, out) =>
        toKafka(
          jsonEvents(s, a.input)
            .union(jsonEvents(s, b.input))
            .withWatermark('ts', '5 seconds')
            .groupBy(col('user'), session_window(col('ts'), '10 seconds'))
            .agg(count('*').alias('n'))
            .select(to_json(struct('user', col('session_window.start').alias('start'), col('session_window.end').alias('end'), 'n')).alias('value')),
          out,
        ).outputMode('append'),
      steps,
    );
    const at = (sec: number): string => new Date(T0 + sec * 1000).toISOString();
    expect(r.local).toEqual([`null|{"user":"a","start":"${at(1)}","end":"${at(18)}","n":3}`, `null|{"user":"b","start":"${at(3)}","end":"${at(13)}","n":1}`]);
    expect(r.remote).toEqual(r.local);
  });
});

describe('triggers and static frames on both backends', () => {
  it('availableNow: both read what is there, run the batch that closes the windows, and stop by themselves', async () => {
    const runs: string[][] = [];
    const progress: number[][] = [];
    for (const remote of [false, true]) {
      const t = await freshTopics('conf-available-now', 2);
      await sendJson(t.input, [{ id: '1', user: 'a', at: 1 }, { id: '2', user: 'b', at: 4 }, { id: '3', user: 'a', at: 12 }, { id: '4', user: 'c', at: 26 }]);
      const q = await windowed(t.input, 'append')(session(remote), t.output).trigger({ availableNow: true }).start();
      expect(await q.awaitTermination(120_000)).toBe(true);
      runs.push(await outputOf(t.output));
      progress.push(q.recentProgress.map((p) => p.numInputRows));
    }
    // One batch with the four rows (watermark then 26 − 5 = 21 s), then the no-data batch that emits the windows
    // ending by 21 s: [0,10) with 2 and [10,20) with 1. [20,30) stays open.
    expect(runs[0]).toEqual([win(0, 2), win(10, 1)].sort());
    expect(runs[1]).toEqual(runs[0]);
    expect(progress[1]).toEqual(progress[0]);
  });

  it('collect() of a static aggregation over in-memory rows gives the same rows, types included', async () => {
    const results = [];
    for (const remote of [false, true]) {
      const s = session(remote);
      const df = s.createDataFrame(
        [
          { user: 'a', amount: 10, at: new Date(T0 + 1000) },
          { user: 'b', amount: 5, at: new Date(T0 + 2000) },
          { user: 'a', amount: 7, at: new Date(T0 + 61_000) },
        ],
        'user STRING, amount INT, at TIMESTAMP',
      );
      // cache(): Spark persists the relation (AnalyzePlan persist) before the plan runs.
      const totals = df.groupBy('user').agg(count('*').alias('n'), sum('amount').alias('total'), max('at').alias('last')).cache();
      results.push(await totals.orderBy('user').collect());
      expect(await df.count()).toBe(3);
      // A SELECT without FROM reads one row of no columns: Spark gets range(1) without its column.
      expect(await s.sql('SELECT 1 AS x').collect()).toEqual([{ x: 1 }]);
      // JSON numbers as timestamps: whole seconds since the epoch (a fraction does not convert).
      const json = s.createDataFrame([{ j: '{"ts": 1767225600}' }, { j: '{"ts": 1.5}' }], 'j STRING');
      results.push(await json.select(from_json(col('j'), 'ts TIMESTAMP').alias('e')).select('e.ts').collect());
      // Maps and arrays come back from Arrow as Sluice's values: plain objects and arrays.
      const nested = s.createDataFrame([{ j: '{"m": {"a": 1, "b": 2}, "l": [1, 2]}' }], 'j STRING');
      results.push(await nested.select(from_json(col('j'), 'm MAP<STRING,INT>, l ARRAY<INT>').alias('e')).select('e.*').collect());
    }
    expect(results[0]).toEqual([
      { user: 'a', n: 2, total: 17, last: new Date(T0 + 61_000) },
      { user: 'b', n: 1, total: 5, last: new Date(T0 + 2000) },
    ]);
    expect(results[1]).toEqual([{ ts: new Date(T0) }, { ts: null }]);
    expect(results[2]).toEqual([{ m: { a: 1, b: 2 }, l: [1, 2] }]);
    expect(results.slice(3)).toEqual(results.slice(0, 3));
  });
});

describe('Avro through the registry on Spark', () => {
  const avroOf = (schema: object, value: object): Buffer => Buffer.from(avro.Type.forSchema(schema as avro.Schema).toBuffer(value));

  it('a record written with another schema id fails the Spark query with the reason (Spark cannot read the id itself)', async () => {
    const t = await freshTopics('conf-avro-guard', 1);
    const reg = registryClient(registry());
    const v1 = { type: 'record', name: 'E', fields: [{ name: 'n', type: 'int' }] };
    const other = { type: 'record', name: 'Other', fields: [{ name: 's', type: 'string' }] };
    const id1 = await reg.register(`${t.input}-value`, JSON.stringify(v1));
    const id2 = await reg.register(`${t.input}-other`, JSON.stringify(other));
    await produceRecords([{ topic: t.input, value: frame(id1, avroOf(v1, { n: 7 })) }]);
    const s = session(true);
    const q = await toKafka(
      s.readStream.format('kafka').option('kafka.bootstrap.servers', bootstrapServers()).option('subscribe', t.input).option('startingOffsets', 'earliest').load()
        .select(fromAvro(col('value'), { registry: registry(), subject: `${t.input}-value`, mode: 'FAILFAST' }).alias('e'))
        .select(to_json(col('e')).alias('value')),
      t.output,
    ).start();
    await q.processAllAvailable();
    expect((await readTopic(kafka(), t.output)).map((r) => r.value!.toString())).toEqual(['{"n":7}']);
    await produceRecords([{ topic: t.input, value: frame(id2, avroOf(other, { s: 'x' })) }]);
    const failure = await q.processAllAvailable().then(() => undefined, (e: Error) => e);
    expect(failure?.message).toMatch(new RegExp(`not written with schema id ${id1}.*header is 0x00${id2.toString(16).padStart(8, '0').toUpperCase()}`, 's'));
    expect(failure?.name).toBe('StreamingQueryException');
    expect(q.isActive).toBe(false);
    // The handle keeps the query's error: awaitTermination rethrows it, as locally.
    await expect(q.awaitTermination()).rejects.toThrow(/not written with schema id/);
  });

  it('a tombstone fails the query with the reason by default; tombstones: "keep" reads it as null', async () => {
    for (const keep of [false, true]) {
      const t = await freshTopics('conf-avro-tombstone', 1);
      const v1 = { type: 'record', name: 'E', fields: [{ name: 'n', type: 'int' }] };
      const id1 = await registryClient(registry()).register(`${t.input}-value`, JSON.stringify(v1));
      await produceRecords([{ topic: t.input, value: frame(id1, avroOf(v1, { n: 1 })) }, { topic: t.input, key: Buffer.from('k'), value: null }]);
      const q = await toKafka(
        session(true).readStream.format('kafka').option('kafka.bootstrap.servers', bootstrapServers()).option('subscribe', t.input).option('startingOffsets', 'earliest').load()
          .select(fromAvro(col('value'), { registry: registry(), subject: `${t.input}-value`, mode: 'FAILFAST', ...(keep ? { tombstones: 'keep' as const } : {}) }).alias('e'))
          .select(to_json(struct(col('e.n').alias('n'))).alias('value')),
        t.output,
      ).start();
      if (keep) {
        await q.processAllAvailable();
        expect((await readTopic(kafka(), t.output)).map((r) => r.value!.toString()).sort()).toEqual(['{"n":1}', '{}']);
        await q.stop();
      } else {
        await expect(q.processAllAvailable()).rejects.toThrow(/a tombstone \(a record with a null value\) is not an Avro record.*tombstones: 'keep'/s);
      }
    }
  });

  it('a subject with several schema versions is refused before submission, with the reason and what to do', async () => {
    const t = await freshTopics('conf-avro-versions', 1);
    const reg = registryClient(registry());
    await reg.register(`${t.input}-value`, JSON.stringify({ type: 'record', name: 'E', fields: [{ name: 'n', type: 'int' }] }));
    await reg.register(`${t.input}-value`, JSON.stringify({ type: 'record', name: 'E', fields: [{ name: 'n', type: 'int' }, { name: 'm', type: ['null', 'int'], default: null }] }));
    const s = session(true);
    const df = s.readStream.format('kafka').option('kafka.bootstrap.servers', bootstrapServers()).option('subscribe', t.input).load()
      .select(fromAvro(col('value'), { registry: registry(), subject: `${t.input}-value` }).alias('e'));
    await expect(toKafka(df.select(to_json(col('e')).alias('value')), t.output).start()).rejects.toThrow(/2 schema versions.*cannot run on Spark Connect.*\{ schemaId \}/s);
  });
});

describe('sluice run with a query on Spark', () => {
  it('waits until the query started on Spark has ended, then exits', async () => {
    const t = await freshTopics('conf-run', 2);
    await produceRecords(Array.from({ length: 50 }, (_, i) => ({ topic: t.input, key: Buffer.from(`k${i}`), value: Buffer.from(`v${i}`) })));
    const run = startPipeline('remote-copy-pipeline.ts', {
      SLUICE_SPARK_CONNECT_URL: sparkConnectUrl(),
      SLUICE_BOOTSTRAP_SERVERS: bootstrapServers(),
      IN: t.input,
      OUT: t.output,
      CHECKPOINT: checkpoint(),
    });
    expect(await run.exited, run.output()).toBe(0);
    expect(run.output()).toMatch(/started on Spark/);
    // Read at once after the exit: the query had written everything before `sluice run` returned.
    expect((await readTopic(kafka(), t.output)).map((r) => r.value!.toString()).sort()).toEqual(Array.from({ length: 50 }, (_, i) => `v${i}`).sort());

    // The same values read as registry Avro: not framed, so the query fails on Spark — and `sluice run` says so.
    const id = await registryClient(registry()).register(`${t.input}-value`, JSON.stringify({ type: 'record', name: 'R', fields: [{ name: 'n', type: 'int' }] }));
    const failing = startPipeline('remote-copy-pipeline.ts', {
      SLUICE_SPARK_CONNECT_URL: sparkConnectUrl(),
      SLUICE_BOOTSTRAP_SERVERS: bootstrapServers(),
      SLUICE_REGISTRY_URL: registry().url,
      IN: t.input,
      OUT: t.dlq,
      CHECKPOINT: checkpoint(),
      SCHEMA_ID: String(id),
    });
    expect(await failing.exited).not.toBe(0);
    expect(failing.output()).toMatch(new RegExp(`failed on Spark.*not written with schema id ${id}`, 's'));
  });
});

describe('what Spark Connect cannot run is refused before anything is submitted', () => {
  it('a JavaScript map function, foreachBatch and a memoryStream, each with the reason and what to use instead', async () => {
    const s = session(true);
    const t = await freshTopics('conf-refuse', 1);
    const events = jsonEvents(s, t.input);
    const mapped = events.map((r) => r, 'id STRING, user STRING, ts TIMESTAMP');
    await expect(toKafka(mapped.select(to_json(struct('id')).alias('value')), t.output).start()).rejects.toThrow(ConnectUnsupportedError);
    await expect(toKafka(mapped.select(to_json(struct('id')).alias('value')), t.output).start()).rejects.toThrow(/JavaScript function.*Spark runs on the JVM.*column expressions/s);
    await expect(events.writeStream.foreachBatch(() => {}).start()).rejects.toThrow(/foreachBatch\(\) with a JavaScript function cannot run on Spark Connect.*format\("kafka"\)/s);
    await expect(events.writeStream.format('memory').queryName('t').start()).rejects.toThrow(/format\("memory"\) cannot run on Spark Connect.*session\.table\(\)/s);
    const mem = s.memoryStream('x INT');
    await expect(mem.toDF().writeStream.format('console').start()).rejects.toThrow(/memoryStream\(\) cannot run on Spark Connect.*format\("kafka"\)/s);
    // Nothing reached Spark: no query was started there.
    expect(s.streams.active).toHaveLength(0);
  });
});
