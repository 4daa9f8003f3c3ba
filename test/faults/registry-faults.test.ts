/**
 * Issue 16 item 5 — the Schema Registry goes away, or hangs, while a query needs a schema it has not seen.
 * Before: the query failed 2 s after the registry went away (4 quick retries). Now it retries with backoff
 * (default 12 retries, about half a minute) and goes on when the registry is back; past its retries it
 * fails with the reason — the records are never sent to the dead letters as "unknown schema".
 *
 * The real registry of the test stack sits behind a TCP proxy on 127.0.0.1 that the test can take down
 * (connection refused) or hang (connections accepted, never answered).
 */
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import avro from 'avsc';
import { afterEach, describe, expect, it } from 'vitest';
import { generateEvents, userEventSchema } from '../../src/demo/events.js';
import { demoPipeline } from '../../src/demo/pipeline.js';
import { SluiceSession, type StreamingQuery } from '../../src/index.js';
import { AckedProducer, readTopic } from '../../src/kafka/client.js';
import { registryClient, type RegistryConfig } from '../../src/serde/registry.js';
import { frame } from '../../src/serde/wireformat.js';
import { bootstrapServers, freshTopics, kafka, registry } from '../integration/helpers.js';

/** A TCP proxy in front of the registry: `up` forwards, `down` refuses connections, `hung` accepts and never answers. */
class RegistryProxy {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private mode: 'up' | 'hung' = 'up';
  port = 0;
  constructor(private readonly target: { host: string; port: number }) {}

