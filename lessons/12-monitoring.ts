// %% [markdown]
// # Lesson 12 — Monitoring, and "why is there no output?"
//
// The most frequent complaint about a streaming query is that it runs and writes nothing. The usual causes
// are not bugs: `startingOffsets` is ignored once a checkpoint exists, append mode waits for the watermark,
// rows are late or filtered or unreadable. Spark shows charts and a log; Sluice also says *why*:
// `query.diagnose()` returns findings, most likely first, each with its evidence and what to do, and
// `sluice doctor CHECKPOINT_DIR` gives the same answers for a query that runs elsewhere, or died.
//
// This lesson reproduces the situations one by one and lets `diagnose()` answer each, reads progress as a
// Spark user does, and looks at the live monitor (`startMonitor`, `sluice run --ui`) with its charts and its
// Prometheus metrics.

// %%
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import * as tslab from 'tslab';
import {
  SluiceSession, KafkaAdmin, AckedProducer, connection, col, count, window, from_json, formatFindings, startMonitor, doctor, type Finding,
} from 'sluice';

const conn = connection();
const admin = new KafkaAdmin(conn.kafka);
for (const t of ['lesson12-events', 'lesson12-out']) await admin.recreateTopic(t, 1);
rmSync('checkpoints/lesson12', { recursive: true, force: true });
const producer = new AckedProducer(conn.kafka);
await producer.send(Array.from({ length: 5 }, (_, i) => ({ topic: 'lesson12-events', value: Buffer.from(JSON.stringify({ n: i })) })));
await producer.flush();
const sluice = SluiceSession.builder().appName('lesson12').getOrCreate();
sluice.log = () => {}; // the findings below say what matters
const events = (opts: Record<string, string> = {}) =>
  sluice.readStream.format('kafka').options(conn.kafkaOptions).option('subscribe', 'lesson12-events').options(opts).load();
/** Prints the findings as diagnose() gives them and returns their causes. */
const show = (findings: Finding[]): string[] => {
  console.log(formatFindings(findings));
  return findings.map((f) => f.cause);
};
console.log('5 events in lesson12-events');

// %% [markdown]
// ## 1. "I started the query and nothing happens"
//
// The topic has 5 events. A new query with no `startingOffsets` reads from **latest** (Spark's default for
// streaming queries): only what arrives after it starts.

// %%
const fresh = await events().select(col('value').cast('string').alias('v'))
  .writeStream.format('memory').queryName('lesson12_fresh').option('checkpointLocation', 'checkpoints/lesson12/fresh').start();
await fresh.processAllAvailable();
const freshCauses = show(await fresh.diagnose());
await fresh.stop();

// %% [markdown]
// ## 2. "I set startingOffsets=earliest, and still nothing"
//
// A query reads the topic to its end once. Started again on the same checkpoint with
// `startingOffsets=earliest`, it reads nothing: the option applies only to a query's **first** start; after
// that the checkpoint says where to go on (lesson 03).

// %%
const readAll = () => events({ startingOffsets: 'earliest' }).select(col('value').cast('string').alias('v'))
  .writeStream.format('memory').queryName('lesson12_resumed').option('checkpointLocation', 'checkpoints/lesson12/resumed');
const firstRun = await readAll().trigger({ availableNow: true }).start();
await firstRun.awaitTermination();
console.log(`first run: ${firstRun.recentProgress.reduce((n, p) => n + p.numInputRows, 0)} rows`);
const again = await readAll().start();
await again.processAllAvailable();
const resumedCauses = show(await again.diagnose());
await again.stop();

// %% [markdown]
// The same answer, from the checkpoint alone, after the process is gone — what you run when the query lives
// in another process, a container, or died: `sluice doctor`.

// %%
const doctorRun = spawnSync(process.execPath, ['../bin/sluice.js', 'doctor', 'checkpoints/lesson12/resumed'], { encoding: 'utf8' });
console.log(doctorRun.stdout.replace(/\{"lesson12-events":\{"0":\d+\}\}/g, (m) => m));
const doctorCauses = (await doctor('checkpoints/lesson12/resumed')).findings.map((f) => f.cause);

// %% [markdown]
// ## 3. "My windowed count writes nothing"
//
// Append mode writes a window **once**, when it is final: when the watermark (max event time − delay) passes
// its end. Until then the counts wait in state. Here: 5-minute windows, 10 minutes of delay, clicks at 12:01
// and 12:03. The window [12:00, 12:05) closes when the watermark reaches 12:05, i.e. once an event at
// 12:05 + 10 min = 12:15 or later has arrived.

// %%
const at = (t: string) => new Date(`2026-01-01T${t}Z`);
const clicks = sluice.memoryStream('user STRING, ts TIMESTAMP');
const windows = await clicks.toDF().withWatermark('ts', '10 minutes').groupBy(window(col('ts'), '5 minutes')).agg(count('*').alias('clicks'))
  .writeStream.format('memory').queryName('lesson12_windows').outputMode('append').start();
