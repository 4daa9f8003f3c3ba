/** The Kafka sink's row → record rules that need no broker (src/sinks/kafka.ts kafkaRecordMaker). */
import { describe, expect, it } from 'vitest';
import { kafkaRecordMaker } from '../../src/sinks/kafka.js';
import { parseSchema } from '../../src/types/index.js';

describe('Kafka sink records', () => {
  // Why: a row's topic column won over the "topic" option, so a Kafka source's batch written back as it is
  // (it carries the topic it came from) went to its own input topic. Spark: "topic" option "overrides any
  // topic column that may exist in the data" (Structured Streaming + Kafka guide).
  it('the topic option overrides a topic column; without the option the column decides', () => {
    const schema = parseSchema('key STRING, value STRING, topic STRING');
    const row = { key: 'k', value: 'v', topic: 'input-topic' };
    expect(kafkaRecordMaker(schema, 'output-topic')(row).topic).toBe('output-topic');
    expect(kafkaRecordMaker(schema, undefined)(row).topic).toBe('input-topic');
  });
});
