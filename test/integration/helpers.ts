/** Shared helpers for integration tests on the real stack started by globalSetup. */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import avro from 'avsc';
import { afterAll, beforeAll, inject } from 'vitest';
import type { DataFrame } from '../../src/api/dataframe.js';
import { SluiceSession } from '../../src/api/session.js';
import { generateEvents, GeneratorOptions, UserEvent } from '../../src/demo/events.js';
import { AckedProducer, KafkaAdmin, KafkaRecord, OutgoingRecord, readTopic } from '../../src/kafka/client.js';
import { registryClient } from '../../src/serde/registry.js';
import { unframe } from '../../src/serde/wireformat.js';
import { startSparkConnect, stopSparkConnect } from '../../src/stack/spark.js';
import { freePort } from '../../src/stack/stack.js';

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

/** A session that prints nothing; its log lines go to `logs` when given. */
export function quietSession(name = 'it', logs?: string[]): SluiceSession {
  const s = new SluiceSession(name);
  s.out = () => {};
  s.log = logs ? (l) => void logs.push(l) : () => {};
  return s;
}

/** A checkpoint location in a fresh temporary folder (the folder itself is created by the query). */
export const newCheckpoint = (): string => join(mkdtempSync(join(tmpdir(), 'sluice-it-')), 'checkpoint');

/** Sends records with a producer of its own and waits for every acknowledgement. */
export async function produceRecords(records: OutgoingRecord[], conf: Record<string, string> = {}): Promise<void> {
  const p = new AckedProducer({ ...kafka(), ...conf });
  try {
    await p.send(records);
    await p.flush();
  } finally {
    await p.close();
  }
}

const sluiceBin = new URL('../../bin/sluice.js', import.meta.url).pathname;

/** `sluice run test/fixtures/<fixture>` as a child process (settings in `env`), with its output collected. */
export function startPipeline(fixture: string, env: Record<string, string>) {
  const file = new URL(`../fixtures/${fixture}`, import.meta.url).pathname;
  const child = spawn(process.execPath, [sluiceBin, 'run', file], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, output: () => out };
}

/** The kill -9 test's Avro copy pipeline (test/fixtures/copy-pipeline.ts). */
export const startCopyPipeline = (env: Record<string, string>) => startPipeline('copy-pipeline.ts', env);

/** A Kafka stream of `topic` on the test broker, from its earliest offset. */
export function readKafka(session: SluiceSession, topic: string, options: Record<string, string | number> = {}): DataFrame {
  return session.readStream
    .format('kafka')
    .option('kafka.bootstrap.servers', bootstrapServers())
    .option('subscribe', topic)
    .option('startingOffsets', 'earliest')
    .options(options)
    .load();
}

/**
 * Reads `topic` with read_committed once no transaction is pending on it (each partition's last stable offset
 * equals its high watermark), within `ms`. A transaction's records become visible a moment after
 * commitTransaction returns — the coordinator writes the commit markers to the partitions afterwards — so a
 * read right after a commit can still stop before them.
 */
export async function readSettled(conf: Parameters<typeof readTopic>[0], topic: string, ms = 15_000): Promise<KafkaRecord[]> {
  const admin = new KafkaAdmin(conf);
  try {
    const [d] = await admin.describeTopics([topic]);
    await admin.stableEnd(d!.partitions.map((p) => ({ topic, partition: p.partition })), ms);
  } finally {
    admin.disconnect();
  }
  return readTopic(conf, topic);
}

/**
 * A Spark Connect server (Spark 3.5, local[2]) of this test file's own, on a free 127.0.0.1 port: started
 * before its tests, stopped and removed after them. Returns its address (`sc://…`), known once started.
 */
export function sparkConnectForTests(): () => string {
  let dir: string | undefined;
  let url: string | undefined;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-spark-connect-'));
    url = (await startSparkConnect({ dir, port: await freePort(), log: (l) => process.stderr.write(`[spark] ${l}\n`) })).url;
  }, 900_000);
  afterAll(async () => {
    if (!dir) return;
    await stopSparkConnect({ dir, log: () => {} });
    rmSync(dir, { recursive: true, force: true });
  });
  return () => {
    if (!url) throw new Error('The Spark Connect server is not started yet: call the getter inside a test.');
    return url;
  };
}
