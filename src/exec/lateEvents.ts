/**
 * Late events: rows a stateful operator drops because the watermark has passed them. With
 * `option('lateEvents.topic', …)` they are written to a Kafka topic (JSON value, the watermark at drop
 * time and the operator in headers) instead of vanishing — without keeping a copy of all events.
 */
import { KafkaSideTopicWriter, headerList } from './deadLetter.js';
import type { LateRow } from './operators/statefulOperator.js';

export const LATE_HEADERS = {
  watermark: 'sluice.late.watermark',
  operator: 'sluice.late.operator',
  query: 'sluice.query.id',
  batch: 'sluice.batch.id',
} as const;

export class KafkaLateEventsWriter extends KafkaSideTopicWriter {
  async write(batchId: number, rows: LateRow[]): Promise<void> {
    if (!rows.length) return;
    await this.sendAll(
      rows.map(({ row, operator, watermarkMs }) => ({
        topic: this.topic,
        value: Buffer.from(
          JSON.stringify(row, (_k, v) => (v && typeof v === 'object' && v.type === 'Buffer' && Array.isArray(v.data) ? Buffer.from(v.data).toString('base64') : v)),
        ),
        headers: headerList({
          [LATE_HEADERS.watermark]: new Date(watermarkMs).toISOString(),
          [LATE_HEADERS.operator]: operator,
          [LATE_HEADERS.query]: this.queryId,
          [LATE_HEADERS.batch]: String(batchId),
        }),
      })),
    );
  }
}
