/** The Kafka sink's row → record rules that need no broker (src/sinks/kafka.ts kafkaRecordMaker). */
import { describe, expect, it } from 'vitest';
import { exactlyOnceOption, kafkaRecordMaker } from '../../src/sinks/kafka.js';
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

describe('exactlyOnce option', () => {
  const base = { 'kafka.bootstrap.servers': '127.0.0.1:1', topic: 'out' };
  it('is off by default, on with "true", refused otherwise', () => {
    expect(exactlyOnceOption(base)).toBe(false);
    expect(exactlyOnceOption({ ...base, exactlyOnce: 'TRUE' })).toBe(true);
    expect(() => exactlyOnceOption({ ...base, exactlyOnce: 'yes' })).toThrow('Option exactlyOnce must be "true" or "false", got "yes"');
  });
  // Why: a transactional id alone is the common wrong answer (issue 11); with exactlyOnce, a user id shared by
  // two queries would make each fence the other, and it leaked into the dead-letter producer, which then
  // refused every record (review of the first version).
  it('refuses kafka.transactional.id, with or without exactlyOnce, saying why', () => {
    expect(() => exactlyOnceOption({ ...base, 'kafka.transactional.id': 'q' })).toThrow(/alone does not make the Kafka sink exactly-once[\s\S]*nothing would tie a transaction to a batch/);
    expect(() => exactlyOnceOption({ ...base, exactlyOnce: 'true', 'kafka.transactional.id': 'q' })).toThrow(/Sluice sets the transactional id itself — sluice-<query id>/);
  });
  it('refuses producer settings transactions cannot work with, each with its reason', () => {
    expect(() => exactlyOnceOption({ ...base, exactlyOnce: 'true', 'kafka.acks': '1', 'kafka.enable.idempotence': 'false' })).toThrow(
      'exactlyOnce=true cannot work with kafka.acks=1 (a transaction needs every record on every in-sync replica: acks=all); kafka.enable.idempotence=false (transactions are built on the idempotent producer). Remove these options.',
    );
    expect(exactlyOnceOption({ ...base, exactlyOnce: 'true', 'kafka.acks': 'all' })).toBe(true);
    expect(exactlyOnceOption({ ...base, 'kafka.acks': '1' })).toBe(false); // at-least-once may trade durability
  });
});
