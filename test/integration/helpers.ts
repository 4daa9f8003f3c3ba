/** Shared helpers for integration tests on the real stack started by globalSetup. */
import avro from 'avsc';
import { inject } from 'vitest';
import { generateEvents, GeneratorOptions, UserEvent } from '../../src/demo/events.js';
import { KafkaAdmin, KafkaRecord, readTopic } from '../../src/kafka/client.js';
import { registryClient } from '../../src/serde/registry.js';
import { unframe } from '../../src/serde/wireformat.js';

export const bootstrapServers = (): string => inject('bootstrapServers');
export const registry = (): { url: string } => ({ url: inject('registryUrl') });
export const kafka = (): { 'bootstrap.servers': string } => ({ 'bootstrap.servers': bootstrapServers() });

let n = 0;
/** Fresh topic names for one test: input, output, dead letters. */
export async function freshTopics(label: string, partitions = 3): Promise<{ input: string; output: string; dlq: string }> {
  const id = `${label}-${process.pid}-${Date.now()}-${n++}`;
  const t = { input: `in-${id}`, output: `out-${id}`, dlq: `dlq-${id}` };
  const admin = new KafkaAdmin(kafka());
  try {
    for (const name of Object.values(t)) await admin.createTopic(name, partitions);
  } finally {
    admin.disconnect();
  }
  return t;
}

/** Reads a topic and decodes its Confluent-framed Avro values with their registered writer schemas. */
export async function readAvro(topic: string): Promise<Array<{ record: KafkaRecord; value: Record<string, unknown> }>> {
  const records = await readTopic(kafka(), topic);
  const client = registryClient(registry());
  const types = new Map<number, avro.Type>();
  const out = [];
  for (const r of records) {
    const { schemaId, payload } = unframe(r.value);
    if (!types.has(schemaId)) types.set(schemaId, avro.Type.forSchema(JSON.parse((await client.getById(schemaId)).schema)));
    out.push({ record: r, value: { ...(types.get(schemaId)!.fromBuffer(payload) as Record<string, unknown>) } });
  }
  return out;
}

export function headersOf(r: KafkaRecord): Record<string, string> {
  return Object.fromEntries((r.headers ?? []).flatMap((h) => Object.entries(h).map(([k, v]) => [k, v.toString()])));
}

/** The generator's valid events for the same options as produceEvents used. */
export function expectedEvents(count: number, o: GeneratorOptions = {}): UserEvent[] {
  return [...generateEvents(count, o)].flatMap((r) => (r.event ? [r.event] : []));
}
