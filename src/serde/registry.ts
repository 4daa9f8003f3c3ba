/**
 * A client for the Confluent Schema Registry REST API (also served by Apicurio under /apis/ccompat/v7):
 * schemas by id, subjects and versions, registration. Schemas by id are immutable and cached forever;
 * "latest version" is asked again each time the caller asks.
 *
 * Every request has a timeout and is retried with exponential backoff (bounded, with jitter) when the
 * failure may pass: the registry unreachable or too slow, 5xx, 408, 429. Other 4xx answers are final.
 * All requests are safe to repeat (registering the same schema twice gives the same id).
 *
 * An unknown schema id (404 on /schemas/ids/N) is special: the id came from a record, so some registry
 * assigned it, and a replica that does not know it yet is lagging (Confluent's followers, a registry behind
 * a load balancer). So a 404 for an id is retried too, and once the retries are spent it is remembered only
 * for `unknownIdRecheckMs`: later look-ups within that time fail at once (no request per record), later
 * ones ask the registry again. It is never cached as missing for good. Once an id stayed unknown through
 * its retries, other unknown ids get one attempt each for `unknownIdRecheckMs` (no backoff per garbage id).
 */
import { redactUrl } from '../util/redact.js';

export interface RegistryConfig {
  /** Base URL, e.g. `http://127.0.0.1:8081/apis/ccompat/v7` (Apicurio) or `http://host:8081` (Confluent). */
  url: string;
  /** `user:password` for HTTP basic auth (Confluent's `basic.auth.user.info`). */
  basicAuth?: string;
  /** A bearer token (Confluent Cloud OAuth, Apicurio with OIDC). */
  bearerToken?: string;
  /** How long one request may take before it is abandoned (and retried), in ms. Default 10 000. */
  timeoutMs?: number;
  /**
   * How many times a request that may succeed later (no answer, 5xx, 408, 429) is retried, so at most
   * retries + 1 attempts. Default 12: with the default backoff, a registry that is away for about half a
   * minute stalls the query instead of failing it. A 404 for a schema id is retried at most 4 times.
   */
  retries?: number;
  /** The first retry's delay in ms; it doubles for each retry, with jitter. Default 200. */
  retryBackoffMs?: number;
  /** The longest delay between retries, in ms. Default 5 000. */
  retryMaxBackoffMs?: number;
  /** After an id's retries are spent, how long it counts as unknown before the registry is asked again, in ms. Default 30 000. */
  unknownIdRecheckMs?: number;
}

/** How many times a 404 for a schema id is retried (replication lag), whatever `retries` says. */
const NOT_FOUND_RETRIES = 4;

/** The defaults of the retry settings of {@link RegistryConfig}. */
export const REGISTRY_DEFAULTS = {
  timeoutMs: 10_000,
  retries: 12,
  retryBackoffMs: 200,
  retryMaxBackoffMs: 5_000,
  unknownIdRecheckMs: 30_000,
} as const;

export type SchemaType = 'AVRO' | 'JSON' | 'PROTOBUF';

/** What a failed connection most likely means, by its system error code — "is it running?" only when nothing listens. */
function unreachableHint(code: string | undefined): string {
  switch (code) {
    case 'ECONNREFUSED':
      return 'Nothing listens there: is the registry running, on that port? For the local stack: sluice up; sluice status.';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'The host name does not resolve: check the registry url.';
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
      return 'The connection was dropped: is the url http:// for an https:// registry (or the reverse), or is a proxy in the way?';
    case 'ETIMEDOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
      return 'The connection timed out: a firewall, or the wrong host.';
    default:
      return code && /CERT|SSL|TLS/i.test(code)
        ? 'The TLS handshake failed: the registry\'s certificate is not trusted here (NODE_EXTRA_CA_CERTS names a CA file), or the host name does not match it.'
        : 'Check the registry url and that the registry is reachable from here.';
  }
}

export interface RegisteredSchema {
  id: number;
  schema: string;
  schemaType: SchemaType;
  subject?: string;
  version?: number;
}

export class RegistryError extends Error {
  override name = 'RegistryError';
  constructor(
    message: string,
    readonly status?: number,
    readonly errorCode?: number,
  ) {
    super(message);
  }
}

const CONTENT_TYPE = 'application/vnd.schemaregistry.v1+json';

