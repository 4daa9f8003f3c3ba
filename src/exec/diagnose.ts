/**
 * "Why is there no output?" — what `query.diagnose()` answers (issue 13). A pure function of a snapshot of
 * the query (its state, progress history, sources' answers, watermark, operators' pending groups), so that
 * each cause can be reproduced and asserted on, and the same rules can serve `sluice doctor` on a checkpoint.
 *
 * Findings come most likely first: a failed or stopped query, then what keeps data from coming in (a topic
 * that does not exist, a pattern that matches nothing, a checkpoint already past the data, no data since
 * `latest`), then what keeps rows that came in from coming out (append mode waiting for the watermark, every
 * row late, every row filtered, every row a dead letter), then what slows it (a long trigger interval).
 * Each names its evidence — counts, offsets, times — and what to do.
 */
import type { Offset } from '../checkpoint/checkpoint.js';
import type { OutputMode } from '../sinks/sink.js';
import type { SourceInspection } from '../sources/source.js';
import type { PendingOutput } from './operators/statefulOperator.js';
import type { StreamingQueryProgress } from './progress.js';
import type { Trigger } from './trigger.js';

export type DiagnosisCause =
  | 'checkpoint-damaged'
  | 'query-failed'
  | 'query-stopped'
  | 'batch-stalled'
  | 'topic-missing'
  | 'pattern-matches-nothing'
  | 'starting-offsets-ignored'
  | 'no-new-data'
  | 'waiting-for-watermark'
  | 'rows-late'
  | 'rows-filtered'
  | 'dead-letters'
  | 'no-output'
  | 'slow-trigger'
  | 'source-unreachable';

/** One answer to "why is there no output?": what, the evidence, and what to do. */
export interface Finding {
  cause: DiagnosisCause;
  summary: string;
  evidence: string[];
  action: string;
}

/** What diagnose() looks at (StreamingQuery.diagnoseSnapshot, or a checkpoint for `sluice doctor`). */
export interface DiagnosisSnapshot {
  name: string;
  active: boolean;
  exception?: string;
  trigger: Trigger;
  outputMode: OutputMode;
  /** Recent progress, oldest first. */
  progress: StreamingQueryProgress[];
  sources: Array<{
    description: string;
    inspection?: SourceInspection;
    /** Where the query resumed, when it started from an existing checkpoint (its last committed batch's end). */
    resumedAt?: Offset;
    /** Where the next batch starts: the last batch's end, or where the query started. */
    position?: Offset;
  }>;
  /**
   * The watermark the next batch runs with, each withWatermark's delay, and with several inputs the policy
   * that combines them (min: the slowest input holds it); undefined without a watermark.
   */
  watermark?: { nextMs: number; delaysMs: number[]; policy?: 'min' | 'max' };
  /** Groups the stateful operators hold until the watermark passes them. */
  pending: PendingOutput[];
  /** The batch running now, if one is: its id, how long it has run, and the query's status message. */
  running?: { batchId: number; sinceMs: number; status: string };
}

/** A batch running this long, and this many times its usual duration, is reported as stalled. */
const STALLED_MIN_MS = 30_000;
const STALLED_FACTOR = 5;

/**
 * What the aggregations held, as the last progress says, when their state cannot be asked (a stopped query,
 * `sluice doctor`): how many groups, not which window is first. Nothing without a watermark.
 */
export function pendingFromProgress(last: StreamingQueryProgress | undefined, watermarked: boolean): PendingOutput[] {
  if (!watermarked) return [];
  return (last?.stateOperators ?? []).filter((o) => o.operatorName === 'stateStoreSave').map((o) => ({ rows: o.numRowsTotal }));
}

