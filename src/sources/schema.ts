/**
 * Source formats' schemas, known without connecting. Kept apart from the sources themselves so that what
 * only analyzes a plan (a task worker thread) does not load the Kafka client's native module, which can be
 * loaded by one thread of a process only.
 */
import { AnalysisError } from '../expr/compile.js';
import type { SourceSpec } from '../plan/logical.js';
import { ArrayType, BinaryType, IntegerType, LongType, StringType, StructType, TimestampType } from '../types/index.js';
import { RateSource } from './rate.js';

export const FORMATS = ['kafka', 'rate', 'memory'];

export function unknownFormat(format: string): never {
  throw new AnalysisError(`Unknown streaming source format "${format}". Sluice reads: ${FORMATS.join(', ')}.`);
}

/** The Kafka source's fixed columns (Spark's), with `headers` when includeHeaders is set. */
export function kafkaSchema(includeHeaders: boolean): StructType {
  let s = new StructType()
    .add('key', BinaryType)
    .add('value', BinaryType)
    .add('topic', StringType)
    .add('partition', IntegerType)
    .add('offset', LongType)
    .add('timestamp', TimestampType)
    .add('timestampType', IntegerType);
  if (includeHeaders) {
    s = s.add('headers', new ArrayType(new StructType().add('key', StringType).add('value', BinaryType)));
  }
  return s;
}

export function sourceSchema(spec: SourceSpec): StructType {
  if (spec.instance) return spec.instance.schema;
  switch (spec.format) {
    case 'kafka':
      if (spec.userSchema) {
        throw new AnalysisError(
          'The Kafka source has a fixed schema (key, value, topic, partition, offset, timestamp, timestampType); ' +
            '.schema() cannot change it. Parse the value instead: from_json(col("value").cast("string"), schema) or fromAvro(col("value"), …).',
        );
      }
      return kafkaSchema(spec.options.includeHeaders === 'true');
    case 'rate':
      return new RateSource(spec.options).schema;
    default:
      return unknownFormat(spec.format);
  }
}
