/** Source formats by name: how to connect them (their schemas: sources/schema.ts). */
import type { SourceSpec } from '../plan/logical.js';
import { KafkaSource } from './kafka.js';
import { RateSource } from './rate.js';
import { unknownFormat } from './schema.js';
import type { Source } from './source.js';

export { sourceSchema } from './schema.js';

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