clicks.addData({ user: 'ada', ts: at('12:01:00') }, { user: 'bob', ts: at('12:03:00') });
await windows.processAllAvailable();
const waiting = await windows.diagnose();
show(waiting);
clicks.addData({ user: 'cy', ts: at('12:15:00') }); // the event the finding names
await windows.processAllAvailable();
const written = sluice.memoryTable('lesson12_windows').rows.map((r) => `${(r.window as { start: Date }).start.toISOString().slice(11, 16)} ${String(r.clicks)}`);
console.log('written now:', written, ' findings now:', (await windows.diagnose()).length);

// %% [markdown]
// ## 4. "Every row disappears": late, or filtered
//
// Rows behind the watermark are dropped by a stateful operator (lesson 11). A filter with a typo removes
// everything. Both are counted in progress, so diagnose() can say which, with the numbers.

// %%
const lateClicks = sluice.memoryStream('ts TIMESTAMP');
const lateQuery = await lateClicks.toDF().withWatermark('ts', '1 minute').groupBy(window(col('ts'), '5 minutes')).agg(count('*').alias('n'))
  .writeStream.format('memory').queryName('lesson12_late').outputMode('update').start();
lateClicks.addData({ ts: at('12:30:00') }); // moves the watermark to 12:29
await lateQuery.processAllAvailable();
lateClicks.addData({ ts: at('12:00:00') }, { ts: at('12:01:00') }); // half an hour behind it
await lateQuery.processAllAvailable();
const lateCauses = show(await lateQuery.diagnose());
await lateQuery.stop();

const words = sluice.memoryStream('word STRING');
const typo = await words.toDF().filter(col('word').eq('Kafka ')) // a trailing space: matches nothing
  .writeStream.format('memory').queryName('lesson12_filtered').start();
words.addData({ word: 'Kafka' }, { word: 'Spark' });
await typo.processAllAvailable();
const filteredCauses = show(await typo.diagnose());
await typo.stop();

// %% [markdown]
// ## 5. "Everything goes to the dead letters", and "the topic does not exist"
//
// A record that cannot be read (here: not JSON, parsed with mode FAILFAST) goes to the dead-letter
// destination, counted as `numDeadLetterRows`. A typo in the topic name fails the query at its first batch.

// %%
const lines = sluice.memoryStream('v STRING');
const parse = await lines.toDF().select(from_json(col('v'), 'n INT', { mode: 'FAILFAST' }).alias('e'))
  .writeStream.format('memory').queryName('lesson12_dead').start();
lines.addData({ v: 'n=1' }, { v: 'n=2' });
await parse.processAllAvailable();
const deadCauses = show(await parse.diagnose());
await parse.stop();

const typoTopic = await sluice.readStream.format('kafka').options(conn.kafkaOptions).option('subscribe', 'lesson12-evnets').load()
  .writeStream.format('memory').queryName('lesson12_missing').start();
await typoTopic.awaitTermination().catch(() => {});
const missingCauses = show(await typoTopic.diagnose());

// %% [markdown]
// ## 6. "The sink cannot deliver"
//
// A Kafka producer sending to a topic that does not exist waits, retries and finally fails with
// `Expiring N record(s)`. Sluice checks the output topics before the query starts, and says it in one
// sentence (`createMissingTopics=true` creates them instead):

// %%
let sinkError = '';
try {
  await events().select(col('value')).writeStream.format('kafka').options(conn.kafkaOptions).option('topic', 'lesson12-ouput')
    .option('checkpointLocation', 'checkpoints/lesson12/sink').start();
} catch (e) {
  sinkError = (e as Error).message;
}
console.log(sinkError);

// %% [markdown]
// ## 7. Reading progress as a Spark user does
//
// Each batch reports a `StreamingQueryProgress` with Spark's field names: what was read (`numInputRows`,
// `sources[].startOffset/endOffset`), how fast (`inputRowsPerSecond` — arrival — against
// `processedRowsPerSecond` — processing; a query whose processing rate stays below its input rate falls
// behind), where the time went (`durationMs`: `latestOffset` asks the broker, `addBatch` reads, transforms
// and writes, `walCommit`/`commitOffsets` write the checkpoint), the watermark (`eventTime`), state
// (`stateOperators`: rows, memory, rows dropped as late) and what the sink got. Sluice adds
// `numDeadLetterRows` and `numFilteredRows`. The windowed query's last batch:

