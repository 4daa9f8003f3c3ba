/** Source formats by name: their schema (known without connecting) and how to connect them. */
import { AnalysisError } from '../expr/compile.js';
import type { SourceSpec } from '../plan/logical.js';
import type { StructType } from '../types/index.js';
import { KafkaSource, kafkaSchema } from './kafka.js';
import { RateSource } from './rate.js';
import type { Source } from './source.js';

const FORMATS = ['kafka', 'rate', 'memory'];

function unknownFormat(format: string): never {
  throw new AnalysisError(`Unknown streaming source format "${format}". Sluice reads: ${FORMATS.join(', ')}.`);
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

export function createSource(spec: SourceSpec): Source {
  if (spec.instance) return spec.instance;
  switch (spec.format) {
    case 'kafka':
      return new KafkaSource(spec.options);
    case 'rate':
      return new RateSource(spec.options);
    default:
      return unknownFormat(spec.format);
  }
}
