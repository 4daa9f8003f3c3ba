/**
 * Batch markers of the exactly-once Kafka sink: one record per batch, "query Q wrote batch N", sent in the
 * batch's own transaction. It is visible to a read_committed reader exactly when the batch's output is, so
 * after a crash the last committed marker says which batches are already in Kafka (ARCHITECTURE.md,
 * "Exactly-once to Kafka").
 *
 * Each query has its own marker topic (`__sluice_batches_<queryId>` unless `exactlyOnce.markerTopic` names
 * one): one partition, compacted, written by that query's transactional producer only. So its end is never
 * held back by another writer's open transaction, and after `initTransactions` (which ends any transaction
 * a crashed run left open) its last record is the last committed marker.
 */
import type { KafkaAdmin, KafkaConfig, OutgoingRecord, PartitionOffsets } from '../kafka/client.js';
import { KafkaError, RangeReader } from '../kafka/client.js';

export interface BatchMarker {
  queryId: string;
  batchId: number;
  /**
   * What the batch read (offsets/N's end offsets and start, as JSON), so that a batch N planned again over
   * other offsets is not taken for the one in Kafka. Null when the checkpoint had no offsets/N (never, in a query).
   */
  offsets: string | null;
  /** Output records written in the batch's transaction (the marker excluded). */
  records: number;
  transactionalId: string;
  writtenAt: string;
}

/** The marker topic of a query, unless the user named one. Starts with `__`, as Kafka's internal topics do (sluice topics hides them). */
export const markerTopicOf = (queryId: string): string => `__sluice_batches_${queryId}`;

/** Creates the marker topic unless it exists: one partition, compacted (only the last marker of the query matters). */
export async function ensureMarkerTopic(admin: KafkaAdmin, topic: string): Promise<boolean> {
  return admin.ensureTopic(topic, 1, -1, { 'cleanup.policy': 'compact' });
}

export function markerRecord(topic: string, m: BatchMarker): OutgoingRecord {
  return { topic, partition: 0, key: Buffer.from(m.queryId), value: Buffer.from(JSON.stringify(m)) };
}

function parseMarker(value: Buffer | null): BatchMarker | undefined {
  if (!value) return undefined;
  try {
    const m = JSON.parse(value.toString('utf8')) as Partial<BatchMarker>;
    return typeof m.queryId === 'string' && Number.isInteger(m.batchId) ? (m as BatchMarker) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The last marker of `queryId` in `topic` that a read_committed reader sees, or undefined if it has none.
 * Call it after initTransactions: no transaction of this query is open then, so the partition's last stable
 * offset is its end. Reads backwards from the end in growing windows (a commit leaves a control record after
 * each marker, and compaction leaves holes), so the cost does not grow with the query's age.
 */
export async function lastCommittedMarker(conf: KafkaConfig, admin: KafkaAdmin, topic: string, queryId: string): Promise<BatchMarker | undefined> {
  const tp = [{ topic, partition: 0 }];
  const { from, end } = await settledEnd(admin, topic, tp);
  const reader = new RangeReader({ ...conf, 'isolation.level': 'read_committed' }, 60_000);
  try {
    for (let window = 64, hi = end; hi > from; hi -= window, window *= 8) {
      const lo = Math.max(from, hi - window);
      const records = await reader.read({ [topic]: { '0': lo } }, { [topic]: { '0': hi } });
      let last: BatchMarker | undefined;
      for (const r of records) {
        const m = r.key?.toString('utf8') === queryId ? parseMarker(r.value) : undefined;
        if (r.key?.toString('utf8') === queryId && !m && r.value !== null) {
          throw new KafkaError(`The marker at ${topic}-0 offset ${r.offset} is not a Sluice batch marker: is "${topic}" used by something else? Name another with option exactlyOnce.markerTopic.`);
        }
        if (m && (!last || m.batchId > last.batchId)) last = m;
      }
      if (last) return last;
    }
    return undefined;
  } finally {
    await reader.close();
  }
}

/** librdkafka's code for a topic or partition the broker does not know (yet: just after it was created). */
const UNKNOWN_TOPIC_OR_PARTITION = 3;
/** How long the marker partition's end may be held back by another producer's open transaction before the start fails. */
const SETTLE_MS = 60_000;

/**
 * The marker partition's first offset and its end, once no transaction is open on it: its last stable offset
 * equals its high watermark. Only this query writes its own marker topic, and after initTransactions none of
 * its transactions is open; a marker topic shared with another query (exactlyOnce.markerTopic) may hold that
 * query's open transaction, which would hide later committed markers: wait for it, then refuse.
 */
async function settledEnd(admin: KafkaAdmin, topic: string, tp: Array<{ topic: string; partition: number }>): Promise<{ from: number; end: number }> {
  const deadline = Date.now() + SETTLE_MS;
  let answer: [PartitionOffsets, { stable: PartitionOffsets; settled: boolean }];
  for (;;) {
    try {
      answer = await Promise.all([admin.listOffsets(tp, 'earliest'), admin.stableEnd(tp, Math.max(0, deadline - Date.now()))]);
      break;
    } catch (e) {
      // Just created: the partition's leader may not be known yet.
      const code = ((e as { cause?: { code?: number } }).cause ?? (e as { code?: number }))?.code;
      if (code !== UNKNOWN_TOPIC_OR_PARTITION || Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  const [earliest, { stable, settled }] = answer;
  const end = stable[topic]?.['0'] ?? 0;
  if (!settled) {
    throw new KafkaError(
      `The marker topic ${topic} has a transaction open from offset ${end} that this query did not leave (its own were ended by ` +
        `initTransactions) and that stayed open ${SETTLE_MS / 1000} s: its committed markers after that offset cannot be read. Is ` +
        'exactlyOnce.markerTopic shared with another query? Give each query its own (the default, __sluice_batches_<query id>).',
    );
  }
  return { from: earliest[topic]?.['0'] ?? 0, end };
}
