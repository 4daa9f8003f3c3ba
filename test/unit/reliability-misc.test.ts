/**
 * Issue 7, §3 Reliability — listeners that fail, the idempotent producer, redaction of secrets, and
 * `sluice down` signalling only what `sluice up` started. Each test says why it exists and what failed
 * before the fix.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SluiceSession, col, type StreamingQueryListener } from '../../src/index.js';
import { producerConfig } from '../../src/kafka/client.js';
import { down, status } from '../../src/stack/stack.js';
import { REDACTED, isSecretKey, redactOptions } from '../../src/util/redact.js';

const tmp = (): string => mkdtempSync(join(tmpdir(), 'sluice-rel-misc-'));
function newSession(logs: string[] = []): SluiceSession {
  const s = new SluiceSession('rel');
  s.out = () => {};
  s.log = (l) => void logs.push(l);
  return s;
}

describe('listeners are isolated', () => {
  // Why: a listener that threw in onQueryStarted made start() throw; in onQueryProgress it stopped the
  // query; an async listener's rejection was an unhandled rejection (which ends a Node process). Spark's
  // listener bus logs and carries on. Before the fix start() rejected with "listener broke".
  it('a throwing or rejecting listener is logged; the query, the other listeners and the process go on', async () => {
    const logs: string[] = [];
    const s = newSession(logs);
    const seen: string[] = [];
    class BrokenListener implements StreamingQueryListener {
      onQueryStarted(): void {
        throw new Error('listener broke');
      }
      onQueryProgress(): void {
        throw new Error('listener broke');
      }
      onQueryTerminated(): void {
        throw new Error('listener broke');
      }
    }
    s.streams.addListener(new BrokenListener());
    s.streams.addListener({
      onQueryProgress: async () => {
        await Promise.resolve();
        throw new Error('async listener broke');
      },
    });
    s.streams.addListener({
      onQueryStarted: () => void seen.push('started'),
      onQueryProgress: (e) => void seen.push(`progress ${e.progress.batchId}`),
      onQueryTerminated: () => void seen.push('terminated'),
    });
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown): void => void unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    try {
      const input = s.memoryStream('n INT');
      const q = await input.toDF().select(col('n')).writeStream.format('memory').queryName('l').start();
      input.addData({ n: 1 });
      await q.processAllAvailable();
      input.addData({ n: 2 });
      await q.processAllAvailable();
      await q.stop();
      await new Promise((r) => setTimeout(r, 20)); // let the async listener's rejection surface
      expect(q.exception).toBeNull();
      expect(await s.table('l').collect()).toEqual([{ n: 1 }, { n: 2 }]);
      expect(seen).toEqual(['started', 'progress 0', 'progress 1', 'terminated']);
      expect(unhandled).toEqual([]);
      const failures = logs.filter((l) => l.startsWith('WARN A StreamingQueryListener failed'));
      expect(failures.filter((l) => l.includes('BrokenListener.onQueryStarted')).length).toBe(1);
      expect(failures.filter((l) => l.includes('BrokenListener.onQueryProgress')).length).toBe(2);
      expect(failures.filter((l) => l.includes('BrokenListener.onQueryTerminated')).length).toBe(1);
      expect(failures.filter((l) => l.includes('async listener broke')).length).toBe(2);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});

describe('the producer is idempotent by default', () => {
  // Why: without idempotence a retried send after a timeout can duplicate or reorder records in a
  // partition. Before the fix the producer settings had no enable.idempotence.
  it('sets enable.idempotence unless the user decides, or asks for settings it cannot work with', () => {
    expect(producerConfig({ 'bootstrap.servers': 'b:9092' })['enable.idempotence']).toBe(true);
    expect(producerConfig({ 'bootstrap.servers': 'b:9092', acks: 'all' })['enable.idempotence']).toBe(true);
    expect(producerConfig({ 'bootstrap.servers': 'b:9092', 'enable.idempotence': false })['enable.idempotence']).toBe(false);
    // librdkafka refuses idempotence with acks=1 or more than 5 requests in flight: then the user's choice stands.
    expect(producerConfig({ 'bootstrap.servers': 'b:9092', acks: '1' })).not.toHaveProperty('enable.idempotence');
    expect(producerConfig({ 'bootstrap.servers': 'b:9092', 'max.in.flight.requests.per.connection': 10 })).not.toHaveProperty('enable.idempotence');
    expect(producerConfig({ 'bootstrap.servers': 'b:9092', 'linger.ms': 50 })['linger.ms']).toBe(50); // the user's settings win
  });
});

describe('secrets are redacted', () => {
  const secrets: Record<string, string> = {
    'kafka.sasl.password': 'pw-1',
    'kafka.sasl.username': 'user-1',
    'kafka.sasl.jaas.config': 'org.apache.kafka.common.security.plain.PlainLoginModule required username="u" password="pw-2";',
    'kafka.sasl.oauthbearer.client.secret': 'pw-3',
    'kafka.ssl.key.location': '/secret/key.pem',
    'kafka.ssl.key.password': 'pw-4',
    'kafka.ssl.key.pem': '-----BEGIN PRIVATE KEY-----pw-5',
    'kafka.ssl.certificate.pem': '-----BEGIN CERTIFICATE-----pw-6',
    'schema.registry.basic.auth.user.info': 'alice:pw-7',
    'bearer.auth.token': 'pw-8',
    'apiKey': 'pw-9',
  };

  // Why: the key patterns of issue 7: *.pem, *.key*, sasl.*, *password*, *token*, *secret*, basic auth.
  // Ordinary settings stay visible.
  it('knows which settings carry secrets', () => {
    for (const k of Object.keys(secrets)) expect(isSecretKey(k), k).toBe(true);
    for (const k of ['kafka.bootstrap.servers', 'subscribe', 'startingOffsets', 'maxOffsetsPerTrigger', 'kafka.security.protocol', 'topic', 'includeHeaders']) {
      expect(isSecretKey(k), k).toBe(false);
    }
    expect(redactOptions({ 'kafka.sasl.password': 'x', subscribe: 't' })).toEqual({ 'kafka.sasl.password': REDACTED, subscribe: 't' });
  });

  // Why: explain() printed the source options, filtering only password/secret/jaas/basic.auth, so
  // ssl.key.location, ssl.key.pem, sasl.username, tokens and client secrets were shown. Before the fix
  // the plan below contained "pw-3", "pw-5", "pw-8" …
  it('explain() never shows a secret option', () => {
    const s = newSession();
    const df = s.readStream.format('kafka').option('kafka.bootstrap.servers', '127.0.0.1:9092').option('subscribe', 't').options(secrets).load();
    const plan = df.explain();
    for (const v of Object.values(secrets)) expect(plan).not.toContain(v);
    expect(plan).toContain(`kafka.ssl.key.location=${REDACTED}`);
    expect(plan).toContain('subscribe=t');
  });

  // Why: settings logged in offsets/N for restarts end up on disk; a secret-bearing one must not.
  it('settings logged in offsets/N are redacted', async () => {
    const { Checkpoint } = await import('../../src/checkpoint/checkpoint.js');
    const root = tmp();
    const cp = new Checkpoint(root);
    cp.offsets.add(0, { metadata: { batchWatermarkMs: 0, batchTimestampMs: 0, conf: { 'sluice.sql.shuffle.partitions': '4', 'x.sasl.password': 'pw' } }, offsets: [] });
    const text = readFileSync(join(root, 'offsets', '0'), 'utf8');
    expect(text).not.toContain('"pw"');
    expect(cp.offsets.get(0)!.metadata.conf).toEqual({ 'sluice.sql.shuffle.partitions': '4', 'x.sasl.password': REDACTED });
  });
});

describe('sluice down signals only what sluice up started', () => {
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
  });
  /** A long-running process started by this test, in its own process group, with the given arguments. */
  const start = async (args: string[]): Promise<ChildProcess> => {
    const c = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', ...args], { detached: true, stdio: 'ignore' });
    children.push(c);
    await new Promise((r) => setTimeout(r, 100));
    return c;
  };
  const exited = (c: ChildProcess): Promise<boolean> =>
    c.exitCode !== null || c.signalCode !== null
      ? Promise.resolve(true)
      : new Promise((r) => {
          c.once('exit', () => r(true));
          setTimeout(() => r(false), 3000);
        });

  // Why: stack.json keeps pids; after a reboot or a crash of the stack, those pids can belong to other
  // programs, and `down` sent them SIGTERM (to their whole process group). Before the fix the unrelated
  // process below was killed.
  it('leaves alone a process whose pid stack.json names but which is something else', async () => {
    const dir = tmp();
    const ports = { kafka: 1, controller: 2, registry: 3 };
    const stranger = await start(['an-unrelated-program']);
    const kafka = await start(['kafka.Kafka', join(dir, 'server.properties')]); // looks like the stack's broker
    writeFileSync(join(dir, 'stack.json'), JSON.stringify({ dir, ports, pids: { kafka: kafka.pid, registry: stranger.pid } }));
    const st = await status(dir);
    expect(st.registry.running).toBe(false); // a reused pid is not the registry
    expect(st.kafka.running).toBe(true);
    const logs: string[] = [];
    await down({ dir, log: (l) => void logs.push(l) });
    expect(await exited(kafka)).toBe(true);
    expect(stranger.exitCode).toBeNull();
    expect(stranger.signalCode).toBeNull();
    expect(logs.join('\n')).toMatch(new RegExp(`Not stopping pid ${stranger.pid}: stack.json names it as the registry`));
    expect(JSON.parse(readFileSync(join(dir, 'stack.json'), 'utf8')).pids).toEqual({});
  });
});
