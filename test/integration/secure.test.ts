/**
 * Issue 11 item 5 — the secure local stack (`sluice up --secure`): Kafka with SASL/SCRAM-SHA-256 over TLS and a
 * registry with basic auth, started here in a folder of its own on free ports. A pipeline runs against it end
 * to end (Avro through the registry, exactly-once sink, dead letters); wrong credentials fail within seconds
 * with what to check; and no secret appears in logs, progress, explain() or the checkpoint's files.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SluiceSession, col, fromAvro, struct, toAvro, upper } from '../../src/index.js';
import { produceEvents } from '../../src/demo/events.js';
import { KafkaAdmin, readTopic, type KafkaConfig } from '../../src/kafka/client.js';
import { readCredentials, type SecureCredentials } from '../../src/stack/secure.js';
import { down, freePort, up, type StackInfo } from '../../src/stack/stack.js';
import { registryClient } from '../../src/serde/registry.js';
import { readSettled } from './helpers.js';

let dir: string;
let stack: StackInfo;
let creds: SecureCredentials;
let conf: KafkaConfig;
let registry: { url: string; basicAuth: string };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sluice-secure-'));
  stack = await up({ dir, secure: true, ports: { kafka: await freePort(), controller: await freePort(), registry: await freePort() }, log: () => {} });
  creds = readCredentials(stack.secure!);
  conf = {
    'bootstrap.servers': stack.bootstrapServers,
    'security.protocol': 'SASL_SSL',
    'sasl.mechanisms': 'SCRAM-SHA-256',
    'sasl.username': creds.username,
    'sasl.password': creds.password,
    'ssl.ca.location': stack.secure!.caLocation,
  };
  registry = { url: stack.registryUrl, basicAuth: `${creds.registryUsername}:${creds.registryPassword}` };
}, 240_000);

afterAll(async () => {
  await down({ dir, purge: true, log: () => {} });
  rmSync(dir, { recursive: true, force: true });
});

/** The `kafka.`-prefixed options of a query: Spark's names (sasl.mechanism, sasl.jaas.config are accepted too). */
const kafkaOptions = (password = creds.password): Record<string, string> => ({
  'kafka.bootstrap.servers': stack.bootstrapServers,
  'kafka.security.protocol': 'SASL_SSL',
  'kafka.sasl.mechanism': 'SCRAM-SHA-256',
  'kafka.sasl.jaas.config': `org.apache.kafka.common.security.scram.ScramLoginModule required username="${creds.username}" password="${password}";`,
  'kafka.ssl.ca.location': stack.secure!.caLocation,
});

/** Every file under `root`, read as text. */
function filesUnder(root: string): Array<{ path: string; text: string }> {
  return readdirSync(root, { recursive: true, encoding: 'utf8' })
    .map((f) => join(root, f))
    .filter((p) => statSync(p).isFile())
    .map((p) => ({ path: p, text: readFileSync(p).toString('latin1') }));
}

