/**
 * Issue 13 item 1 — "why is there no output?": each cause reproduced on memory streams, and the finding
 * diagnose() gives for it asserted (exec/diagnose.ts). The Kafka-side causes (a missing topic, a pattern
 * matching nothing, a checkpoint past the data, no data since latest) are in test/integration/diagnose-kafka.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { appendFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SluiceSession, col, count, from_json, session_window, window } from '../../src/index.js';
import { QueryHistory, readHistory } from '../../src/checkpoint/history.js';
import { diagnose, formatFindings } from '../../src/exec/diagnose.js';

function newSession(): SluiceSession {
  const s = new SluiceSession('diagnose');
  s.out = () => {};
  s.log = () => {};
  return s;
}
const at = (t: string): Date => new Date(`2026-01-01T${t}Z`);

describe('diagnose(): why is there no output', () => {
  it('append mode waiting for the watermark: names the first window and the event time that closes it', async () => {
    // Worked out: 10-minute delay, 5-minute windows. Rows at 12:01 and 12:03 open window [12:00, 12:05). The
    // watermark after the batch is 12:03 − 10 min = 11:53: the window (end 12:05) is written only once the
    // watermark reaches 12:05, i.e. once an event at 12:05 + 10 min = 12:15 or later has arrived.
    const s = newSession();
    const clicks = s.memoryStream('user STRING, ts TIMESTAMP');
    const q = await clicks.toDF().withWatermark('ts', '10 minutes').groupBy(window(col('ts'), '5 minutes')).agg(count('*').alias('n'))
      .writeStream.format('memory').queryName('diag_windows').outputMode('append').start();
    clicks.addData({ user: 'a', ts: at('12:01:00') }, { user: 'b', ts: at('12:03:00') });
    await q.processAllAvailable();
    const [first, ...rest] = await q.diagnose();
    expect(first?.cause).toBe('waiting-for-watermark');
    expect(first?.summary).toBe(
      'Append mode writes a window only once the watermark passes its end: the first, ending 2026-01-01T12:05:00.000Z, is written once an ' +
        'event with time ≥ 2026-01-01T12:15:00.000Z (its end + the 10 min delay) has arrived.',
    );
    expect(first?.evidence).toEqual([
      '1 group(s) held in state, 2 input rows in batches 0–1, no output yet',
      'watermark for the next batch: 2026-01-01T11:53:00.000Z (max event time − 10 min)',
      'max event time seen: 2026-01-01T12:03:00.000Z',
    ]);
    expect(rest).toEqual([]);
    // The event it names closes the window: then there is output, and nothing to report.
    clicks.addData({ user: 'c', ts: at('12:15:00') });
    await q.processAllAvailable();
    expect(s.memoryTable('diag_windows').rows).toEqual([{ window: { start: at('12:00:00'), end: at('12:05:00') }, n: 2 }]);
    expect(await q.diagnose()).toEqual([]);
    await q.stop();
  });

  it('every row late: counts them against the input', async () => {
    // Batch 0 (12:30) moves the watermark to 12:29; batch 1's rows at 12:00 and 12:01 are behind it: dropped.
    // Update mode, so batch 0's window is written: the finding is about the late rows, not the watermark.
    const s = newSession();
    const clicks = s.memoryStream('ts TIMESTAMP');
    const q = await clicks.toDF().withWatermark('ts', '1 minute').groupBy(window(col('ts'), '5 minutes')).agg(count('*').alias('n'))
      .writeStream.format('memory').queryName('diag_late').outputMode('update').start();
    clicks.addData({ ts: at('12:30:00') });
    await q.processAllAvailable();
    clicks.addData({ ts: at('12:00:00') }, { ts: at('12:01:00') });
    await q.processAllAvailable();
    const findings = await q.diagnose();
    expect(findings.map((f) => f.cause)).toEqual(['rows-late']);
    expect(findings[0]!.summary).toBe('2 of 3 rows were dropped as late: their event time was behind the watermark.');
    expect(findings[0]!.evidence[0]).toMatch(/^2 of 3 input rows dropped by the watermark \(numRowsDroppedByWatermark\) in batches 0–/);
    await q.stop();
  });

  it('every row filtered out before the sink', async () => {
    const s = newSession();
    const words = s.memoryStream('w STRING');
    const q = await words.toDF().filter(col('w').eq('never')).writeStream.format('memory').queryName('diag_filtered').start();
    words.addData({ w: 'a' }, { w: 'b' }, { w: 'c' });
    await q.processAllAvailable();
    const findings = await q.diagnose();
    expect(findings.map((f) => f.cause)).toEqual(['rows-filtered']);
    expect(findings[0]!.summary).toBe('Every row was removed before the sink (a filter, an inner join with no match, a flatMap returning nothing).');
    expect(findings[0]!.evidence).toEqual(['3 of 3 input rows filtered out (numFilteredRows) in batches 0–0']);
    await q.stop();
  });

  it('every row a dead letter', async () => {
    const s = newSession();
    const lines = s.memoryStream('v STRING');
    const q = await lines.toDF().select(from_json(col('v'), 'a INT', { mode: 'FAILFAST' }).alias('j'))
      .writeStream.format('memory').queryName('diag_dead').start();
    lines.addData({ v: 'not json' }, { v: '{oops' });
    await q.processAllAvailable();
    const findings = await q.diagnose();
    expect(findings.map((f) => f.cause)).toEqual(['dead-letters']);
    expect(findings[0]!.summary).toBe('Every row went to the dead-letter destination instead of the output.');
    await q.stop();
  });

  it('a failed query: its error first', async () => {
    const s = newSession();
    const lines = s.memoryStream('v STRING');
    const q = await lines.toDF().select(from_json(col('v'), 'a INT', { mode: 'FAILFAST' }).alias('j'))
      .writeStream.format('memory').queryName('diag_failed').option('onBadRecord', 'fail').start();
    lines.addData({ v: 'not json' });
    await q.processAllAvailable().catch(() => {});
    const [first] = await q.diagnose();
    expect(first?.cause).toBe('query-failed');
    expect(first?.evidence[0]).toMatch(/stopped the query because onBadRecord=fail: from_json: malformed JSON/);
  });

  it('a stopped query, and a long processing-time trigger', async () => {
    const s = newSession();
    const words = s.memoryStream('w STRING');
    words.addData({ w: 'a' }); // before the start: the first trigger reads it (processAllAvailable would wait 10 minutes)
    const q = await words.toDF().writeStream.format('memory').queryName('diag_slow').trigger({ processingTime: '10 minutes' }).start();
    while (!q.lastProgress) await new Promise((r) => setTimeout(r, 10));
    const slow = await q.diagnose();
    expect(slow.map((f) => f.cause)).toEqual(['slow-trigger']);
    expect(slow[0]!.summary).toBe('The trigger runs a batch every 10 min: new data waits up to that long.');
    expect(slow[0]!.evidence[0]).toMatch(/^last batch at .*; next at /);
    await q.stop();
    expect((await q.diagnose()).map((f) => f.cause)).toEqual(['query-stopped']);
    expect(formatFindings(await q.diagnose())).toMatch(/^1\. \[query-stopped\] The query diag_slow was stopped/);
  });

  // Review: a filter before an aggregation removes rows without a counter (numFilteredRows is for stateless
  // plans): the list was empty and read "no problem, writing output".
  it('rows that vanish in a stateful plan, with no counter to name: said, not "no problem"', async () => {
    const s = newSession();
    const clicks = s.memoryStream('user STRING');
    const q = await clicks.toDF().filter(col('user').eq('nobody')).groupBy('user').agg(count('*').alias('n'))
      .writeStream.format('memory').queryName('diag_stateful_filter').outputMode('update').start();
    clicks.addData({ user: 'a' }, { user: 'b' });
    await q.processAllAvailable();
    const findings = await q.diagnose();
    expect(findings.map((f) => f.cause)).toEqual(['no-output']);
    expect(findings[0]!.evidence).toEqual(['2 input rows in batches 0–0, 0 output rows', 'nothing held in state']);
    await q.stop();
  });

  // Review: with two watermarked inputs and the min policy, an input that has sent nothing holds the watermark;
  // the message named one input's threshold as if it were enough.
  it('two watermarked inputs: the finding says the slowest input holds the watermark, not one event time', async () => {
    const s = newSession();
    const a = s.memoryStream('ts TIMESTAMP');
    const b = s.memoryStream('ts TIMESTAMP');
    const q = await a.toDF().withWatermark('ts', '10 minutes').union(b.toDF().withWatermark('ts', '5 minutes'))
      .groupBy(window(col('ts'), '5 minutes')).agg(count('*').alias('n'))
      .writeStream.format('memory').queryName('diag_two_inputs').outputMode('append').start();
    a.addData({ ts: at('12:01:00') }, { ts: at('12:40:00') }); // b sends nothing: the global watermark stays at 1970
    await q.processAllAvailable();
    const [first] = await q.diagnose();
    expect(first?.cause).toBe('waiting-for-watermark');
    expect(first?.summary).toBe(
      'Append mode writes a window only once the watermark passes its end (the first ends 2026-01-01T12:05:00.000Z). The query has 2 ' +
        'watermarked inputs and its watermark is their minimum: every input must move past the end + its own delay; an input that has ' +
        'sent nothing holds it back (delays 10 min, 5 min).',
    );
    await q.stop();
  });

  // Review: pendingOutput read a closed LMDB environment once the query had stopped.
  it('a stopped query on LMDB state is diagnosed without reading its closed state', async () => {
    const s = newSession();
    s.conf.set('sluice.sql.streaming.stateStore.provider', 'lmdb');
    const clicks = s.memoryStream('ts TIMESTAMP');
    const q = await clicks.toDF().withWatermark('ts', '10 minutes').groupBy(window(col('ts'), '5 minutes')).agg(count('*').alias('n'))
      .writeStream.format('memory').queryName('diag_lmdb').outputMode('append')
      .option('checkpointLocation', join(mkdtempSync(join(tmpdir(), 'sluice-diag-')), 'cp')).start();
    clicks.addData({ ts: at('12:01:00') });
    await q.processAllAvailable();
    expect((await q.diagnose())[0]?.summary).toMatch(/ending 2026-01-01T12:05:00\.000Z/); // from LMDB's time index
    await q.stop();
    const stopped = await q.diagnose();
    expect(stopped.map((f) => f.cause)).toEqual(['query-stopped', 'waiting-for-watermark']);
    expect(stopped[1]!.summary).toBe('Append mode writes a window only once the watermark passes its end; 1 group(s) are waiting for it.');
  });

  // Review: a line cut by a crash swallowed the next run's first line when appended to.
  it('history: a line cut short by a crash does not swallow the next one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-history-'));
    new QueryHistory(dir).runEvent({ event: 'terminated', runId: 'r1', timestamp: 't', exception: null });
    appendFileSync(join(dir, 'history', 'runs.jsonl'), '{"event":"started","runId":"r2","na'); // the process died mid-write
    new QueryHistory(dir).runEvent({ event: 'terminated', runId: 'r3', timestamp: 't', exception: null });
    expect(readHistory(dir).runs.map((r) => r.runId)).toEqual(['r1', 'r3']);
    expect(readFileSync(join(dir, 'history', 'runs.jsonl'), 'utf8').split('\n')).toHaveLength(4); // r1, the cut line, r3, ''
  });

  // A sink that cannot deliver (broker unreachable) holds its batch for message.timeout.ms: a running batch
  // far past its usual duration is reported. Worked on a snapshot: the rule is the pure function's.
  it('a batch running far longer than usual: stalled, with what can hold a batch', async () => {
    const s = newSession();
    const words = s.memoryStream('w STRING');
    const q = await words.toDF().writeStream.format('memory').queryName('diag_stall').start();
    words.addData({ w: 'a' });
    await q.processAllAvailable();
    const snapshot = await q.diagnosisSnapshot();
    await q.stop();
    const usual = snapshot.progress[0]!.batchDuration;
    const stalled = diagnose({ ...snapshot, active: true, running: { batchId: 1, sinceMs: 95_000, status: 'Processing new data' } });
    expect(stalled.map((f) => f.cause)).toEqual(['batch-stalled']);
    expect(stalled[0]!.summary).toBe(`Batch 1 has been running for 95 s${usual ? `; batches usually take ${usual} ms` : ''}.`);
    expect(stalled[0]!.action).toMatch(/message\.timeout\.ms \(5 min\)/);
    // 20 s is not stalled (below 30 s), whatever the usual duration.
    expect(diagnose({ ...snapshot, active: true, running: { batchId: 1, sinceMs: 20_000, status: 'Processing new data' } })).toEqual([]);
  });

  it('session windows waiting for the watermark: the first session end and the event time that closes it', async () => {
    // A 5-minute gap: clicks at 12:00 and 12:02 make one session [12:00, 12:07). With a 10-minute delay it is
    // written once the watermark reaches 12:07, i.e. once an event at 12:17 or later has arrived.
    const s = newSession();
    const clicks = s.memoryStream('user STRING, ts TIMESTAMP');
    const q = await clicks.toDF().withWatermark('ts', '10 minutes').groupBy(session_window(col('ts'), '5 minutes'), col('user')).agg(count('*').alias('n'))
      .writeStream.format('memory').queryName('diag_sessions').outputMode('append').start();
    clicks.addData({ user: 'ada', ts: at('12:00:00') }, { user: 'ada', ts: at('12:02:00') });
    await q.processAllAvailable();
    const [first] = await q.diagnose();
    expect(first?.summary).toMatch(/the first, ending 2026-01-01T12:07:00\.000Z, is written once an event with time ≥ 2026-01-01T12:17:00\.000Z/);
    expect(first?.evidence[0]).toBe('1 group(s) held in state, 2 input rows in batches 0–1, no output yet');
    await q.stop();
  });
});
