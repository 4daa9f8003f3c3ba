/**
 * A Spark Connect client: Spark's own `.proto` files (proto/spark/connect, from the spark-connect_2.12 3.5.7
 * jar) loaded by @grpc/proto-loader, spoken over @grpc/grpc-js. One client is one Spark Connect session.
 * Messages are plain objects in the protos' own field names (snake_case), so a reader can check any of
 * them against the `.proto` text.
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { packageRoot } from '../util/packageRoot.js';
import { SUPPORTED_SPARK, SparkConnectError, parseConnectUrl, type Msg } from './base.js';

function protoRoot(): string {
  const dir = join(packageRoot(), 'proto');
  if (!existsSync(join(dir, 'spark', 'connect', 'base.proto'))) throw new Error(`Spark Connect protos not found in ${dir} (proto/spark/connect/*.proto of the sluice package): reinstall sluice.`);
  return dir;
}

type Unary = (req: Msg, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res: Msg) => void) => void;
interface ServiceClient extends grpc.Client {
  ExecutePlan(req: Msg, md: grpc.Metadata, options: grpc.CallOptions): grpc.ClientReadableStream<Msg>;
  AnalyzePlan: Unary;
  Config: Unary;
}

let serviceCtor: (new (address: string, creds: grpc.ChannelCredentials, options?: object) => ServiceClient) | undefined;
function service(): NonNullable<typeof serviceCtor> {
  if (!serviceCtor) {
    const def = protoLoader.loadSync('spark/connect/base.proto', {
      includeDirs: [protoRoot()],
      keepCase: true,
      longs: String,
      enums: String,
      defaults: false,
      oneofs: true,
    });
    const pkg = grpc.loadPackageDefinition(def) as unknown as { spark: { connect: { SparkConnectService: NonNullable<typeof serviceCtor> } } };
    serviceCtor = pkg.spark.connect.SparkConnectService;
  }
  return serviceCtor;
}

/** The message of a gRPC error from Spark: the server's text, with its error class if any. */
function connectError(e: grpc.ServiceError, address: string): SparkConnectError {
  if (e.code === grpc.status.UNAVAILABLE) {
    return new SparkConnectError(
      `Cannot reach the Spark Connect server at ${address}: ${e.details}. Is it running? Locally: \`sluice up --spark\` starts one on 127.0.0.1.`,
      undefined,
      e.code,
    );
  }
  // Spark 3.5 puts the error class inside the binary status details (ErrorInfo); its message starts with it too.
  const cls = /\[([A-Z_]+(?:\.[A-Z_]+)*)\]/.exec(e.details ?? '')?.[1];
  return new SparkConnectError(`Spark: ${e.details || e.message}`, cls, e.code);
}

export class SparkConnectClient {
  readonly sessionId: string;
  readonly address: string;
  private readonly stub: ServiceClient;
  private readonly metadata = new grpc.Metadata();
  private readonly userId: string;

  constructor(readonly url: string) {
    const u = parseConnectUrl(url);
    this.address = `${u.host.includes(':') ? `[${u.host}]` : u.host}:${u.port}`;
    const ssl = u.params.use_ssl === 'true' || u.params.token !== undefined;
    if (u.params.token) this.metadata.set('authorization', `Bearer ${u.params.token}`);
    for (const [k, v] of Object.entries(u.params)) if (!['token', 'use_ssl', 'user_id', 'session_id', 'user_agent'].includes(k)) this.metadata.set(k, v);
    this.sessionId = u.params.session_id ?? randomUUID();
    this.userId = u.params.user_id ?? process.env.USER ?? 'sluice';
    const Ctor = service();
    this.stub = new Ctor(this.address, ssl ? grpc.credentials.createSsl() : grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': 128 * 1024 * 1024,
    });
  }

  private base(): Msg {
    return { session_id: this.sessionId, user_context: { user_id: this.userId }, client_type: 'sluice' };
  }

  /** Runs a plan (`{ root: Relation }` or `{ command: Command }`) and returns every response; `deadlineMs` bounds the call. */
  execute(plan: Msg, deadlineMs?: number): Promise<Msg[]> {
    return new Promise((resolve, reject) => {
      const out: Msg[] = [];
      const options = deadlineMs === undefined ? {} : { deadline: Date.now() + deadlineMs };
      const call = this.stub.ExecutePlan({ ...this.base(), operation_id: randomUUID(), plan }, this.metadata, options);
      call.on('data', (r: Msg) => out.push(r));
      call.on('error', (e: grpc.ServiceError) => reject(connectError(e, this.address)));
      call.on('end', () => resolve(out));
    });
  }

  /** AnalyzePlan with one analysis, e.g. `{ schema: { plan } }`; returns the response's result. */
  analyze(request: Msg): Promise<Msg> {
    return new Promise((resolve, reject) =>
      this.stub.AnalyzePlan({ ...this.base(), ...request }, this.metadata, (e, r) => (e ? reject(connectError(e, this.address)) : resolve(r))),
    );
  }

  /** Sets session configuration on the server (`spark.sql.shuffle.partitions`, …). */
  setConf(pairs: Record<string, string>): Promise<void> {
    return new Promise((resolve, reject) =>
      this.stub.Config(
        { ...this.base(), operation: { set: { pairs: Object.entries(pairs).map(([key, value]) => ({ key, value })) } } },
        this.metadata,
        (e) => (e ? reject(connectError(e, this.address)) : resolve()),
      ),
    );
  }

  /** The server's Spark version; refuses a version outside {@link SUPPORTED_SPARK}. */
  async sparkVersion(): Promise<string> {
    const r = await this.analyze({ spark_version: {} });
    const v = String((r.spark_version as Msg | undefined)?.version ?? '');
    const [maj, min] = v.split('.').map(Number);
    if (maj !== 3 || min !== 5) {
      throw new SparkConnectError(
        `The Spark Connect server at ${this.address} runs Spark ${v || '(unknown)'}; Sluice compiles plans for Spark ${SUPPORTED_SPARK.min} up to (not including) ${SUPPORTED_SPARK.below}. ` +
          'Point it at a Spark 3.5 cluster, or run the query locally (a session without .remote()).',
      );
    }
    return v;
  }

  close(): void {
    this.stub.close();
  }
}