export class RegistryClient {
  private readonly byId = new Map<number, Promise<RegisteredSchema>>();
  /** Ids the registry did not know after all retries, with when to ask again (never forever: replication lag). */
  private readonly unknownIds = new Map<number, { error: RegistryError; until: number }>();
  /**
   * Until when a 404 for an id is final at once: after one id stayed unknown through all its retries, the
   * registry is not merely a moment behind (or the ids are garbage: random bytes after a 0 byte), and
   * waiting out the backoff again for every further unknown id would stall the query for seconds per id.
   */
  private notFoundFinalUntil = 0;
  private readonly registered = new Map<string, number>();
  private readonly base: string;
  /** The base URL as shown in messages: no password. */
  private readonly shown: string;
  private readonly headers: Record<string, string>;
  private readonly retry: Required<Pick<RegistryConfig, keyof typeof REGISTRY_DEFAULTS>>;

  constructor(readonly config: RegistryConfig) {
    if (!config?.url) {
      throw new RegistryError('A Schema Registry needs a url, e.g. { url: "http://127.0.0.1:8081/apis/ccompat/v7" }.');
    }
    this.retry = { ...REGISTRY_DEFAULTS };
    for (const k of Object.keys(REGISTRY_DEFAULTS) as Array<keyof typeof REGISTRY_DEFAULTS>) {
      const v = config[k];
      if (v === undefined) continue;
      if (!(Number.isFinite(v) && v >= 0) || (k === 'retries' && !Number.isInteger(v)) || (k === 'timeoutMs' && v === 0)) {
        throw new RegistryError(`Registry setting ${k} must be a ${k === 'retries' ? 'whole number' : 'number of milliseconds'} ${k === 'timeoutMs' ? 'above 0' : 'of 0 or more'}, got ${String(v)}.`);
      }
      this.retry[k] = v;
    }
    // Credentials in the URL (http://user:password@host) become basic auth: fetch refuses such URLs, and
    // the URL is shown in messages, where a password must never appear.
    let userInfo: string | undefined;
    let base = config.url;
    try {
      const u = new URL(config.url);
      if (u.username || u.password) {
        userInfo = `${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`;
        u.username = '';
        u.password = '';
        base = u.toString();
      }
    } catch {
      // Not a URL fetch can use either; the first request says so.
    }
    this.base = base.replace(/\/+$/, '');
    this.shown = redactUrl(this.base);
    this.headers = { Accept: CONTENT_TYPE, 'Content-Type': CONTENT_TYPE };
    if (config.basicAuth) this.headers.Authorization = `Basic ${Buffer.from(config.basicAuth).toString('base64')}`;
    else if (config.bearerToken) this.headers.Authorization = `Bearer ${config.bearerToken}`;
    else if (userInfo) this.headers.Authorization = `Basic ${Buffer.from(userInfo).toString('base64')}`;
  }

