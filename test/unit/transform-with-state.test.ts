/**
 * Issue 10 — transformWithState, as Spark 4.0 defines it: a StatefulProcessor with several named state
 * variables per key (ValueState, ListState, MapState, each with an optional TTL) and timers. Expected rows
 * are worked out by hand from Spark 4.0's documented behaviour (the Structured Streaming guide, "Arbitrary
 * Stateful Operations" / transformWithState):
 *  - handleInputRows runs once per key with new rows; handleExpiredTimer once per timer whose time is
 *    strictly before the batch's processing time (ProcessingTime) or its watermark for eviction (EventTime) —
 *    TimerStateImpl.getExpiredTimers: `expiryTimestampMs < threshold` — the timer removed first;
 *  - a TTL counts processing time from the value's last write; an expired value reads as absent and is
 *    removed at the end of the batch.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SluiceSession, TimeMode } from '../../src/index.js';
import type { DataFrame, ListState, MapState, Row, StatefulProcessor, StatefulProcessorHandle, StreamingQuery, TimerValues, ValueState } from '../../src/index.js';

const t = (hms: string): Date => new Date(`2025-01-01T${hms}Z`);
const tmp = (): string => mkdtempSync(join(tmpdir(), 'sluice-tws-'));

function newSession(provider = 'memory'): SluiceSession {
  const s = new SluiceSession('tws');
  s.conf.set('sluice.sql.streaming.stateStore.provider', provider);
  s.out = () => {};
  s.log = () => {};
  return s;
}

async function run(s: SluiceSession, df: DataFrame, checkpoint = tmp(), mode: 'append' | 'update' = 'update', trigger?: { processingTime: string }): Promise<StreamingQuery> {
  let w = df.writeStream.format('memory').queryName('out').outputMode(mode).option('checkpointLocation', checkpoint);
  if (trigger) w = w.trigger(trigger);
  return w.start();
}

/** Three variables per user: a count, the last two pages, and visits per page type. */
class Profile implements StatefulProcessor<string> {
  count!: ValueState<number>;
  recent!: ListState<string>;
  perType!: MapState<string, number>;
  init(h: StatefulProcessorHandle): void {
    this.count = h.getValueState('count', { type: 'bigint' });
    this.recent = h.getListState('recent', { type: 'string' });
    this.perType = h.getMapState('perType');
  }
  handleInputRows(user: string, rows: Row[]): Row[] {
    this.count.update((this.count.get() ?? 0) + rows.length);
    this.recent.put([...this.recent.get(), ...rows.map((r) => r.page as string)].slice(-2));
    for (const r of rows) this.perType.updateValue(r.type as string, (this.perType.getValue(r.type as string) ?? 0) + 1);
    const types = this.perType.iterator().sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k}:${v}`);
    return [{ user, count: this.count.get(), recent: this.recent.get().join(','), types: types.join(' ') }];
  }
}

describe.each(['memory', 'lmdb'])('transformWithState with several state variables (%s state store)', (provider) => {
  it('keeps a value, a list and a map per key, across batches and a restart', async () => {
    const checkpoint = tmp();
    const rows1 = [
      { user: 'alice', page: '/a', type: 'view' },
      { user: 'alice', page: '/b', type: 'cart' },
      { user: 'bob', page: '/x', type: 'view' },
      { user: 'alice', page: '/c', type: 'view' },
    ];
    let s = newSession(provider);
    let input = s.memoryStream('user STRING, page STRING, type STRING');
    const build = (df: DataFrame): DataFrame =>
      df.groupByKey('user').transformWithState(new Profile(), TimeMode.None, 'update', { outputSchema: 'user STRING, count LONG, recent STRING, types STRING' });
    let q = await run(s, build(input.toDF()), checkpoint);
    input.addData(rows1);
    await q.processAllAvailable();
    await q.stop();
    const show = (r: Row): string => `${String(r.user)} ${String(r.count)} [${String(r.recent)}] ${String(r.types)}`;
    // alice: 3 rows → count 3, last two pages /b,/c, view 2, cart 1. bob: 1 row.
    expect(s.memoryTable('out').rows.map(show)).toEqual(['alice 3 [/b,/c] cart:1 view:2', 'bob 1 [/x] view:1']);
    expect(q.lastProgress!.stateOperators[0]).toMatchObject({
      operatorName: 'transformWithStateExec',
      numRowsTotal: 6, // 3 variables × 2 users
      customMetrics: { numValueStateVars: 1, numListStateVars: 1, numMapStateVars: 1 },
    });

    s = newSession(provider);
    input = s.memoryStream('user STRING, page STRING, type STRING');
    input.addData(rows1); // read before the restart: skipped (a memory stream numbers rows from 0 in each process)
    q = await run(s, build(input.toDF()), checkpoint);
    input.addData([{ user: 'alice', page: '/d', type: 'cart' }]);
    await q.processAllAvailable();
    await q.stop();
    expect(s.memoryTable('out').rows.map(show)).toEqual(['alice 4 [/c,/d] cart:2 view:2']);
  });
});

describe('event-time timers', () => {
  /** A session per user: the timer is moved to the latest event time + 1 minute; when it fires, the session is emitted. */
  class Sessions implements StatefulProcessor<string> {
    clicks!: ValueState<number>;
    init(h: StatefulProcessorHandle): void {
      this.handle = h;
      this.clicks = h.getValueState('clicks');
    }
    handle!: StatefulProcessorHandle;
    handleInputRows(_user: string, rows: Row[]): Row[] {
      for (const old of this.handle.listTimers()) this.handle.deleteTimer(old);
      this.clicks.update((this.clicks.get() ?? 0) + rows.length);
      this.handle.registerTimer(Math.max(...rows.map((r) => (r.ts as Date).getTime())) + 60_000);
      return [];
    }
    handleExpiredTimer(user: string, tv: TimerValues, info: { getExpiryTimeInMs(): number }): Row[] {
      const clicks = this.clicks.get();
      this.clicks.clear();
      return [{ user, clicks, timer: new Date(info.getExpiryTimeInMs()), watermark: new Date(tv.getCurrentWatermarkInMs()) }];
    }
  }

  it('a timer fires in the batch whose watermark reaches it; late rows are dropped', async () => {
    const s = newSession();
    const input = s.memoryStream('user STRING, ts TIMESTAMP');
    const df = input
      .toDF()
      .withWatermark('ts', '10 seconds')
      .groupByKey('user')
      .transformWithState(new Sessions(), TimeMode.EventTime, 'append', { outputSchema: 'user STRING, clicks LONG, timer TIMESTAMP, watermark TIMESTAMP' });
    const q = await run(s, df, tmp(), 'append');
    for (const rows of [
      [{ user: 'alice', ts: t('12:00:00') }, { user: 'alice', ts: t('12:00:20') }],
      [{ user: 'bob', ts: t('12:02:00') }],
      [{ user: 'carol', ts: t('11:59:00') }, { user: 'bob', ts: t('12:02:30') }],
      [{ user: 'dan', ts: t('12:03:40') }],
      [{ user: 'eve', ts: t('12:03:41') }],
    ]) {
      input.addData(rows);
      await q.processAllAvailable();
    }
    await q.stop();
    const hms = (d: unknown): string => (d as Date).toISOString().slice(11, 19);
    const trace = q.recentProgress.map((p) => ({
      batch: p.batchId,
      wm: hms(new Date(p.eventTime.watermark!)),
      out: (s.memoryTable('out').batches.get(p.batchId) ?? []).map((r) => `${String(r.user)} ${String(r.clicks)} timer ${hms(r.timer)} wm ${hms(r.watermark)}`),
      dropped: p.stateOperators[0]!.numRowsDroppedByWatermark,
    }));
    expect(trace).toEqual([
      { batch: 0, wm: '00:00:00', out: [], dropped: 0 }, // alice's timer at 12:01:20
      { batch: 1, wm: '12:00:10', out: [], dropped: 0 }, // no-data batch: the watermark moved; 12:01:20 > 12:00:10
      { batch: 2, wm: '12:00:10', out: [], dropped: 0 }, // bob's timer at 12:03:00
      { batch: 3, wm: '12:01:50', out: ['alice 2 timer 12:01:20 wm 12:01:50'], dropped: 0 }, // 12:01:20 <= 12:01:50: fires
      // carol 11:59:00 <= the previous batch's watermark (12:01:50): dropped. bob 12:02:30: his timer moves to 12:03:30.
      { batch: 4, wm: '12:01:50', out: [], dropped: 1 },
      { batch: 5, wm: '12:02:20', out: [], dropped: 0 }, // no-data batch with 12:02:20: nothing due
      // dan 12:03:40 → timer 12:04:40; bob's old 12:03:00 timer was deleted, not fired.
      { batch: 6, wm: '12:02:20', out: [], dropped: 0 },
      // Watermark 12:03:30 (12:03:40 − 10 s): bob's timer is AT it, not before — it does not fire yet (Spark's strict <).
      { batch: 7, wm: '12:03:30', out: [], dropped: 0 },
      // eve 12:03:41 moves the watermark one second on, to 12:03:31: now bob's 12:03:30 is before it.
      { batch: 8, wm: '12:03:30', out: [], dropped: 0 },
      { batch: 9, wm: '12:03:31', out: ['bob 2 timer 12:03:30 wm 12:03:31'], dropped: 0 },
    ]);
    const last = q.lastProgress!.stateOperators[0]!;
    expect(last.customMetrics).toMatchObject({ numExpiredTimers: 1 });
    expect(last.numRowsTotal).toBe(2); // dan's and eve's clicks (bob's and alice's were cleared)
  });
});

describe('processing time: timers and TTL', () => {
  it('a processing-time timer fires in a batch run for it; a TTL value reads as absent once expired and is removed', async () => {
    class Reminder implements StatefulProcessor<string> {
      seen!: ValueState<number>;
      token!: ValueState<string>;
      handle!: StatefulProcessorHandle;
      init(h: StatefulProcessorHandle): void {
        this.handle = h;
        this.seen = h.getValueState('seen');
        this.token = h.getValueState('token', { ttl: '150 milliseconds' });
      }
      handleInputRows(user: string, rows: Row[], tv: TimerValues): Row[] {
        const hadToken = this.token.exists();
        this.seen.update((this.seen.get() ?? 0) + rows.length);
        if (!hadToken) this.token.update('t');
        this.handle.registerTimer(tv.getCurrentProcessingTimeInMs() + 300);
        return [{ user, event: hadToken ? 'token still valid' : 'new token' }];
      }
      handleExpiredTimer(user: string): Row[] {
        return [{ user, event: `reminder after ${String(this.seen.get())} row(s); token ${this.token.exists() ? 'valid' : 'expired'}` }];
      }
    }
    const s = newSession();
    const input = s.memoryStream('user STRING');
    const df = input.toDF().groupByKey('user').transformWithState(new Reminder(), TimeMode.ProcessingTime, 'update', { outputSchema: 'user STRING, event STRING' });
    const q = await run(s, df, tmp(), 'update', { processingTime: '50 milliseconds' });
    input.addData([{ user: 'alice' }]);
    await q.processAllAvailable();
    // No new rows: the timer (300 ms) brings alice back; by then the token (150 ms TTL) has expired.
    const deadline = Date.now() + 10_000;
    while (s.memoryTable('out').rows.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await q.stop();
    expect(s.memoryTable('out').rows.map((r) => r.event)).toEqual(['new token', 'reminder after 1 row(s); token expired']);
    const fired = q.recentProgress.find((p) => p.stateOperators[0]!.customMetrics?.numExpiredTimers === 1)!;
    expect(fired.numInputRows).toBe(0);
    expect(fired.stateOperators[0]!.customMetrics).toMatchObject({ numValuesRemovedDueToTTLExpiry: 1 });
    expect(q.recentProgress.length).toBe(2); // no empty batch while no timer was due
  });
});

describe('transformWithState rules, with the reasons', () => {
  it('refuses state variables made outside init, timers without a time mode, event time without a watermark', async () => {
    const s = newSession();
    const input = s.memoryStream('user STRING, ts TIMESTAMP');
    const lateVar: StatefulProcessor = {
      handle: undefined as unknown as StatefulProcessorHandle,
      init(h: StatefulProcessorHandle) {
        (this as { handle: StatefulProcessorHandle }).handle = h;
      },
      handleInputRows() {
        (this as unknown as { handle: StatefulProcessorHandle }).handle.getValueState('x');
        return [];
      },
    } as StatefulProcessor;
    let q = await run(s, input.toDF().groupByKey('user').transformWithState(lateVar, 'None', 'update', { outputSchema: 'user STRING' }));
    input.addData([{ user: 'a', ts: t('12:00:00') }]);
    await q.processAllAvailable().catch(() => {});
    expect(q.exception?.message).toMatch(/Cannot create state variable "x" outside init\(\).*Create every state variable in init\(handle\)/);

    const s2 = newSession();
    const input2 = s2.memoryStream('user STRING');
    let h!: StatefulProcessorHandle;
    const timerWithoutClock: StatefulProcessor = { init: (x) => void (h = x), handleInputRows: () => (h.registerTimer(1), []) };
    q = await run(s2, input2.toDF().groupByKey('user').transformWithState(timerWithoutClock, TimeMode.None, 'update', { outputSchema: 'user STRING' }));
    input2.addData([{ user: 'a' }]);
    await q.processAllAvailable().catch(() => {});
    expect(q.exception?.message).toMatch(/operation=registerTimer with invalid timeMode=None/);

    await expect(
      run(newSession(), input.toDF().groupByKey('user').transformWithState({ init() {}, handleInputRows: () => [] }, TimeMode.EventTime, 'append', { outputSchema: 'user STRING' }), tmp(), 'append'),
    ).rejects.toThrow(/Watermark must be specified .* transformWithState/);
    // A TTL counts processing time: refused in the other time modes (Spark 4.0's cannotProvideTTLConfigForTimeMode).
    const s3 = newSession();
    const input3 = s3.memoryStream('user STRING');
    const ttlWithoutClock: StatefulProcessor = { init: (x) => void x.getValueState('v', { ttl: '1 minute' }), handleInputRows: () => [] };
    const q3 = await run(s3, input3.toDF().groupByKey('user').transformWithState(ttlWithoutClock, TimeMode.None, 'update', { outputSchema: 'user STRING' }));
    await q3.processAllAvailable().catch(() => {});
    expect(q3.exception?.message).toMatch(/Cannot provide TTL config for timeMode=None/);
  });

  // Why (review): Spark deletes a fired timer after its handler, and drops every variable's state when init()
  // calls deleteIfExists for a variable no longer declared; the state schema then accepts the removed variable.
  it('a fired timer is deleted after its handler; deleteIfExists in init retires a variable for every key', async () => {
    const checkpoint = tmp();
    const seen: number[][] = [];
    class Twice implements StatefulProcessor<string> {
      h!: StatefulProcessorHandle;
      n!: ValueState<number>;
      old!: ValueState<number>;
      init(h: StatefulProcessorHandle): void {
        this.h = h;
        this.n = h.getValueState('n');
        this.old = h.getValueState('old');
      }
      handleInputRows(user: string, rows: Row[]): Row[] {
        this.n.update(rows.length);
        this.old.update(1);
        this.h.registerTimer(Math.max(...rows.map((r) => (r.ts as Date).getTime())));
        return [];
      }
      handleExpiredTimer(user: string, _tv: TimerValues, info: { getExpiryTimeInMs(): number }): Row[] {
        seen.push(this.h.listTimers());
        this.h.registerTimer(info.getExpiryTimeInMs()); // the same time again: Spark drops it with the fired one
        return [{ user }];
      }
    }
    let s = newSession();
    let input = s.memoryStream('user STRING, ts TIMESTAMP');
    const build = (df: DataFrame, p: StatefulProcessor<string>): DataFrame =>
      df.withWatermark('ts', '0 seconds').groupByKey('user').transformWithState(p, TimeMode.EventTime, 'append', { outputSchema: 'user STRING' });
    let q = await run(s, build(input.toDF(), new Twice()), checkpoint, 'append');
    input.addData([{ user: 'a', ts: t('12:00:00') }]);
    await q.processAllAvailable();
    input.addData([{ user: 'b', ts: t('12:00:05') }]); // watermark 12:00:05 after this batch: a's 12:00:00 fires
    await q.processAllAvailable();
    await q.stop();
    expect(s.memoryTable('out').rows).toEqual([{ user: 'a' }]); // once: the timer re-registered inside was dropped
    expect(seen).toEqual([[t('12:00:00').getTime()]]); // listTimers() in the handler still shows the firing timer
    expect(q.lastProgress!.stateOperators[0]!.numRowsTotal).toBe(4); // n and old for a and b

    // A new version of the processor no longer declares 'old' and retires it in init.
    class Retired extends Twice {
      override init(h: StatefulProcessorHandle): void {
        this.h = h;
        this.n = h.getValueState('n');
        h.deleteIfExists('old');
      }
      override handleInputRows(_user: string, rows: Row[]): Row[] {
        this.n.update(rows.length);
        return [];
      }
    }
    s = newSession();
    input = s.memoryStream('user STRING, ts TIMESTAMP');
    input.addData([{ user: 'a', ts: t('12:00:00') }], [{ user: 'b', ts: t('12:00:05') }]);
    q = await run(s, build(input.toDF(), new Retired()), checkpoint, 'append');
    input.addData([{ user: 'c', ts: t('12:00:06') }]);
    await q.processAllAvailable();
    await q.stop();
    expect(q.exception).toBeNull(); // the removed variable does not fail the state schema check
    expect(q.recentProgress.find((p) => p.numInputRows === 1)!.stateOperators[0]!.numRowsTotal).toBe(3); // n for a, b, c; no 'old'
  });

  it('late rows are dropped whenever the input has a watermark, in any time mode (TransformWithStateExec)', async () => {
    const s = newSession();
    const input = s.memoryStream('user STRING, ts TIMESTAMP');
    const df = input
      .toDF()
      .withWatermark('ts', '0 seconds')
      .groupByKey('user')
      .transformWithState({ init() {}, handleInputRows: (user: unknown) => [{ user }] }, TimeMode.ProcessingTime, 'append', { outputSchema: 'user STRING' });
    const q = await run(s, df, tmp(), 'append');
    input.addData([{ user: 'a', ts: t('12:00:10') }]); // batch 0; the watermark becomes 12:00:10
    await q.processAllAvailable();
    input.addData([{ user: 'b', ts: t('12:00:10') }]); // batch 1 runs with it: it is now the previous batch's
    await q.processAllAvailable();
    input.addData([{ user: 'late', ts: t('12:00:00') }]); // batch 2: behind the previous batch's watermark
    await q.processAllAvailable();
    await q.stop();
    expect(s.memoryTable('out').rows).toEqual([{ user: 'a' }, { user: 'b' }]);
    expect(q.lastProgress!.stateOperators[0]!.numRowsDroppedByWatermark).toBe(1);
  });
});