// %%
const p = windows.lastProgress!;
console.log(JSON.stringify({
  batchId: p.batchId, numInputRows: p.numInputRows, eventTime: p.eventTime,
  stateOperators: p.stateOperators.map((o) => ({ operatorName: o.operatorName, numRowsTotal: o.numRowsTotal, numRowsDroppedByWatermark: o.numRowsDroppedByWatermark })),
  sink: p.sink, durationMsKeys: Object.keys(p.durationMs),
}, null, 2));

// %% [markdown]
// ## 8. The live monitor and its metrics
//
// `startMonitor(session)` serves a page on 127.0.0.1 (`sluice run pipeline.ts --ui` does it for a pipeline
// file): per query its status, the findings above, and charts of input vs processing rate, batch duration by
// phase, watermark vs max event time, state rows, late rows and dead letters, updated live. Here it is opened
// in a headless browser while the windowed query gets a few more minutes of clicks; `/metrics` serves the
// same figures to Prometheus, named after Spark's streaming metrics.

// %%
// The monitor's objects stay inside this block: only what the check needs leaves it.
let pagePlotted = 0;
let metrics: string[] = [];
{
  const monitor = await startMonitor(sluice);
  for (const [i, t] of ['12:16:00', '12:19:00', '12:22:00', '12:26:00', '12:31:00', '12:37:00'].entries()) {
    clicks.addData({ user: `u${i}`, ts: at(t) }, { user: `v${i}`, ts: at(t) });
    await windows.processAllAvailable();
  }
  // puppeteer-core drives Debian's chromium (a dev dependency of Sluice: a notebook of your own would `npm i puppeteer-core`).
  // Imported by name at run time: its type declarations are newer than the notebook kernel's TypeScript.
  const puppeteer = (await import('puppeteer-core' as string)).default;
  const browser = await puppeteer.launch({
    executablePath: ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find(existsSync), headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  const page = await browser.newPage();
  await page.setViewport({ width: 1100, height: 900 });
  await page.goto(monitor.url);
  await page.waitForSelector(`#q-${windows.id} .chart canvas`);
  clicks.addData({ user: 'w', ts: at('12:43:00') }); // one more batch while the page is open: it arrives by Server-Sent Events
  await windows.processAllAvailable();
  // The page's code, as text: it runs in the browser (the kernel has no DOM types).
  await page.waitForFunction(`Number(document.querySelector('#q-${windows.id}').dataset.batches) >= 10`);
  pagePlotted = await page.$eval(`#q-${windows.id}`, (el: { dataset: Record<string, string> }) => Number(el.dataset.batches));
  const shot = (await page.$(`#q-${windows.id}`))!;
  tslab.display.png(new Uint8Array(await shot.screenshot()));
  await browser.close();
  metrics = (await (await fetch(`${monitor.url}metrics`)).text()).split('\n').filter((l) => l.includes('query="lesson12_windows"') && /numInputRows|states_rowsTotal|eventTime_watermark/.test(l));
  console.log(metrics.join('\n'));
  await monitor.close();
}
await windows.stop();

// %%
await producer.close();
admin.disconnect();
console.log(`queries still active: ${sluice.streams.active.length}`);

// %% [markdown]
// ## Check
// Each situation gave the cause worked out above: latest with no new data; earliest ignored on a resumed
// checkpoint (and the same from `sluice doctor`); the window [12:00, 12:05) waiting for an event at 12:15, then
// written with 2 clicks; 2 of 3 rows late; every row filtered; every row a dead letter; a failed query with
// its missing topic; the missing output topic refused before start; the monitor plotting every batch, and its
// input counter at 13 (6 × 2 clicks + 1, counted from the monitor's start).

// %%
assert.deepEqual(freshCauses, ['no-new-data']);
assert.deepEqual(resumedCauses, ['starting-offsets-ignored']);
assert.deepEqual(doctorCauses, ['query-stopped', 'starting-offsets-ignored']);
assert.equal(doctorRun.status, 0);
assert.equal(waiting[0]!.cause, 'waiting-for-watermark');
assert.match(waiting[0]!.summary, /ending 2026-01-01T12:05:00\.000Z, is written once an event with time ≥ 2026-01-01T12:15:00\.000Z/);
assert.deepEqual(written, ['12:00 2']);
assert.deepEqual(lateCauses, ['rows-late']);
assert.deepEqual(filteredCauses, ['rows-filtered']);
assert.deepEqual(deadCauses, ['dead-letters']);
assert.deepEqual(missingCauses, ['query-failed', 'topic-missing']);
assert.match(sinkError, /lesson12-ouput/);
assert.ok(pagePlotted >= 10, `the page plotted ${pagePlotted} batches`);
// Counted from the monitor's start: 6 × 2 clicks + 1 (the 3 clicks before it were read before it listened).
assert.ok(metrics.some((l) => /sluice_streaming_numInputRows_total\{query="lesson12_windows"\} 13$/.test(l)), metrics.join('\n'));
console.log('lesson 12 checks passed');
