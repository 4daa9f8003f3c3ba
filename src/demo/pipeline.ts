/**
 * The demo pipeline (DESIGN §1 shape): Avro + registry in → parse, filter, derive → Avro + registry out,
 * with a dead-letter topic for records that cannot be decoded.
 */
import type { SluiceSession } from '../api/session.js';
import type { DataStreamWriter } from '../api/writer.js';
import type { TriggerOptions } from '../exec/trigger.js';
import { col, hour, lit, struct, to_date, when } from '../expr/functions.js';
import { fromAvro, toAvro } from '../serde/avro.js';
import type { RegistryConfig } from '../serde/registry.js';

export interface DemoPipelineOptions {
  bootstrapServers: string;
  registry: RegistryConfig;
  inputTopic: string;
  outputTopic: string;
  deadLetterTopic: string;
  checkpointLocation: string;
  trigger?: TriggerOptions;
  maxOffsetsPerTrigger?: number;
  /** Extra `kafka.*` options (security settings for a real cluster). */
  kafkaOptions?: Record<string, string>;
}

/** Event categories derived from event_type. */
export const CATEGORIES = { commerce: ['add_to_cart', 'purchase'], account: ['login', 'logout'] } as const;

export function demoPipeline(session: SluiceSession, o: DemoPipelineOptions): DataStreamWriter {
  const kafka = { 'kafka.bootstrap.servers': o.bootstrapServers, ...(o.kafkaOptions ?? {}) };
  let reader = session.readStream.format('kafka').options(kafka).option('subscribe', o.inputTopic).option('startingOffsets', 'earliest');
  if (o.maxOffsetsPerTrigger) reader = reader.option('maxOffsetsPerTrigger', o.maxOffsetsPerTrigger);
  const events = reader
    .load()
    .select(col('key'), fromAvro(col('value'), { registry: o.registry, subject: `${o.inputTopic}-value` }).alias('e'))
    .select('key', 'e.*');

  const processed = events
    .filter(col('user_id').isNotNull().and(col('timestamp').isNotNull()))
    .withColumn('event_hour', hour(col('timestamp')))
    .withColumn('event_date', to_date(col('timestamp')))
    .withColumn('is_mobile', col('device_type').isin('mobile', 'tablet'))
    .withColumn(
      'event_category',
      when(col('event_type').isin(...CATEGORIES.commerce), lit('commerce'))
        .when(col('event_type').isin(...CATEGORIES.account), lit('account'))
        .otherwise(lit('engagement')),
    );

  return processed
    .select(
      col('key'),
      toAvro(struct('user_id', 'event_type', 'timestamp', 'session_id', 'country', 'device_type', 'event_hour', 'event_date', 'is_mobile', 'event_category'), {
        registry: o.registry,
        subject: `${o.outputTopic}-value`,
        recordName: 'ProcessedUserEvent',
        recordNamespace: 'sluice.examples',
      }).alias('value'),
    )
    .writeStream.format('kafka')
    .options(kafka)
    .option('topic', o.outputTopic)
    .option('deadLetter.topic', o.deadLetterTopic)
    .option('checkpointLocation', o.checkpointLocation)
    .outputMode('append')
    .queryName('demo')
    .trigger(o.trigger ?? { processingTime: '1 second' });
}
