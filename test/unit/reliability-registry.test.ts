/**
 * Issue 7, §3 Reliability — Schema Registry calls: timeouts, bounded retries with exponential backoff,
 * and unknown schema ids (replication lag) asked for again. Against a scripted HTTP server on 127.0.0.1
 * (a free port chosen by the OS), started and stopped by this file.
 */
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RegistryClient, RegistryError } from '../../src/serde/registry.js';

/** Per path: the answers to give, in order (the last one repeats). 'hang' never answers. */
type Answer = { status: number; body?: unknown } | 'hang';
const script = new Map<string, Answer[]>();
const hits = new Map<string, number>();
const hanging: ServerResponse[] = [];
let lastAuth: string | undefined;
const server = createServer((req, res) => {
  const key = `${req.method} ${req.url}`;
  lastAuth = req.headers.authorization;
  const n = hits.get(key) ?? 0;
  hits.set(key, n + 1);
  const answers = script.get(key) ?? [{ status: 404, body: { error_code: 40403, message: 'Schema not found' } }];
  const a = answers[Math.min(n, answers.length - 1)]!;
  if (a === 'hang') {
    hanging.push(res);
    return;
  }
  res.statusCode = a.status;
  res.setHeader('Content-Type', 'application/vnd.schemaregistry.v1+json');
  res.end(a.body === undefined ? '' : JSON.stringify(a.body));
});
let url = '';
beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  for (const res of hanging) res.destroy();
  await new Promise<void>((r) => server.close(() => r()));
});
beforeEach(() => {
  script.clear();
  hits.clear();
});

const fast = { retryBackoffMs: 5, retryMaxBackoffMs: 20 };
const schema = { status: 200, body: { schema: '"string"' } };
const notFound = { status: 404, body: { error_code: 40403, message: 'Schema 9 not found' } };