const iso = (ms: number): string => new Date(ms).toISOString();
const json = (o: unknown): string => JSON.stringify(o);
const sum = (ps: StreamingQueryProgress[], f: (p: StreamingQueryProgress) => number): number => ps.reduce((n, p) => n + f(p), 0);
const duration = (ms: number): string => (ms % 60_000 === 0 ? `${ms / 60_000} min` : ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`);

/**
 * Records a batch could read now: `latest` beyond `position`, partition by partition; a partition the position
 * does not know (new since) counts from its earliest offset still kept.
 */
export function ahead(position: Offset, latest: Offset, earliest?: Offset): number {
  type P = Record<string, Record<string, number>>;
  let n = 0;
  for (const [topic, parts] of Object.entries(latest as P)) {
    for (const [p, end] of Object.entries(parts)) n += Math.max(0, end - ((position as P)[topic]?.[p] ?? (earliest as P | undefined)?.[topic]?.[p] ?? 0));
  }
  return n;
}

export function diagnose(s: DiagnosisSnapshot): Finding[] {
  const out: Finding[] = [];
  const withData = s.progress.filter((p) => p.numInputRows > 0);
  const input = sum(withData, (p) => p.numInputRows);
  const output = sum(s.progress, (p) => p.sink.numOutputRows);
  const batches = s.progress.length ? `batches ${s.progress[0]!.batchId}–${s.progress[s.progress.length - 1]!.batchId}` : 'no batch yet';

  if (s.exception) {
    out.push({
      cause: 'query-failed',
      summary: `The query ${s.name} failed and runs no more.`,
      evidence: [s.exception],
      action: 'Fix what the error names, then start the query again on the same checkpoint: it resumes after its last committed batch.',
    });
  } else if (!s.active) {
    out.push({
      cause: 'query-stopped',
      summary: `The query ${s.name} was stopped (stop(), or a Trigger.Once/AvailableNow run that read everything there was).`,
      evidence: [`last batch: ${s.progress.length ? s.progress[s.progress.length - 1]!.batchId : 'none'}`],
      action: 'Start it again on the same checkpoint to go on from where it stopped.',
    });
  }

  if (s.running) {
    const durations = s.progress.map((p) => p.batchDuration).sort((a, b) => a - b);
    const usual = durations.length ? durations[Math.floor(durations.length / 2)]! : 0;
    if (s.running.sinceMs >= Math.max(STALLED_MIN_MS, STALLED_FACTOR * usual)) {
      out.push({
        cause: 'batch-stalled',
        summary: `Batch ${s.running.batchId} has been running for ${duration(Math.round(s.running.sinceMs / 1000) * 1000)}${usual ? `; batches usually take ${duration(usual)}` : ''}.`,
        evidence: [`status: ${s.running.status}`],
        action:
          'A sink that cannot deliver waits: the Kafka producer keeps a record for message.timeout.ms (5 min) while the broker or the ' +
          'output topic is unreachable, then fails the batch ("Message timed out"); a foreachBatch function may be waiting on a ' +
          'service; a source may wait for records its offsets promise (kafkaConsumer.pollTimeoutMs, 2 min). Check the broker, the ' +
          "output topic and what foreachBatch calls; the query's log says which.",
      });
    }
  }

  for (const src of s.sources) {
    const i = src.inspection;
    if (!i) continue;
    if (i.missingTopics?.length) {
      out.push({
        cause: 'topic-missing',
        summary: `${src.description} reads ${i.missingTopics.map((t) => `"${t}"`).join(', ')}, which ${i.missingTopics.length > 1 ? 'do' : 'does'} not exist.`,
        evidence: [`missing: ${i.missingTopics.join(', ')}`],
        action: `Create ${i.missingTopics.length > 1 ? 'them' : 'it'} (sluice topics create ${i.missingTopics[0]}), or correct the name in subscribe.`,
      });
    }
    if (i.pattern !== undefined && !i.matchedTopics?.length) {
      out.push({
        cause: 'pattern-matches-nothing',
        summary: `subscribePattern "${i.pattern}" matches no topic: the query has nothing to read.`,
        evidence: ['The pattern is a Java-style regular expression matched against whole topic names (e.g. "events-.*", not "events-*").'],
        action: 'Correct the pattern, or create a topic it matches: the query picks up new matching topics as they appear.',
      });
    }
    // Before its first batch is planned a query has no position: nothing to compare yet.
    if (i.latest && src.position !== undefined && ahead(src.position, i.latest, i.earliest) === 0 && withData.length === 0) {
      // Only an option the user gave, and one that asked for more than new records, can have been "ignored".
      if (src.resumedAt !== undefined && i.startingOffsets !== undefined && i.startingOffsets !== 'latest') {
        out.push({
          cause: 'starting-offsets-ignored',
          summary:
            `startingOffsets=${i.startingOffsets} is ignored: the query resumed from its checkpoint, which already read ${src.description} ` +
            'to its end. startingOffsets applies only to the first start of a query on a new checkpoint.',
          evidence: [`resumed at ${json(src.resumedAt)}`, `latest offsets now ${json(i.latest)}`],
          action:
            'To read the topic again, start the query with a new checkpointLocation (the old one keeps the old position). ' +
            'Otherwise it is waiting for new records: produce some.',
        });
      } else {
        const fromLatest = src.resumedAt === undefined && (i.startingOffsets ?? 'latest') === 'latest';
        out.push({
          cause: 'no-new-data',
          summary:
            `No new data in ${src.description} since ` +
            (fromLatest
              ? `the query started at the latest offsets (startingOffsets=latest${i.startingOffsets === undefined ? ', the default' : ''}).`
              : src.resumedAt !== undefined && !withData.length && !s.progress.length
                ? 'the query resumed from its checkpoint.'
                : 'the last batch.'),
          evidence: [`position ${json(src.position)}`, `latest offsets now ${json(i.latest)}`],
          action: fromLatest
            ? "Produce new records, or read what was there before: .option('startingOffsets', 'earliest') with a new checkpointLocation."
            : 'Produce new records: the query reads them at its next trigger.',
        });
      }
    }
  }

  // What keeps rows that came in from coming out. Waiting for the watermark first (nothing is lost, the
  // rows are held); then what removed rows, the largest share first.
  const dropped = sum(withData, (p) => p.stateOperators.reduce((n, o) => n + o.numRowsDroppedByWatermark, 0));
  const dead = sum(withData, (p) => p.numDeadLetterRows);
  const filtered = sum(withData, (p) => p.numFilteredRows);
  const pending = s.pending.filter((p) => p.rows > 0);
  if (input > 0 && output === 0 && s.outputMode === 'append' && pending.length && s.watermark) {
    const oldest = Math.min(...pending.map((p) => p.oldestEventTimeMs ?? Infinity));
    const delays = s.watermark.delaysMs;
    const delay = delays[0]!;
    const rows = pending.reduce((n, p) => n + p.rows, 0);
    const maxEvent = s.progress.map((p) => p.eventTime.max).filter((m): m is string => !!m).sort().pop();
    let summary: string;
    if (!Number.isFinite(oldest)) {
      summary = `Append mode writes a window only once the watermark passes its end; ${rows} group(s) are waiting for it.`;
    } else if (s.watermark.nextMs >= oldest) {
      // The data has moved the watermark past it: the batch that evicts and writes it runs at the next trigger.
      summary = `The watermark (${iso(s.watermark.nextMs)}) has passed the end of the first window (${iso(oldest)}): the next trigger writes it.`;
    } else if (delays.length === 1) {
      summary =
        `Append mode writes a window only once the watermark passes its end: the first, ending ${iso(oldest)}, is written once an event ` +
        `with time ≥ ${iso(oldest + delay)} (its end + the ${duration(delay)} delay) has arrived.`;
    } else {
      // Several watermarked inputs: the global watermark is their minimum (or maximum): one input's events are not enough.
      summary =
        `Append mode writes a window only once the watermark passes its end (the first ends ${iso(oldest)}). The query has ${delays.length} ` +
        `watermarked inputs and its watermark is their ${s.watermark.policy === 'max' ? 'maximum' : 'minimum: every input must move past the end + its own delay; an input that has sent nothing holds it back'} ` +
        `(delays ${delays.map(duration).join(', ')}).`;
    }
    out.push({
      cause: 'waiting-for-watermark',
      summary,
      evidence: [
        `${rows} group(s) held in state, ${input} input rows in ${batches}, no output yet`,
        `watermark for the next batch: ${iso(s.watermark.nextMs)}${delays.length === 1 ? ` (max event time − ${duration(delay)})` : ''}`,
        ...(maxEvent ? [`max event time seen: ${maxEvent}`] : []),
      ],
      action:
        'Nothing is wrong: a window is final only then. For results before it closes use outputMode("update") (each batch writes the ' +
        'groups it changed), or a shorter withWatermark delay (later rows are then dropped as late). In a test, send an event past the ' +
        'window end + delay.',
    });
  }
  const removed: Array<[number, Finding]> = [];
  if (dropped > 0) {
    removed.push([dropped, {
      cause: 'rows-late',
      summary: `${dropped === input ? 'Every row was' : `${dropped} of ${input} rows were`} dropped as late: their event time was behind the watermark.`,
      evidence: [`${dropped} of ${input} input rows dropped by the watermark (numRowsDroppedByWatermark) in ${batches}`, ...(s.watermark ? [`watermark: ${iso(s.watermark.nextMs)}`] : [])],
      action:
        'Check the event-time column (seconds read as milliseconds, or a wrong time zone, put events far in the past), or raise the ' +
        "withWatermark delay. With .option('lateEvents.topic', …) the dropped rows are kept to look at.",
    }]);
  }
  if (filtered > 0 && output === 0) {
    removed.push([filtered, {
      cause: 'rows-filtered',
      summary: `${filtered === input ? 'Every row was' : `${filtered} of ${input} rows were`} removed before the sink (a filter, an inner join with no match, a flatMap returning nothing).`,
      evidence: [`${filtered} of ${input} input rows filtered out (numFilteredRows) in ${batches}`],
      action: 'Check the filter against a few input rows: the same filter on a static copy (session.read) shows which rows it keeps.',
    }]);
  }
  if (dead > 0) {
    removed.push([dead, {
      cause: 'dead-letters',
      summary: `${dead === input ? 'Every row went' : `${dead} of ${input} rows went`} to the dead-letter destination instead of the output.`,
      evidence: [`${dead} of ${input} input rows were dead letters (numDeadLetterRows) in ${batches}`],
      action: 'Read a few dead letters (their headers or fields say the reason and the source offset): a wrong schema, subject or format is the usual cause.',
    }]);
  }
  out.push(...removed.sort((a, b) => b[0] - a[0]).map(([, f]) => f));
  if (input > 0 && output === 0 && !out.some((f) => ['waiting-for-watermark', 'rows-late', 'rows-filtered', 'dead-letters', 'query-failed'].includes(f.cause))) {
    const held = (s.progress[s.progress.length - 1]?.stateOperators ?? []).reduce((n, o) => n + o.numRowsTotal, 0);
    out.push({
      cause: 'no-output',
      summary: `${input} rows came in and none went out, for no reason the counters name.`,
      evidence: [
        `${input} input rows in ${batches}, 0 output rows`,
        held ? `${held} row(s) held in state: a session window, a join or a timeout may be waiting for the watermark or for time` : 'nothing held in state',
      ],
      action:
        'Rows removed between source and sink by a stateful plan are not counted (a filter before an aggregation, an inner join with no ' +
        'match): run the same transformations on a static copy (session.read) and look at each step. explain() shows the plan.',
    });
  }

  if (s.active && s.trigger.kind === 'processingTime' && s.trigger.intervalMs >= 60_000) {
    const last = s.progress[s.progress.length - 1];
    out.push({
      cause: 'slow-trigger',
      summary: `The trigger runs a batch every ${duration(s.trigger.intervalMs)}: new data waits up to that long.`,
      evidence: [last ? `last batch at ${last.timestamp}; next at ${iso(Date.parse(last.timestamp) + s.trigger.intervalMs)}` : 'no batch yet'],
      action: "Use a shorter interval (trigger({ processingTime: '5 seconds' })), or none: a batch then starts as soon as the last one ends.",
    });
  }
  return out;
}

/** The findings as text: one block per finding, most likely first. */
export function formatFindings(findings: Finding[]): string {
  if (!findings.length) return 'No problem found.\n';
  return findings
    .map((f, i) => `${i + 1}. [${f.cause}] ${f.summary}\n${f.evidence.map((e) => `   - ${e}\n`).join('')}   → ${f.action}\n`)
    .join('\n');
}