  async start(): Promise<void> {
    const server = net.createServer((client) => {
      this.sockets.add(client);
      client.on('close', () => this.sockets.delete(client));
      client.on('error', () => {});
      if (this.mode === 'hung') return; // accepted, never answered
      const upstream = net.connect(this.target.port, this.target.host);
      this.sockets.add(upstream);
      upstream.on('close', () => this.sockets.delete(upstream));
      upstream.on('error', () => client.destroy());
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.port = (server.address() as net.AddressInfo).port;
    this.server = server;
  }
  private cut(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }
  async down(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server = undefined;
  }
  hang(): void {
    this.mode = 'hung';
    this.cut(); // kept-alive connections would still answer
  }
  async up(): Promise<void> {
    this.mode = 'up';
    if (!this.server) await this.start();
  }
  url(path: string): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }
}

const proxies: RegistryProxy[] = [];
const queries: StreamingQuery[] = [];
afterEach(async () => {
  for (const q of queries.splice(0)) await q.stop().catch(() => {});
  for (const p of proxies.splice(0)) await p.down();
});

async function proxied(): Promise<{ proxy: RegistryProxy; config: (extra?: Partial<RegistryConfig>) => RegistryConfig }> {
  const real = new URL(registry().url);
  const proxy = new RegistryProxy({ host: real.hostname, port: Number(real.port) });
  await proxy.start();
  proxies.push(proxy);
  return { proxy, config: (extra = {}) => ({ url: proxy.url(real.pathname), timeoutMs: 1000, retryBackoffMs: 100, retryMaxBackoffMs: 1000, ...extra }) };
}

const v1 = JSON.parse(userEventSchema()) as { fields: unknown[] };
/** Schema version N: v1 plus N-1 optional fields (each a compatible evolution). */
const version = (n: number): object => ({
  ...v1,
  fields: [...v1.fields, ...Array.from({ length: n - 1 }, (_, i) => ({ name: `extra${i + 2}`, type: ['null', 'string'], default: null }))],
});

async function produceWith(topic: string, n: number, count: number, seed: number): Promise<void> {
  const schema = version(n);
  const id = await registryClient(registry()).register(`${topic}-value`, JSON.stringify(schema));
  const type = avro.Type.forSchema(schema as avro.Schema);
  const events = [...generateEvents(count, { seed })].flatMap((r) => (r.event ? [r.event] : [])).slice(0, count);
  const p = new AckedProducer(kafka());
  await p.send(events.map((e, i) => ({ topic, key: Buffer.from(`v${n}-${i}`), value: frame(id, type.toBuffer(e)) })));
  await p.flush();
  await p.close();
}

const outputRows = (q: StreamingQuery): number => q.recentProgress.reduce((a, p) => a + p.sink.numOutputRows, 0);
async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const newCheckpoint = (): string => join(mkdtempSync(join(tmpdir(), 'sluice-faults-')), 'checkpoint');

function start(
  t: { input: string; output: string; dlq: string },
  reg: RegistryConfig,
  checkpointLocation = newCheckpoint(),
  trigger: { processingTime: string } | { availableNow: true } = { processingTime: '200 milliseconds' },
): Promise<StreamingQuery> {
  const s = new SluiceSession('faults');
  s.out = () => {};
  s.log = () => {};
  return demoPipeline(s, {
    bootstrapServers: bootstrapServers(),
    registry: reg,
    inputTopic: t.input,
    outputTopic: t.output,
    deadLetterTopic: t.dlq,
    checkpointLocation,
    trigger,
  })
    .start()
    .then((q) => (queries.push(q), q));
}

describe('the registry down or hung while a query needs a new schema', () => {
  it('stalls and goes on when the registry is back: down (refused) for 4 s, then hung for 4 s; nothing to the dead letters', async () => {
    const t = await freshTopics('registry-away', 1);
    const { proxy, config } = await proxied();
    await produceWith(t.input, 1, 50, 1);
    const q = await start(t, config());
    await waitFor(() => outputRows(q) === 50, 60_000, 'the first 50 records');

    // Down: connections refused. The new writer schema (v2) cannot be fetched until it is back.
    await proxy.down();
    await produceWith(t.input, 2, 50, 2);
    await new Promise((r) => setTimeout(r, 4000));
    expect(outputRows(q)).toBe(50); // stalled, not skipped
    expect(q.exception).toBeNull();
    await proxy.up();
    await waitFor(() => outputRows(q) === 100, 60_000, 'the v2 records after the registry came back');

    // Hung: connections accepted, never answered (each attempt times out after timeoutMs, then is retried).
    proxy.hang();
    await produceWith(t.input, 3, 50, 3);
    await new Promise((r) => setTimeout(r, 4000));
    expect(outputRows(q)).toBe(100);
    expect(q.exception).toBeNull();
    await proxy.up();
    await waitFor(() => outputRows(q) === 150, 60_000, 'the v3 records after the registry answered again');

    expect(await readTopic(kafka(), t.dlq)).toEqual([]); // no record was blamed for the registry's absence
    const keys = (await readTopic(kafka(), t.output)).map((r) => r.key!.toString());
    expect(new Set(keys).size).toBe(150);
  });

  it('away for longer than its retries: the query fails with the reason, and a restart after it is back loses nothing', async () => {
    const t = await freshTopics('registry-gone', 1);
    const { proxy, config } = await proxied();
    await produceWith(t.input, 1, 20, 4);
    const reg = config({ retries: 2 });
    const checkpoint = newCheckpoint();
    const q = await start(t, reg, checkpoint);
    await waitFor(() => outputRows(q) === 20, 60_000, 'the first 20 records');
    await proxy.down();
    await produceWith(t.input, 2, 20, 5);
    await q.awaitTermination().catch(() => {});
    expect(q.exception?.message).toMatch(/Cannot reach the Schema Registry at http:\/\/127\.0\.0\.1:\d+\/apis\/ccompat\/v7 \(ECONNREFUSED\)\. Nothing listens there.*\(after 3 attempts\)/);
    expect(await readTopic(kafka(), t.dlq)).toEqual([]);
    await proxy.up();
    // Same checkpoint: the failed batch is re-run.
    const again = await start(t, reg, checkpoint, { availableNow: true });
    await again.awaitTermination();
    const keys = (await readTopic(kafka(), t.output)).map((r) => r.key!.toString());
    expect(new Set(keys).size).toBe(40);
  });
});