describe('registry timeouts and retries', () => {
  // Why: a registry restarting or overloaded (503) failed the query at once. Before the fix getById
  // rejected on the first 503.
  it('retries 5xx, 429 and unreachable, with backoff, and succeeds when the registry recovers', async () => {
    script.set('GET /schemas/ids/1', [{ status: 503 }, { status: 429 }, { status: 502 }, schema]);
    const c = new RegistryClient({ url, ...fast });
    expect((await c.getById(1)).schema).toBe('"string"');
    expect(hits.get('GET /schemas/ids/1')).toBe(4);
    // Registration is safe to repeat (the same schema gets the same id): retried too.
    script.set('POST /subjects/s-value/versions', [{ status: 500 }, { status: 200, body: { id: 3 } }]);
    expect(await c.register('s-value', '"string"')).toBe(3);
  });

  // Why: retries must be bounded — a registry that stays down fails the call after `retries` more
  // attempts, saying how many were made. Answers that will not change (401, 422) are not retried.
  it('gives up after the configured retries, and never retries final answers', async () => {
    script.set('GET /schemas/ids/2', [{ status: 503, body: { message: 'down' } }]);
    const c = new RegistryClient({ url, ...fast, retries: 2 });
    await expect(c.getById(2)).rejects.toThrow(/503 down\.? \(after 3 attempts\)/);
    expect(hits.get('GET /schemas/ids/2')).toBe(3);
    script.set('GET /schemas/ids/5', [{ status: 401, body: { error_code: 40101, message: 'Unauthorized' } }]);
    await expect(c.getById(5)).rejects.toThrow(/401 Unauthorized\. Check the registry credentials/);
    expect(hits.get('GET /schemas/ids/5')).toBe(1);
    const t0 = Date.now();
    await expect(new RegistryClient({ url: 'http://127.0.0.1:1', ...fast, retries: 2 }).getById(1)).rejects.toThrow(
      /Cannot reach the Schema Registry at http:\/\/127\.0\.0\.1:1 .*\(after 3 attempts\)/,
    );
    expect(Date.now() - t0).toBeLessThan(2_000);
  });

  // Why: a registry that accepts the connection and never answers hung the query forever (fetch has no
  // timeout). Before the fix this test hit its own 5 s limit.
  it('abandons a request that takes longer than timeoutMs', async () => {
    script.set('GET /schemas/ids/4', ['hang']);
    const c = new RegistryClient({ url, timeoutMs: 150, retries: 1, ...fast });
    const t0 = Date.now();
    await expect(c.getById(4)).rejects.toThrow(/did not answer GET \/schemas\/ids\/4 within 150 ms[\s\S]*\(after 2 attempts\)/);
    expect(Date.now() - t0).toBeLessThan(2_000);
    expect(hits.get('GET /schemas/ids/4')).toBe(2);
  }, 5_000);

  // Why: a record names schema id 9, so some registry assigned it; a replica that answers 404 is behind.
  // Before the fix the first 404 was final.
  it('asks again for an unknown schema id (replication lag)', async () => {
    script.set('GET /schemas/ids/9', [notFound, notFound, schema]);
    const c = new RegistryClient({ url, ...fast });
    expect((await c.getById(9)).schema).toBe('"string"');
    expect(hits.get('GET /schemas/ids/9')).toBe(3);
    // Found once, cached for good (ids are immutable): no more requests.
    await c.getById(9);
    expect(hits.get('GET /schemas/ids/9')).toBe(3);
  });

  // Why: an id still unknown after the retries must not be remembered as missing forever: within
  // unknownIdRecheckMs the same error comes back without a request (no request per record), after it the
  // registry is asked again.
  it('remembers an unknown id only for unknownIdRecheckMs', async () => {
    script.set('GET /schemas/ids/10', [notFound, notFound, schema]);
    const c = new RegistryClient({ url, ...fast, retries: 1, unknownIdRecheckMs: 200 });
    const e = await c.getById(10).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(RegistryError);
    expect((e as RegistryError).status).toBe(404);
    expect(hits.get('GET /schemas/ids/10')).toBe(2);
    await expect(c.getById(10)).rejects.toThrow(/404/);
    expect(hits.get('GET /schemas/ids/10')).toBe(2); // answered from memory
    // Meanwhile another unknown id gets one attempt, not the backoff again: after one id stayed unknown
    // through its retries, the registry is not just a moment behind (or the ids are garbage bytes).
    await expect(c.getById(11)).rejects.toThrow(/404/);
    expect(hits.get('GET /schemas/ids/11')).toBe(1);
    await new Promise((r) => setTimeout(r, 250));
    expect((await c.getById(10)).schema).toBe('"string"');
    expect(hits.get('GET /schemas/ids/10')).toBe(3);
  });

  // Why: settings that make no sense are refused with what to give instead.
  it('refuses nonsense settings, and never shows a password from the URL', async () => {
    expect(() => new RegistryClient({ url, retries: -1 })).toThrow(/retries must be a whole number of 0 or more, got -1/);
    expect(() => new RegistryClient({ url, timeoutMs: 0 })).toThrow(/timeoutMs must be a number of milliseconds above 0/);
    const e = await new RegistryClient({ url: 'http://alice:s3cret@127.0.0.1:1', retries: 0 }).getById(1).catch((x: Error) => x);
    expect(e.message).toMatch(/Cannot reach the Schema Registry at http:\/\/127\.0\.0\.1:1 \(/);
    expect(e.message).not.toContain('s3cret');
    // The URL's user info is sent as basic auth instead (fetch refuses URLs with credentials).
    script.set('GET /schemas/ids/7', [schema]);
    const withUser = new RegistryClient({ url: url.replace('//', '//alice:s3cret@') });
    expect((await withUser.getById(7)).schema).toBe('"string"');
    expect(lastAuth).toBe(`Basic ${Buffer.from('alice:s3cret').toString('base64')}`);
  });
});
