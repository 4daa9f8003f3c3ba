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
import type { StreamingQuery } from '../exec/streamingQuery.js';
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
  /** Set by onQueryTerminated for the run that ended (a restart with the same id clears it). */
  ended?: { exception: string | null };
  /** The last findings and when they were asked: shared by every page's request until the next batch, or FINDINGS_MS. */
  findings?: { at: number; value: Promise<unknown> };
}

/** How long findings are reused while no batch runs (diagnose() asks the broker; every page asks after every batch). */
const FINDINGS_MS = 3_000;
/** Queries kept for the page; the oldest ended one goes first. */
const MAX_QUERIES = 50;

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
    const exception = t.ended?.exception ?? t.query?.exception?.message ?? null;
    const status = t.ended || (t.query && !t.query.isActive) ? (exception ? 'failed' : 'stopped') : 'active';
    return { id: t.id, name: t.name, status, ...(exception ? { exception } : {}) };
  };
  const send = (event: string, data: unknown): void => {
    const text = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const c of clients) {
      // A page that stopped reading (a frozen tab) would grow this process's memory: it is dropped, and reconnects.
      if (!c.write(text)) {
        clients.delete(c);
        c.destroy();
      }
    }
  };
  const forget = (): void => {
    if (tracked.size <= MAX_QUERIES) return;
    const ended = [...tracked.values()].find((t) => t.ended);
    if (ended) tracked.delete(ended.id);
  };
  for (const q of session.streams.active) track(q);

  const listener: StreamingQueryListener = {
    onQueryStarted: (e) => {
      // A new run (a restart has the same id): its query object is registered just after this event.
      const t: Tracked = { ...(tracked.get(e.id) ?? { id: e.id, progress: [] }), name: e.name, query: undefined };
      delete t.ended;
      delete t.findings;
      tracked.set(e.id, t);
      forget();
      setImmediate(() => {
        t.query ??= session.streams.get(e.id);
        send('query', summary(t));
      });
    },
    onQueryProgress: ({ progress }) => {
      metrics.record(progress);
      const t = tracked.get(progress.id) ?? { id: progress.id, name: progress.name, query: session.streams.get(progress.id), progress: [] };
      tracked.set(progress.id, t);
      t.query ??= session.streams.get(progress.id); // registered after its onQueryStarted
      delete t.findings; // a new batch: the next page asking gets fresh findings (shared until the next one)
      t.progress.push(progress);
      if (t.progress.length > KEPT) t.progress.shift();
      send('progress', { query: summary(t), progress });
    },
    onQueryTerminated: (e) => {
      const t = tracked.get(e.id);
      if (!t) return;
      t.ended = { exception: e.exception };
      delete t.findings;
      send('query', summary(t));
    },
  };
  session.streams.addListener(listener);

  const loopback = host === '127.0.0.1' || host === 'localhost' || host === '::1';
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    // DNS rebinding: a web page whose name resolves to 127.0.0.1 could read this API from the browser.
    // On a loopback address only requests that name a loopback host are answered.
    const hostName = (req.headers.host ?? '').replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
    if (loopback && !['127.0.0.1', 'localhost', '::1'].includes(hostName)) {
      res.writeHead(403, { 'Content-Type': 'text/plain' });
      res.end(`The monitor answers on ${host} only (Host: ${req.headers.host ?? 'none'}).`);
      return;
    }
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
        if (!t.findings || Date.now() - t.findings.at > FINDINGS_MS) t.findings = { at: Date.now(), value: t.query.diagnose() };
        return reply(200, 'application/json', JSON.stringify(await t.findings.value));
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
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}/`,
    metrics,
    close: async () => {
      clearInterval(heartbeat);
      session.streams.removeListener(listener);
      for (const c of clients) c.end();
      clients.clear();
      server.closeAllConnections(); // a request still waiting for the broker must not hold the close
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
