/**
 * The live monitor of a session's streaming queries (issue 13): Spark UI's Structured Streaming tab, plus
 * the answer to "why is there no output?". An HTTP server bound to 127.0.0.1 by default:
 *
 *   GET /                 the page (ui/page.ts): per query, status, diagnose() findings, live charts
 *   GET /events           Server-Sent Events: `query` (started, stopped, failed) and `progress`
 *   GET /api/queries      every query seen, with its recent progress
 *   GET /api/diagnose?id= the query's findings (exec/diagnose.ts)
 *   GET /metrics          Prometheus text format (ui/metrics.ts)
 *
 * It listens to the session's StreamingQueryManager, so it sees every query of the session, started before
 * or after it.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { SluiceSession } from '../api/session.js';
import type { StreamingQuery } from '../exec/microBatch.js';
import type { StreamingQueryListener, StreamingQueryProgress } from '../exec/progress.js';
import { StreamingMetrics } from './metrics.js';
import { PAGE } from './page.js';

export interface MonitorOptions {
  /** 0 (default): a free port. */
  port?: number;
  /** 127.0.0.1 (default). Another address exposes the queries' progress to that network: say so explicitly. */
  host?: string;
}

export interface Monitor {
  /** `http://127.0.0.1:<port>/` */
  url: string;
  readonly metrics: StreamingMetrics;
  close(): Promise<void>;
}

interface Tracked {
  id: string;
  name: string | null;
  query: StreamingQuery | undefined;
  progress: StreamingQueryProgress[];
}

/** Progress kept per query for a page that opens later. */
const KEPT = 300;

/** uPlot's browser build and stylesheet, from its package (served, never copied). */
function uplotFile(name: 'uPlot.iife.min.js' | 'uPlot.min.css'): string {
  const require = createRequire(import.meta.url);
  return readFileSync(require.resolve(`uplot/dist/${name}`), 'utf8');
}

export async function startMonitor(session: SluiceSession, o: MonitorOptions = {}): Promise<Monitor> {
  const host = o.host ?? '127.0.0.1';
  const tracked = new Map<string, Tracked>();
  const clients = new Set<ServerResponse>();
  const metrics = new StreamingMetrics();
  const assets = { js: uplotFile('uPlot.iife.min.js'), css: uplotFile('uPlot.min.css') };

  const track = (q: StreamingQuery): Tracked => {
    let t = tracked.get(q.id);
    if (!t) tracked.set(q.id, (t = { id: q.id, name: q.name, query: q, progress: [...q.recentProgress] }));
    t.query = q;
    return t;
  };
  const summary = (t: Tracked) => {
    const q = t.query;
    const status = !q || q.isActive ? 'active' : q.exception ? 'failed' : 'stopped';
    return { id: t.id, name: t.name, status, ...(q?.exception ? { exception: q.exception.message } : {}) };
  };
  const send = (event: string, data: unknown): void => {
    const text = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const c of clients) c.write(text);
  };
  for (const q of session.streams.active) track(q);

  const listener: StreamingQueryListener = {
    onQueryStarted: (e) => {
      const q = session.streams.get(e.id);
      const t = q ? track(q) : (tracked.get(e.id) ?? { id: e.id, name: e.name, query: undefined, progress: [] });
      tracked.set(e.id, t);
      send('query', summary(t));
    },
    onQueryProgress: ({ progress }) => {
      metrics.record(progress);
      const t = tracked.get(progress.id) ?? { id: progress.id, name: progress.name, query: session.streams.get(progress.id), progress: [] };
      tracked.set(progress.id, t);
      t.query ??= session.streams.get(progress.id); // registered after its onQueryStarted
      t.progress.push(progress);
      if (t.progress.length > KEPT) t.progress.shift();
      send('progress', { query: summary(t), progress });
    },
    onQueryTerminated: (e) => {
      const t = tracked.get(e.id);
      if (t) setImmediate(() => send('query', summary(t))); // after the query has marked itself stopped
    },
  };
  session.streams.addListener(listener);

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const reply = (status: number, type: string, body: string): void => {
      res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' });
      res.end(body);
    };
    switch (url.pathname) {
      case '/':
        return reply(200, 'text/html; charset=utf-8', PAGE);
      case '/uplot.iife.min.js':
        return reply(200, 'text/javascript; charset=utf-8', assets.js);
      case '/uplot.min.css':
        return reply(200, 'text/css; charset=utf-8', assets.css);
      case '/api/queries':
        return reply(200, 'application/json', JSON.stringify([...tracked.values()].map((t) => ({ ...summary(t), progress: t.progress }))));
      case '/api/diagnose': {
        const t = tracked.get(url.searchParams.get('id') ?? '');
        if (t) t.query ??= session.streams.get(t.id);
        if (!t?.query) return reply(404, 'application/json', JSON.stringify({ error: 'no such query in this session' }));
        return reply(200, 'application/json', JSON.stringify(await t.query.diagnose()));
      }
      case '/metrics':
        return reply(200, metrics.registry.contentType, await metrics.text());
      case '/events':
        res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', Connection: 'keep-alive' });
        res.write(': connected\n\n');
        clients.add(res);
        req.on('close', () => clients.delete(res));
        return;
      default:
        return reply(404, 'text/plain', 'not found');
    }
  };
  const server = createServer((req, res) => {
    handle(req, res).catch((e: Error) => {
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end(`error: ${e.message}`);
    });
  });
  // A comment every 15 s keeps proxies and browsers from closing an idle event stream.
  const heartbeat = setInterval(() => {
    for (const c of clients) c.write(': heartbeat\n\n');
  }, 15_000);
  heartbeat.unref();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 0, host, () => resolve());
  });
  server.unref();
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}/`,
    metrics,
    close: async () => {
      clearInterval(heartbeat);
      session.streams.removeListener(listener);
      for (const c of clients) c.end();
      clients.clear();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
