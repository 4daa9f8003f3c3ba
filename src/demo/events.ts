/**
 * Sample click-stream events (the schema of data/user_event.avsc), generated reproducibly from a seed,
 * with knobs for late, out-of-order and malformed records. Used by `sluice produce`, the demo, the tests
 * and the benchmark.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import avro from 'avsc';
import { AckedProducer, KafkaConfig, OutgoingRecord } from '../kafka/client.js';
import { registryClient, RegistryConfig } from '../serde/registry.js';
import { frame } from '../serde/wireformat.js';

export interface UserEvent {
  user_id: string;
  event_type: string;
  timestamp: number;
  page_url: string | null;
  session_id: string;
  ip_address: string | null;
  user_agent: string | null;
  country: string | null;
  device_type: string | null;
}

const here = dirname(fileURLToPath(import.meta.url));
/** The repository's data/ folder (from src/demo or dist/src/demo). */
export function dataDir(): string {
  for (const d of [join(here, '..', '..', 'data'), join(here, '..', '..', '..', 'data')]) {
    try {
      readFileSync(join(d, 'user_event.avsc'));
      return d;
    } catch {
      /* try the next */
    }
  }
  throw new Error(`Cannot find data/user_event.avsc near ${here}.`);
}

export function userEventSchema(): string {
  return readFileSync(join(dataDir(), 'user_event.avsc'), 'utf8');
}

export function sampleEvents(): UserEvent[] {
  return readFileSync(join(dataDir(), 'sample_events.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => {
      const e = JSON.parse(l) as Omit<UserEvent, 'timestamp'> & { timestamp: string };
      return { ...e, timestamp: Date.parse(e.timestamp) };
    });
}

export interface GeneratorOptions {
  /** Distinct users (keys). */
  users?: number;
  /** Event time of the first event (ms); events then advance ~1 s apart. */
  startMs?: number;
  /** Fraction of events whose event time is 15 minutes in the past (late data). */
  lateFraction?: number;
  /** Fraction of events swapped with their neighbour (out of order). */
  outOfOrderFraction?: number;
  /** Fraction of records that are not valid framed Avro (they must reach the dead-letter topic). */
  malformedFraction?: number;
  seed?: number;
}

const EVENT_TYPES = ['page_view', 'page_view', 'page_view', 'click', 'click', 'login', 'logout', 'add_to_cart', 'purchase'];
const PAGES = ['/home', '/products', '/products/42', '/cart', '/checkout', '/login', '/search?q=shoes'];
const COUNTRIES = ['US', 'UK', 'CA', 'DE', 'FR', 'IN', 'BR', null];
const DEVICES = ['desktop', 'mobile', 'tablet', 'mobile', null];

/** A small deterministic PRNG (mulberry32), so a seed reproduces the same events. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface GeneratedRecord {
  event: UserEvent | null;
  /** Why this record is malformed, when it is. */
  malformed?: 'bad-magic-byte' | 'truncated' | 'unknown-schema-id';
  late: boolean;
}

/** Generates `count` records; the i-th call with the same options gives the same sequence. */
export function* generateEvents(count: number, o: GeneratorOptions = {}): Generator<GeneratedRecord> {
  const rand = rng(o.seed ?? 42);
  const users = o.users ?? 100;
  const start = o.startMs ?? Date.parse('2025-08-22T17:00:00Z');
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  let held: GeneratedRecord | undefined;
  for (let i = 0; i < count; i++) {
    const r = rand();
    let rec: GeneratedRecord;
    if (r < (o.malformedFraction ?? 0)) {
      rec = { event: null, malformed: pick(['bad-magic-byte', 'truncated', 'unknown-schema-id'] as const), late: false };
    } else {
      const late = rand() < (o.lateFraction ?? 0);
      const u = Math.floor(rand() * users);
      rec = {
        late,
        event: {
          user_id: `user_${u}`,
          event_type: pick(EVENT_TYPES),
          timestamp: start + i * 1000 - (late ? 15 * 60_000 : 0),
          page_url: `https://example.com${pick(PAGES)}`,
          session_id: `sess_${u}_${Math.floor(i / 500)}`,
          ip_address: `192.168.${u % 256}.${(u * 7) % 256}`,
          user_agent: 'Mozilla/5.0',
          country: pick(COUNTRIES),
          device_type: pick(DEVICES),
        },
      };
    }
    if (held) {
      yield rec;
      yield held;
      held = undefined;
    } else if (rand() < (o.outOfOrderFraction ?? 0)) held = rec;
    else yield rec;
  }
  if (held) yield held;
}

export interface ProduceOptions extends GeneratorOptions {
  topic: string;
  kafka: KafkaConfig;
  format: 'avro' | 'json';
  registry?: RegistryConfig;
  subject?: string;
  /** Records per second (0 = as fast as possible). */
  rate?: number;
  /** Key records by user_id (default true). */
  keyed?: boolean;
  onProgress?: (sent: number) => void;
}

/** Produces generated events to Kafka; returns counts by kind. Malformed records are real bad bytes. */
export async function produceEvents(count: number, o: ProduceOptions): Promise<{ sent: number; malformed: number; late: number; schemaId?: number }> {
  const producer = new AckedProducer(o.kafka);
  let schemaId: number | undefined;
  let type: avro.Type | undefined;
  if (o.format === 'avro') {
    if (!o.registry) throw new Error('Avro events need a Schema Registry (registry URL).');
    const schema = userEventSchema();
    schemaId = await registryClient(o.registry).register(o.subject ?? `${o.topic}-value`, schema);
    type = avro.Type.forSchema(JSON.parse(schema));
  }
  let sent = 0;
  let malformed = 0;
  let late = 0;
  let batch: OutgoingRecord[] = [];
  const t0 = Date.now();
  const flushBatch = async (): Promise<void> => {
    await producer.send(batch);
    batch = [];
    o.onProgress?.(sent);
    if (o.rate) {
      const due = t0 + (sent / o.rate) * 1000;
      if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
    }
  };
  for (const rec of generateEvents(count, o)) {
    let value: Buffer;
    if (rec.malformed) {
      malformed++;
      value =
        rec.malformed === 'bad-magic-byte'
          ? Buffer.from('{"not":"avro"}')
          : rec.malformed === 'truncated'
            ? Buffer.from([0, 0, 0])
            : frame(999_999, Buffer.from([2, 0x61]));
    } else {
      if (rec.late) late++;
      value = type ? frame(schemaId!, type.toBuffer(rec.event)) : Buffer.from(JSON.stringify({ ...rec.event, timestamp: new Date(rec.event!.timestamp).toISOString() }));
    }
    batch.push({ topic: o.topic, value, key: o.keyed === false || !rec.event ? null : Buffer.from(rec.event.user_id) });
    sent++;
    if (batch.length >= (o.rate ? Math.max(1, Math.ceil(o.rate / 10)) : 5000)) await flushBatch();
  }
  if (batch.length) await flushBatch();
  await producer.flush();
  await producer.close();
  return { sent, malformed, late, ...(schemaId !== undefined ? { schemaId } : {}) };
}