  /**
   * One request, retried with exponential backoff while the failure may pass. `retryNotFound`: a 404 is
   * retried too (schema ids: replication lag).
   */
  private async request<T>(method: string, path: string, body?: unknown, retryNotFound = false): Promise<T> {
    const { retries, retryBackoffMs, retryMaxBackoffMs } = this.retry;
    if (retryNotFound && Date.now() < this.notFoundFinalUntil) retryNotFound = false;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.attempt<T>(method, path, body);
      } catch (e) {
        const err = e as RegistryError;
        const transient = err.status === undefined || err.status >= 500 || err.status === 408 || err.status === 429 || (retryNotFound && err.status === 404);
        // An unknown id is far more often a garbage frame than replication lag: a few retries, not half a minute.
        if (!transient || attempt >= (err.status === 404 ? Math.min(retries, NOT_FOUND_RETRIES) : retries)) {
          if (attempt > 0) err.message += ` (after ${attempt + 1} attempts)`;
          if (retryNotFound && err.status === 404) this.notFoundFinalUntil = Date.now() + this.retry.unknownIdRecheckMs;
          throw err;
        }
        // Exponential backoff with "equal jitter": between half and all of the doubled delay, so clients
        // that failed together do not retry together.
        const ceiling = Math.min(retryMaxBackoffMs, retryBackoffMs * 2 ** attempt);
        await new Promise((r) => setTimeout(r, ceiling / 2 + Math.random() * (ceiling / 2)));
      }
    }
  }

  private async attempt<T>(method: string, path: string, body?: unknown): Promise<T> {
    const { timeoutMs } = this.retry;
    let res: Response;
    let text: string;
    try {
      res = await fetch(this.base + path, {
        method,
        headers: this.headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
      text = await res.text();
    } catch (e) {
      const name = (e as Error).name;
      if (name === 'TimeoutError' || name === 'AbortError') {
        throw new RegistryError(
          `The Schema Registry at ${this.shown} did not answer ${method} ${path} within ${timeoutMs} ms. ` +
            'Is it overloaded or unreachable? Raise timeoutMs in the registry settings if it is just slow.',
        );
      }
      const code = (e as { cause?: { code?: string } }).cause?.code;
      const cause = redactUrl(code ?? (e as { cause?: Error }).cause?.message ?? (e as Error).message);
      throw new RegistryError(`Cannot reach the Schema Registry at ${this.shown} (${cause}). ${unreachableHint(code)}`);
    }
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (!res.ok) {
      const j = (json ?? {}) as { message?: string; error_code?: number };
      const hint =
        res.status === 401 || res.status === 403
          ? ' Check the registry credentials (basicAuth "user:password" or bearerToken).'
          : res.status === 404 && !j.error_code
            ? ` Is ${this.shown} the Confluent-compatible API root? For Apicurio it ends in /apis/ccompat/v7.`
            : '';
      throw new RegistryError(`Schema Registry ${method} ${path} failed: ${res.status} ${j.message ?? text.slice(0, 200)}.${hint}`, res.status, j.error_code);
    }
    return json as T;
  }

  /**
   * The schema with this id (the id in the 5-byte header of every framed record). An id the registry does
   * not know is asked for again with backoff (replication lag), then reported as a 404 RegistryError; for
   * `unknownIdRecheckMs` after that the same error is returned without asking, then the registry is asked again.
   */
  getById(id: number): Promise<RegisteredSchema> {
    let p = this.byId.get(id);
    if (p) return p;
    const unknown = this.unknownIds.get(id);
    if (unknown && Date.now() < unknown.until) return Promise.reject(unknown.error);
    this.unknownIds.delete(id);
    p = this.request<{ schema: string; schemaType?: SchemaType }>('GET', `/schemas/ids/${id}`, undefined, true).then((r) => ({
      id,
      schema: r.schema,
      schemaType: r.schemaType ?? 'AVRO',
    }));
    // A failed look-up is not cached as the answer: a registry that was down, or behind, may answer next time.
    p.catch((e: unknown) => {
      this.byId.delete(id);
      if (e instanceof RegistryError && e.status === 404) this.unknownIds.set(id, { error: e, until: Date.now() + this.retry.unknownIdRecheckMs });
    });
    this.byId.set(id, p);
    return p;
  }

  async getVersion(subject: string, version: number | 'latest' = 'latest'): Promise<RegisteredSchema> {
    const r = await this.request<{ id: number; schema: string; schemaType?: SchemaType; version: number; subject: string }>(
      'GET',
      `/subjects/${encodeURIComponent(subject)}/versions/${version}`,
    );
    return { id: r.id, schema: r.schema, schemaType: r.schemaType ?? 'AVRO', subject: r.subject, version: r.version };
  }

  /** Registers a schema under a subject (or finds it, if already there) and returns its id. */
  async register(subject: string, schema: string, schemaType: SchemaType = 'AVRO'): Promise<number> {
    const key = `${subject}\u0000${schema}`;
    const known = this.registered.get(key);
    if (known !== undefined) return known;
    const body: Record<string, unknown> = { schema };
    if (schemaType !== 'AVRO') body.schemaType = schemaType;
    const r = await this.request<{ id: number }>('POST', `/subjects/${encodeURIComponent(subject)}/versions`, body);
    this.registered.set(key, r.id);
    return r.id;
  }

  listSubjects(): Promise<string[]> {
    return this.request<string[]>('GET', '/subjects');
  }

  listVersions(subject: string): Promise<number[]> {
    return this.request<number[]>('GET', `/subjects/${encodeURIComponent(subject)}/versions`);
  }

  /** Deletes a subject (soft, then permanently), e.g. to start a lesson clean. Missing subjects are fine. */
  async deleteSubject(subject: string): Promise<void> {
    for (const suffix of ['', '?permanent=true']) {
      try {
        await this.request('DELETE', `/subjects/${encodeURIComponent(subject)}${suffix}`);
      } catch (e) {
        if (!(e instanceof RegistryError) || e.status !== 404) throw e;
      }
    }
  }

  /** Sets the subject's compatibility level (BACKWARD, FORWARD, FULL, NONE, …). */
  async setCompatibility(subject: string, level: string): Promise<void> {
    await this.request('PUT', `/config/${encodeURIComponent(subject)}`, { compatibility: level });
  }
}

const clients = new Map<string, RegistryClient>();

/** One client (and one cache) per registry URL and credentials in the process. */
export function registryClient(config: RegistryConfig): RegistryClient {
  const key = JSON.stringify([config.url, config.basicAuth ?? '', config.bearerToken ?? '', ...Object.keys(REGISTRY_DEFAULTS).map((k) => config[k as keyof typeof REGISTRY_DEFAULTS] ?? null)]);
  let c = clients.get(key);
  if (!c) {
    c = new RegistryClient(config);
    clients.set(key, c);
  }
  return c;
}
