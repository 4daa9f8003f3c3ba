/**
 * A client for the Confluent Schema Registry REST API (also served by Apicurio under /apis/ccompat/v7):
 * schemas by id, subjects and versions, registration. Schemas by id are immutable and cached forever;
 * "latest version" is asked again each time the caller asks.
 */

export interface RegistryConfig {
  /** Base URL, e.g. `http://127.0.0.1:8081/apis/ccompat/v7` (Apicurio) or `http://host:8081` (Confluent). */
  url: string;
  /** `user:password` for HTTP basic auth (Confluent's `basic.auth.user.info`). */
  basicAuth?: string;
  /** A bearer token (Confluent Cloud OAuth, Apicurio with OIDC). */
  bearerToken?: string;
}

export type SchemaType = 'AVRO' | 'JSON' | 'PROTOBUF';

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
  private readonly registered = new Map<string, number>();
  private readonly base: string;
  private readonly headers: Record<string, string>;

  constructor(readonly config: RegistryConfig) {
    if (!config?.url) {
      throw new RegistryError('A Schema Registry needs a url, e.g. { url: "http://127.0.0.1:8081/apis/ccompat/v7" }.');
    }
    this.base = config.url.replace(/\/+$/, '');
    this.headers = { Accept: CONTENT_TYPE, 'Content-Type': CONTENT_TYPE };
    if (config.basicAuth) this.headers.Authorization = `Basic ${Buffer.from(config.basicAuth).toString('base64')}`;
    else if (config.bearerToken) this.headers.Authorization = `Bearer ${config.bearerToken}`;
  }

  private async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(this.base + path, { method, headers: this.headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
      throw new RegistryError(
        `Cannot reach the Schema Registry at ${this.base} (${cause}). Is it running? For the local stack: sluice up; sluice status.`,
      );
    }
    const text = await res.text();
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
            ? ` Is ${this.base} the Confluent-compatible API root? For Apicurio it ends in /apis/ccompat/v7.`
            : '';
      throw new RegistryError(`Schema Registry ${method} ${path} failed: ${res.status} ${j.message ?? text.slice(0, 200)}.${hint}`, res.status, j.error_code);
    }
    return json as T;
  }

  /** The schema with this id (the id in the 5-byte header of every framed record). */
  getById(id: number): Promise<RegisteredSchema> {
    let p = this.byId.get(id);
    if (!p) {
      p = this.request<{ schema: string; schemaType?: SchemaType }>('GET', `/schemas/ids/${id}`).then((r) => ({
        id,
        schema: r.schema,
        schemaType: r.schemaType ?? 'AVRO',
      }));
      // A failed look-up is not cached: a registry that was down may answer next time.
      p.catch(() => this.byId.delete(id));
      this.byId.set(id, p);
    }
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
  const key = JSON.stringify([config.url, config.basicAuth ?? '', config.bearerToken ?? '']);
  let c = clients.get(key);
  if (!c) {
    c = new RegistryClient(config);
    clients.set(key, c);
  }
  return c;
}
