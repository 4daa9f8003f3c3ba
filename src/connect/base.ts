/**
 * What every part of the Spark Connect backend shares, and what the rest of Sluice needs of it, without
 * loading gRPC, the protos or Arrow: the message type, errors, the address syntax, the supported versions.
 * A local session imports only this; a remote session loads the client and the compiler at its first action
 * (connect/backend.ts), so `import 'sluice'` does not pay for them.
 */
import { AnalysisError } from '../expr/compile.js';

/** A message in the protos' field names. */
export type Msg = Record<string, unknown>;

/** The Spark versions this client is built and tested against: the protos are 3.5's. */
export const SUPPORTED_SPARK = { min: '3.5.0', below: '3.6.0', protos: '3.5.7' } as const;

/** An error the Spark Connect server returned, with Spark's error class when it gave one. */
export class SparkConnectError extends Error {
  constructor(
    message: string,
    readonly errorClass?: string,
    readonly grpcCode?: number,
  ) {
    super(message);
    this.name = 'SparkConnectError';
  }
}

/** A query Spark Connect cannot run: what, why, and what to use instead. */
export class ConnectUnsupportedError extends AnalysisError {
  constructor(what: string, why: string, instead: string) {
    super(`${what} cannot run on Spark Connect: ${why}. ${instead}`);
    this.name = 'ConnectUnsupportedError';
  }
}

/** `sc://host:port[/;param=value;…]`, as Spark's connection string: `token`, `use_ssl`, `user_id`, `session_id`. */
export interface ConnectUrl {
  host: string;
  port: number;
  params: Record<string, string>;
}

export function parseConnectUrl(url: string): ConnectUrl {
  const m = /^sc:\/\/([^/:;]+|\[[^\]]+\])(?::(\d+))?\/?(;.*)?$/.exec(url.trim());
  if (!m) {
    throw new SparkConnectError(
      `"${url}" is not a Spark Connect address. Write sc://host:port (port 15002 by default), e.g. sc://127.0.0.1:15002, ` +
        'with parameters after a slash: sc://host:15002/;token=…;use_ssl=true.',
    );
  }
  const params: Record<string, string> = {};
  for (const part of (m[3] ?? '').split(';').filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq < 0) throw new SparkConnectError(`Spark Connect address ${url}: parameter "${part}" has no value (write name=value).`);
    params[part.slice(0, eq)] = decodeURIComponent(part.slice(eq + 1));
  }
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: m[2] ? Number(m[2]) : 15002, params };
}
