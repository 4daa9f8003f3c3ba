/**
 * Issue 13 item 1 — "why is there no output?": each cause reproduced on memory streams, and the finding
 * diagnose() gives for it asserted (exec/diagnose.ts). The Kafka-side causes (a missing topic, a pattern
 * matching nothing, a checkpoint past the data, no data since latest) are in test/integration/diagnose-kafka.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { SluiceSession, col, count, from_json, window } from '../../src/index.js';
import { formatFindings } from '../../src/exec/diagnose.js';

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
    expect(findings[0]!.summary).toBe('Every row was removed by a filter (where/filter) before the sink.');
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
});