describe('secure stack: SASL/SCRAM over TLS, registry with basic auth', () => {
  it('the registry refuses a request without credentials or with wrong ones (401)', async () => {
    expect((await fetch(`${stack.registryUrl}/subjects`)).status).toBe(401);
    expect((await fetch(`${stack.registryUrl}/schemas/ids/1/schema`)).status).toBe(401);
    const wrong = `Basic ${Buffer.from(`${creds.registryUsername}:wrong`).toString('base64')}`;
    expect((await fetch(`${stack.registryUrl}/subjects`, { headers: { Authorization: wrong } })).status).toBe(401);
  });

  it('runs a pipeline end to end (Avro via the registry, exactly-once sink, dead letters), and no secret shows anywhere', async () => {
    const admin = new KafkaAdmin(conf);
    for (const t of ['sec-in', 'sec-out', 'sec-dlq']) await admin.createTopic(t, 2);
    admin.disconnect();
    await produceEvents(200, { topic: 'sec-in', kafka: conf, format: 'avro', registry, seed: 5 });
    const logs: string[] = [];
    const s = new SluiceSession('secure');
    s.out = () => {};
    s.log = (l) => void logs.push(l);
    const checkpoint = join(dir, 'checkpoints', 'secure-copy');
    const q = await s.readStream.format('kafka').options(kafkaOptions()).option('subscribe', 'sec-in').option('startingOffsets', 'earliest').load()
      .select(col('key'), fromAvro(col('value'), { registry, subject: 'sec-in-value' }).alias('e'))
      .select(col('key'), toAvro(struct(col('e.user_id'), upper(col('e.event_type')).alias('event_type')), { registry, subject: 'sec-out-value' }).alias('value'))
      .writeStream.format('kafka').options(kafkaOptions())
      .option('topic', 'sec-out')
      .option('exactlyOnce', 'true')
      .option('deadLetter.topic', 'sec-dlq')
      .option('checkpointLocation', checkpoint)
      .trigger({ availableNow: true })
      .start();
    await q.awaitTermination();
    const out = await readSettled(conf, 'sec-out'); // exactly-once: visible once the commit markers are written
    expect(out).toHaveLength(200);

    const secrets = [creds.password, creds.registryPassword, creds.brokerPassword];
    const places = [
      { path: 'logs', text: logs.join('\n') },
      { path: 'progress', text: JSON.stringify(q.recentProgress) },
      { path: 'explain()', text: q.explain() },
      ...filesUnder(checkpoint),
      { path: 'dead letters', text: (await readTopic(conf, 'sec-dlq')).map((r) => JSON.stringify(r)).join('\n') },
    ];
    expect(places.length).toBeGreaterThan(6); // the checkpoint's files are among them
    for (const p of places) for (const secret of secrets) expect(p.text.includes(secret), `a secret in ${p.path}`).toBe(false);
    expect(q.explain()).toContain('KafkaSink[sec-out, exactly-once]');
  });

  it('wrong Kafka credentials fail a query within seconds, naming the user and what to check, without the password', async () => {
    const s = new SluiceSession('secure-wrong');
    s.out = () => {};
    s.log = () => {};
    const t0 = Date.now();
    const err = await s.readStream.format('kafka').options(kafkaOptions('not-the-password')).option('subscribe', 'sec-in').load()
      .writeStream.format('kafka').options(kafkaOptions('not-the-password')).option('topic', 'sec-out')
      .option('checkpointLocation', join(dir, 'checkpoints', 'wrong'))
      .start()
      .then(async (q) => {
        await q.awaitTermination();
        return undefined;
      }, (e: Error) => e)
      .catch((e: Error) => e);
    expect(Date.now() - t0).toBeLessThan(10_000); // not librdkafka's 30 s connect timeout, not a retry loop
    expect(err?.message).toMatch(/refused the login of user "sluice" \(SCRAM-SHA-256\).*Authentication failed.*Check kafka\.sasl\.username, kafka\.sasl\.password/);
    expect(err?.message).not.toContain('not-the-password');
  });

  it('a wrong CA fails the TLS handshake within seconds, naming kafka.ssl.ca.location', async () => {
    const admin = new KafkaAdmin({ ...conf, 'ssl.ca.location': '/etc/ssl/certs/ca-certificates.crt' });
    const t0 = Date.now();
    const err = await admin.listTopics().then(() => undefined, (e: Error) => e);
    admin.disconnect();
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(err?.message).toMatch(/The TLS handshake with 127\.0\.0\.1:\d+ failed: .*certificate verify failed.*Check kafka\.ssl\.ca\.location/);
  });

  it('wrong registry credentials fail with the registry\'s answer and what to check, without the password', async () => {
    const err = await registryClient({ url: stack.registryUrl, basicAuth: `${creds.registryUsername}:not-the-password` })
      .register('sec-x-value', '"string"')
      .then(() => undefined, (e: Error) => e);
    expect(err?.message).toMatch(/401[\s\S]*Check the registry credentials/);
    expect(err?.message).not.toContain('not-the-password');
  });
});
