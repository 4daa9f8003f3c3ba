/** The registry client against a scripted HTTP server on 127.0.0.1: auth headers, caching, errors. */
import { createServer, IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient, RegistryError } from '../../src/serde/registry.js';

const seen: Array<{ method: string; url: string; auth?: string }> = [];
const server = createServer((req: IncomingMessage, res) => {
  seen.push({ method: req.method!, url: req.url!, ...(req.headers.authorization ? { auth: req.headers.authorization } : {}) });
  res.setHeader('Content-Type', 'application/vnd.schemaregistry.v1+json');
  if (req.headers.authorization !== 'Basic ' + Buffer.from('alice:s3cret').toString('base64') && req.headers.authorization !== 'Bearer tok') {
    res.statusCode = 401;
    res.end(JSON.stringify({ error_code: 40101, message: 'Unauthorized' }));
  } else if (req.url === '/schemas/ids/7') res.end(JSON.stringify({ schema: '"string"' }));
  else {
    res.statusCode = 404;
    res.end(JSON.stringify({ error_code: 40403, message: 'Schema not found' }));
  }
});
let url = '';
beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('RegistryClient', () => {
  it('sends basic auth and caches schemas by id (immutable)', async () => {
    const c = new RegistryClient({ url, basicAuth: 'alice:s3cret' });
    seen.length = 0;
    expect((await c.getById(7)).schema).toBe('"string"');
    expect((await c.getById(7)).schemaType).toBe('AVRO');
    expect(seen).toEqual([{ method: 'GET', url: '/schemas/ids/7', auth: 'Basic YWxpY2U6czNjcmV0' }]);
  });

  it('sends bearer tokens', async () => {
    const c = new RegistryClient({ url, bearerToken: 'tok' });
    expect((await c.getById(7)).schema).toBe('"string"');
  });

  it('explains 401s and 404s, and an unreachable registry', async () => {
    await expect(new RegistryClient({ url }).getById(7)).rejects.toThrow(/401 Unauthorized\. Check the registry credentials/);
    // (Fast retries: an unknown id and an unreachable registry are retried, see reliability-registry.test.ts.)
    const e = await new RegistryClient({ url, bearerToken: 'tok', retryBackoffMs: 1 }).getById(8).catch((x: RegistryError) => x);
    expect(e).toBeInstanceOf(RegistryError);
    expect((e as RegistryError).status).toBe(404);
    // A port nothing listens on: "is it running?" is the right question here, and only here.
    const closed = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const port = (srv.address() as AddressInfo).port;
        srv.close(() => resolve(port));
      });
    });
    await expect(new RegistryClient({ url: `http://127.0.0.1:${closed}`, retryBackoffMs: 1 }).getById(1)).rejects.toThrow(
      new RegExp(`Cannot reach the Schema Registry at http://127.0.0.1:${closed} \\(ECONNREFUSED\\)\\. Nothing listens there: is the registry running.*sluice up`),
    );
  });
});
