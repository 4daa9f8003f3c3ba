/**
 * The local stack: a real Apache Kafka broker (KRaft, combined broker+controller, jars from Maven Central)
 * and a real Schema Registry (Apicurio Registry, Confluent-compatible API), both bound to 127.0.0.1. Jars are
 * installed once into a cache outside the repository (`$SLUICE_HOME`, default ~/.cache/sluice); each stack
 * instance has its own folder with data, logs, pids and ports (`stack.json`). The registry stores its schemas
 * in an H2 database file in that folder (`registry-db/`), so `down`/`up` keeps them and their ids; only
 * `down --purge` deletes them, together with the topics.
 *
 * Optional services (`up({ with: ['redis'] })`, `sluice up --with redis`): a Redis server from the Debian
 * `redis-server` package, on 127.0.0.1 only, its data in `<stack>/redis/` (append-only file on, so `down`/`up`
 * keeps it), its pid and port in `<stack>/redis/redis.json`. It is also startable alone (`startRedis`), as the
 * tests do in a folder of their own.
 */
import { sparkConnectStatus, startSparkConnect, stopSparkConnect } from './spark.js';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { KafkaConfig } from '../kafka/client.js';
import { brokerSecurityProperties, readCredentials, scramUserArgs, secureClientConfig, secureMaterial, writeRegistryAuth, type SecureInfo } from './secure.js';

export const KAFKA_VERSION = '4.1.2';
/** 3.0.9: the newest Apicurio that runs on Java 17 (3.3.x is compiled for Java 21). See docs/decisions.md. */
export const APICURIO_VERSION = '3.0.9';
const LOG4J_VERSION = '2.24.3';

export class StackError extends Error {
  override name = 'StackError';
}

export interface StackPorts {
  kafka: number;
  controller: number;
  registry: number;
}

export interface StackInfo {
  dir: string;
  ports: StackPorts;
  pids: { kafka?: number; registry?: number };
  bootstrapServers: string;
  registryUrl: string;
  /** `redis://127.0.0.1:<port>` when the stack was started with Redis (`with: ['redis']`). */
  redisUrl?: string;
  /** `sc://127.0.0.1:<port>` when the stack was started with Spark Connect (`with: ['spark']`, `sluice up --spark`). */
  sparkConnectUrl?: string;
  /** Set when the stack was started with `secure` (`sluice up --secure`): where its CA and credentials are. */
  secure?: SecureInfo;
}

/** The librdkafka settings a client of this stack needs beyond bootstrap.servers (SASL/TLS when secure). */
export function stackClientSecurity(i: StackInfo): KafkaConfig {
  return i.secure ? secureClientConfig(i.secure, readCredentials(i.secure)) : {};
}

/** The registry's `user:password` for this stack, when it is secure. */
export function stackRegistryAuth(i: StackInfo): string | undefined {
  if (!i.secure) return undefined;
  const c = readCredentials(i.secure);
  return `${c.registryUsername}:${c.registryPassword}`;
}

export const DEFAULT_PORTS: StackPorts = { kafka: 9092, controller: 9093, registry: 8081 };

export function sluiceHome(): string {
  return process.env.SLUICE_HOME ?? join(homedir(), '.cache', 'sluice');
}

/** The default stack instance folder (`sluice up` without --dir). */
export function defaultStackDir(): string {
  return process.env.SLUICE_STACK_DIR ?? join(sluiceHome(), 'stack');
}

export type Log = (line: string) => void;

function java(): string {
  const candidates = [process.env.JAVA_HOME ? join(process.env.JAVA_HOME, 'bin', 'java') : undefined, 'java'].filter(Boolean) as string[];
  for (const c of candidates) {
    const r = spawnSync(c, ['-version'], { encoding: 'utf8' });
    if (r.status === 0) {
      const m = /version "(\d+)/.exec(r.stderr);
      if (m && Number(m[1]) < 17) throw new StackError(`${c} is Java ${m[1]}; Kafka ${KAFKA_VERSION} needs Java 17 or newer. Set JAVA_HOME to a JDK 17+.`);
      return c;
    }
  }
  throw new StackError('Java was not found. The local Kafka and Schema Registry run on Java 17+: install a JDK (apt-get install openjdk-17-jre-headless) or set JAVA_HOME.');
}

function mvn(args: string[], cwd: string, log: Log): void {
  const r = spawnSync('mvn', ['-B', '-q', ...args], { cwd, encoding: 'utf8' });
  if (r.error) throw new StackError('Maven (mvn) was not found: it downloads the Kafka and registry jars from Maven Central. Install it (apt-get install maven).');
  if (r.status !== 0) {
    log(r.stdout.slice(-2000) + r.stderr.slice(-2000));
    throw new StackError(`mvn ${args.join(' ')} failed (exit ${r.status}). Is Maven Central reachable from this machine?`);
  }
}

/** Downloads the jars on first use; later calls find them and return at once. */
export function install(log: Log = (l) => process.stderr.write(l + '\n')): { kafkaLibs: string; registryJar: string } {
  const home = sluiceHome();
  const kafkaLibs = join(home, `kafka-${KAFKA_VERSION}`, 'libs');
  const registryDir = join(home, `apicurio-registry-${APICURIO_VERSION}`);
  const registryJar = join(registryDir, `apicurio-registry-app-${APICURIO_VERSION}-runner.jar`);
  const kafkaDone = join(kafkaLibs, '.complete');
  if (!existsSync(kafkaDone)) {
    log(`Installing Apache Kafka ${KAFKA_VERSION} from Maven Central into ${kafkaLibs} (about 45 MB, once)…`);
    const work = join(home, `kafka-${KAFKA_VERSION}`);
    mkdirSync(work, { recursive: true });
    writeFileSync(
      join(work, 'pom.xml'),
      `<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
<groupId>dev.sluice</groupId><artifactId>local-kafka</artifactId><version>1</version><packaging>pom</packaging>
<dependencies>
<dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>${KAFKA_VERSION}</version></dependency>
<dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>${LOG4J_VERSION}</version></dependency>
</dependencies></project>\n`,
    );
    rmSync(kafkaLibs, { recursive: true, force: true });
    mvn(['dependency:copy-dependencies', `-DoutputDirectory=${kafkaLibs}`], work, log);
    writeFileSync(kafkaDone, new Date().toISOString());
  }
  if (!existsSync(registryJar)) {
    log(`Installing Apicurio Registry ${APICURIO_VERSION} from Maven Central into ${registryDir} (about 110 MB, once)…`);
    mkdirSync(registryDir, { recursive: true });
    mvn(
      ['dependency:copy', `-Dartifact=io.apicurio:apicurio-registry-app:${APICURIO_VERSION}:tar.gz:all`, `-DoutputDirectory=${registryDir}`],
      registryDir,
      log,
    );
    const tgz = join(registryDir, `apicurio-registry-app-${APICURIO_VERSION}-all.tar.gz`);
    execFileSync('tar', ['xzf', tgz, '-C', registryDir]);
    rmSync(tgz);
    if (!existsSync(registryJar)) throw new StackError(`The Apicurio archive did not contain ${registryJar}.`);
  }
  return { kafkaLibs, registryJar };
}

export function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** A port the OS says is free now (for tests: each run gets its own). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The command line of process `pid` (arguments joined by spaces), or undefined if it cannot be read. */
export function processCommandLine(pid: number): string | undefined {
  try {
    // Linux: arguments separated by NUL bytes.
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
  } catch {
    // Elsewhere (macOS, BSD): ask ps.
    const r = spawnSync('ps', ['-o', 'command=', '-p', String(pid)], { encoding: 'utf8' });
    return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : undefined;
  }
}

/**
 * What the command line of each stack process contains, so a pid from stack.json is only trusted while it
 * still names the process `up` started: pids are reused, and an old stack.json (after a reboot, or a crash
 * of the stack) can hold the pid of some other program — which `down` must never signal.
 */
function expectedCommand(dir: string, ports: StackPorts): Record<'kafka' | 'registry', string[]> {
  return {
    kafka: ['kafka.Kafka', join(dir, 'server.properties')],
    registry: ['apicurio-registry-app', `-Dquarkus.http.port=${ports.registry}`],
  };
}

/** The pid if that process is alive and is the stack's `which` process of this stack folder; else undefined. */
function ownProcess(i: StackInfo | undefined, which: 'kafka' | 'registry'): number | undefined {
  const pid = i?.pids[which];
  if (!i || !alive(pid)) return undefined;
  const cmd = processCommandLine(pid!);
  return cmd !== undefined && expectedCommand(i.dir, i.ports)[which].every((part) => cmd.includes(part)) ? pid : undefined;
}

function readInfo(dir: string): StackInfo | undefined {
  const path = join(dir, 'stack.json');
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as StackInfo) : undefined;
}

function info(dir: string, ports: StackPorts, pids: StackInfo['pids'], secure?: SecureInfo): StackInfo {
  return {
    dir,
    ports,
    pids,
    bootstrapServers: `127.0.0.1:${ports.kafka}`,
    registryUrl: `http://127.0.0.1:${ports.registry}/apis/ccompat/v7`,
    ...(secure ? { secure } : {}),
  };
}

async function registryHealthy(url: string, basicAuth?: string): Promise<boolean> {
  try {
    const headers: Record<string, string> = basicAuth ? { Authorization: `Basic ${Buffer.from(basicAuth).toString('base64')}` } : {};
    const r = await fetch(`${url}/subjects`, { signal: AbortSignal.timeout(2000), headers });
    return r.ok;
  } catch {
    return false;
  }
}

export interface StackStatus {
  dir: string;
  kafka: { running: boolean; healthy: boolean; pid?: number; bootstrapServers?: string };
  registry: { running: boolean; healthy: boolean; pid?: number; url?: string };
  /** Present once Redis was started in this stack folder; `pid` is set until `down` stops it. */
  redis?: { running: boolean; healthy: boolean; pid?: number; url?: string };
  /** Present once Spark Connect was started in this stack folder (`sluice up --spark`). */
  spark?: { running: boolean; healthy: boolean; pid?: number; url: string };
  /** Present when the stack was started with `secure`. */
  secure?: SecureInfo;
}

export async function status(dir = defaultStackDir()): Promise<StackStatus> {
  const i = readInfo(dir);
  // A pid counts only while it is still the process this stack started (pids are reused).
  const kafkaUp = ownProcess(i, 'kafka') !== undefined;
  const regUp = ownProcess(i, 'registry') !== undefined;
  return {
    dir,
    kafka: { running: kafkaUp, healthy: kafkaUp && !!i && (await tcpOpen(i.ports.kafka)), ...(i ? { pid: i.pids.kafka, bootstrapServers: i.bootstrapServers } : {}) },
    registry: { running: regUp, healthy: regUp && !!i && (await registryHealthy(i.registryUrl, stackRegistryAuth(i))), ...(i ? { pid: i.pids.registry, url: i.registryUrl } : {}) },
    ...(await redisStatus(dir)),
    ...(await sparkConnectStatus(dir)),
    ...(i?.secure ? { secure: i.secure } : {}),
  };
}

export async function waitFor(what: string, check: () => Promise<boolean>, pid: number, logFile: string, timeoutMs: number, log: Log): Promise<void> {
  const start = Date.now();
  let lastNote = start;
  while (Date.now() - start < timeoutMs) {
    if (await check()) return;
    if (!alive(pid)) {
      const tail = existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n').slice(-15).join('\n') : '';
      throw new StackError(`${what} exited during start-up. Last lines of ${logFile}:\n${tail}`);
    }
    if (Date.now() - lastNote > 10_000) {
      log(`  …waiting for ${what} (${Math.round((Date.now() - start) / 1000)} s)`);
      lastNote = Date.now();
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new StackError(`${what} did not become healthy within ${timeoutMs / 1000} s; see ${logFile}.`);
}

const LOG4J2 = `status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka.server.KafkaRaftServer
logger.kafka.level = INFO
`;

/**
 * The registry's storage: Apicurio's SQL storage (`apicurio.storage.kind=sql`, `apicurio.storage.sql.kind=h2`,
 * its defaults, set anyway) on an H2 database in a FILE in the stack folder instead of its default
 * `jdbc:h2:mem:` URL, so schemas and the id sequences survive `down`/`up` and ids are never handed out twice
 * (see docs/decisions.md). WRITE_DELAY=0: each commit is written at once, so a registration the registry
 * answered survives even a killed registry (`down` escalates to SIGKILL after 20 s).
 */
function registryDbUrl(folder: string): string {
  // ';' separates H2 URL settings: a folder name with one would be read as a setting.
  if (folder.includes(';')) throw new StackError(`The stack folder ${folder} contains ';', which the registry's database URL cannot hold. Choose another --dir.`);
  return `jdbc:h2:file:${join(folder, 'registry')};WRITE_DELAY=0`;
}

/** Services `up` starts besides Kafka and the registry, when asked (`with`). */
export const STACK_SERVICES = ['redis', 'spark'] as const;
export type StackService = (typeof STACK_SERVICES)[number];

export interface UpOptions {
  dir?: string;
  ports?: Partial<StackPorts>;
  log?: Log;
  /** Optional services to start too: `['redis']`. */
  with?: readonly StackService[];
  /** Redis port (default: the one it had in this folder, else DEFAULT_REDIS_PORT). */
  redisPort?: number;
  /** Spark Connect port (with `spark`; default: the one it had in this folder, else 15002). */
  sparkPort?: number;
  /** Kafka with SASL/SCRAM over TLS and the registry with basic auth (stack/secure.ts). A running stack of the other kind is restarted. */
  secure?: boolean;
}

/**
 * Starts Kafka and the registry (installing them on first use), and the services in `with`. Idempotent: what
 * runs healthy is left alone. A missing redis-server or a taken Redis port fails before Kafka starts.
 */
export async function up(opts: UpOptions = {}): Promise<StackInfo> {
  const services = opts.with ?? [];
  for (const s of services) {
    if (!STACK_SERVICES.includes(s)) throw new StackError(`Unknown service "${String(s)}": the stack can start ${STACK_SERVICES.join(', ')}.`);
  }
  const dir = opts.dir ?? defaultStackDir();
  if (services.includes('redis')) await checkRedisCanStart(dir, opts.redisPort);
  let info = await upKafkaAndRegistry(opts);
  if (services.includes('redis')) {
    const redis = await startRedis({ dir, ...(opts.redisPort !== undefined ? { port: opts.redisPort } : {}), ...(opts.log ? { log: opts.log } : {}) });
    info = { ...info, redisUrl: redis.url };
  }
  if (services.includes('spark')) {
    const spark = await startSparkConnect({ dir, ...(opts.sparkPort !== undefined ? { port: opts.sparkPort } : {}), ...(opts.log ? { log: opts.log } : {}) });
    info = { ...info, sparkConnectUrl: spark.url };
  } else {
    // A Spark Connect server this folder started earlier and still running keeps its address in stack.json.
    const running = (await sparkConnectStatus(dir)).spark;
    if (running?.running) info = { ...info, sparkConnectUrl: running.url };
  }
  if (services.length || info.sparkConnectUrl) writeFileSync(join(dir, 'stack.json'), JSON.stringify(info, null, 2) + '\n');
  return info;
}

async function upKafkaAndRegistry(opts: UpOptions): Promise<StackInfo> {
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const dir = opts.dir ?? defaultStackDir();
  const existing = readInfo(dir);
  const st = await status(dir);
  const secure = opts.secure ?? false;
  if (existing && st.kafka.healthy && st.registry.healthy && !!existing.secure === secure) {
    log(`The stack in ${dir} is already running: Kafka ${existing.bootstrapServers}, registry ${existing.registryUrl}`);
    return existing;
  }
  if (existing && (st.kafka.running || st.registry.running)) await downKafkaAndRegistry({ dir, log: () => {} });
  const ports: StackPorts = { ...DEFAULT_PORTS, ...(existing?.ports ?? {}), ...(opts.ports ?? {}) };
  const javaBin = java();
  for (const [name, port] of Object.entries(ports)) {
    if (!(await portFree(port))) {
      throw new StackError(
        `Port ${port} (${name}) on 127.0.0.1 is taken by another program. Stop it, or choose other ports: ` +
          `sluice up --kafka-port N --controller-port N --registry-port N.`,
      );
    }
  }
  // Kept by `down` (only `down --purge` deletes it): schema ids must outlive the registry process.
  const registryDb = join(resolve(dir), 'registry-db');
  const registryJdbc = registryDbUrl(registryDb);
  const { kafkaLibs, registryJar } = install(log);
  mkdirSync(join(dir, 'logs'), { recursive: true });
  // A secure broker's SCRAM users are written when its storage is formatted: it has a data folder of its own.
  const dataDir = join(dir, secure ? 'kafka-data-secure' : 'kafka-data');
  const props = join(dir, 'server.properties');
  const material = secure ? secureMaterial(resolve(dir), log) : undefined;
  writeRegistryAuth(dir, material?.credentials);
  writeFileSync(
    props,
    [
      'process.roles=broker,controller',
      'node.id=1',
      `controller.quorum.voters=1@127.0.0.1:${ports.controller}`,
      ...(material
        ? brokerSecurityProperties(ports.kafka, ports.controller, material.credentials, material.keystore, material.info.caLocation)
        : [
            `listeners=PLAINTEXT://127.0.0.1:${ports.kafka},CONTROLLER://127.0.0.1:${ports.controller}`,
            `advertised.listeners=PLAINTEXT://127.0.0.1:${ports.kafka}`,
            'controller.listener.names=CONTROLLER',
            'inter.broker.listener.name=PLAINTEXT',
            'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
          ]),
      `log.dirs=${dataDir}`,
      'num.partitions=1',
      'offsets.topic.replication.factor=1',
      'transaction.state.log.replication.factor=1',
      'transaction.state.log.min.isr=1',
      'share.coordinator.state.topic.replication.factor=1',
      'share.coordinator.state.topic.min.isr=1',
      'group.initial.rebalance.delay.ms=0',
      'auto.create.topics.enable=false',
      '',
    ].join('\n'),
  );
  writeFileSync(join(dir, 'log4j2.properties'), LOG4J2);
  const cp = `${kafkaLibs}/*`;
  const jvm = ['-Xms256m', '-Xmx1g', `-Dlog4j2.configurationFile=${join(dir, 'log4j2.properties')}`, '-cp', cp];
  if (!existsSync(join(dataDir, 'meta.properties'))) {
    // Kafka's own Uuid.randomUuid() avoids ids that start with '-': the tool would read one as an option.
    let clusterId = randomBytes(16).toString('base64url');
    while (clusterId.startsWith('-')) clusterId = randomBytes(16).toString('base64url');
    const users = material ? scramUserArgs(material.credentials) : [];
    const r = spawnSync(javaBin, [...jvm, 'kafka.tools.StorageTool', 'format', '-t', clusterId, '-c', props, ...users], { encoding: 'utf8' });
    if (r.status !== 0) throw new StackError(`Formatting Kafka storage failed:\n${r.stdout}\n${r.stderr}`);
  }
  const kafkaLog = join(dir, 'logs', 'kafka.log');
  const kafka = spawn(javaBin, [...jvm, 'kafka.Kafka', props], { detached: true, stdio: ['ignore', openSync(kafkaLog, 'a'), openSync(kafkaLog, 'a')] });
  kafka.unref();
  const registryLog = join(dir, 'logs', 'registry.log');
  mkdirSync(registryDb, { recursive: true });
  const registry = spawn(
    javaBin,
    [
      '-Xms128m',
      '-Xmx512m',
      '-Dapicurio.storage.kind=sql',
      '-Dapicurio.storage.sql.kind=h2',
      `-Dapicurio.datasource.url=${registryJdbc}`,
      `-Dquarkus.http.port=${ports.registry}`,
      '-Dquarkus.http.host=127.0.0.1',
      '-Dquarkus.http.access-log.enabled=false',
      '-Dquarkus.log.level=WARN',
      '-jar',
      registryJar,
    ],
    { detached: true, cwd: dir, stdio: ['ignore', openSync(registryLog, 'a'), openSync(registryLog, 'a')] },
  );
  registry.unref();
  const result = info(dir, ports, { kafka: kafka.pid, registry: registry.pid }, material?.info);
  writeFileSync(join(dir, 'stack.json'), JSON.stringify(result, null, 2) + '\n');
  log(
    `Starting Kafka ${KAFKA_VERSION} on ${result.bootstrapServers}${material ? ` (SASL_SSL, ${material.info.saslMechanism})` : ''} and Apicurio Registry ` +
      `${APICURIO_VERSION} on ${result.registryUrl}${material ? ' (basic auth)' : ''} …`,
  );
  try {
    await Promise.all([
      waitFor('Kafka', () => kafkaReady(result), kafka.pid!, kafkaLog, 120_000, log),
      waitFor('the Schema Registry', () => registryHealthy(result.registryUrl, stackRegistryAuth(result)), registry.pid!, registryLog, 180_000, log),
    ]);
  } catch (e) {
    await downKafkaAndRegistry({ dir, log: () => {} });
    throw e;
  }
  log(`Stack up. Logs: ${join(dir, 'logs')}`);
  if (material) {
    log(
      `Secure: clients log in as "${material.info.username}" (${material.info.saslMechanism} over TLS, CA ${material.info.caLocation}); ` +
        `the passwords are in ${material.info.credentialsFile}. connection() and the sluice commands use them.`,
    );
  }
  return result;
}

/** Kafka is ready when a client can list topics (the listener is up and the controller elected). */
async function kafkaReady(i: StackInfo): Promise<boolean> {
  if (!(await tcpOpen(i.ports.kafka))) return false;
  const { KafkaAdmin } = await import('../kafka/client.js');
  const admin = new KafkaAdmin({ 'bootstrap.servers': i.bootstrapServers, ...stackClientSecurity(i) }, 3000);
  try {
    await admin.listTopics();
    return true;
  } catch {
    return false;
  } finally {
    admin.disconnect();
  }
}

export async function kill(pid: number | undefined): Promise<void> {
  if (!alive(pid)) return;
  try {
    process.kill(-pid!, 'SIGTERM'); // the process group: java and anything it started
  } catch {
    process.kill(pid!, 'SIGTERM');
  }
  const deadline = Date.now() + 20_000;
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  if (alive(pid)) process.kill(pid!, 'SIGKILL');
}

/**
 * Stops the stack (Redis too, if it runs), keeping its data; with `purge`, also deletes the data (topics,
 * offsets, registered schemas, Redis's data).
 */
export async function down(opts: { dir?: string; purge?: boolean; log?: Log } = {}): Promise<void> {
  const dir = opts.dir ?? defaultStackDir();
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  await stopSparkConnect({ dir, log });
  const hadRedis = readRedisInfo(dir) !== undefined;
  if (hadRedis) await stopRedis({ dir, log, ...(opts.purge ? { purge: true } : {}) });
  // A folder where only Redis ran (startRedis alone, as the tests do): nothing else to stop.
  if (hadRedis && !existsSync(join(dir, 'stack.json'))) return;
  await downKafkaAndRegistry(opts);
}

async function downKafkaAndRegistry(opts: { dir?: string; purge?: boolean; log?: Log } = {}): Promise<void> {
  const dir = opts.dir ?? defaultStackDir();
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const i = readInfo(dir);
  if (!i) {
    log(`No stack in ${dir}.`);
    return;
  }
  // Signal only what `up` started: a pid whose process now runs something else is left alone.
  const pids: number[] = [];
  const unknown: number[] = [];
  for (const which of ['registry', 'kafka'] as const) {
    const pid = i.pids[which];
    if (!pid) continue;
    if (ownProcess({ ...i, dir: i.dir ?? dir }, which) !== undefined) pids.push(pid);
    else if (alive(pid)) {
      const cmd = processCommandLine(pid);
      if (cmd === undefined) {
        unknown.push(pid);
        log(
          `Not stopping pid ${pid} (the ${which} of ${dir} in stack.json): its command line cannot be read (no /proc, no ps), so ` +
            `Sluice cannot tell whether it is still the ${which}. If it is, stop it yourself: kill ${pid}.`,
        );
      } else {
        log(`Not stopping pid ${pid}: stack.json names it as the ${which} of ${dir}, but that process now runs something else (${cmd.slice(0, 120)}). The ${which} had already stopped.`);
      }
    }
  }
  await Promise.all(pids.map((pid) => kill(pid)));
  if (unknown.length && opts.purge) {
    // Deleting the data of a broker that may still run would corrupt it.
    throw new StackError(`Not deleting the data in ${dir}: pid ${unknown.join(', ')} may still be using it. Stop it, then run sluice down --purge again.`);
  }
  // A pid that may still be the stack's stays recorded, so `status` and a later `down` can see it.
  const kept = Object.fromEntries(Object.entries(i.pids).filter(([, pid]) => pid !== undefined && unknown.includes(pid)));
  writeFileSync(join(dir, 'stack.json'), JSON.stringify({ ...i, pids: kept }, null, 2) + '\n');
  if (opts.purge) {
    for (const f of readdirSync(dir)) if (f !== 'stack.json') rmSync(join(dir, f), { recursive: true, force: true });
  }
  log(`Stack in ${dir} stopped${opts.purge ? ' and its data deleted' : ''}.`);
}

// ---------------------------------------------------------------------------------------------------------
// Redis (optional service): `sluice up --with redis`, or startRedis/stopRedis alone.

/**
 * Not 6379: installing the Debian package also starts the system's own Redis service on 6379 (where systemd
 * runs), and the stack must not write into it nor fail on it.
 */
export const DEFAULT_REDIS_PORT = 6380;

export interface RedisInfo {
  /** The Redis folder of the stack: `<stack>/redis` (config, append-only file, redis.json). */
  dir: string;
  port: number;
  /** Set while the server `startRedis` started may run; cleared by `stopRedis`. */
  pid?: number;
  url: string;
}

const redisFolder = (dir: string): string => join(resolve(dir), 'redis');

/** The Redis recorded in stack folder `dir` (port, URL, pid while it may run), if it was ever started there. */
export function redisInfo(dir: string = defaultStackDir()): RedisInfo | undefined {
  return readRedisInfo(dir);
}

function readRedisInfo(dir: string): RedisInfo | undefined {
  const path = join(redisFolder(dir), 'redis.json');
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as RedisInfo) : undefined;
}

function writeRedisInfo(r: RedisInfo): void {
  writeFileSync(join(r.dir, 'redis.json'), JSON.stringify(r, null, 2) + '\n');
}

/** The redis-server binary (`$SLUICE_REDIS_SERVER`, else from PATH): its path, or a StackError saying what to install. */
function redisServer(): string {
  const bin = process.env.SLUICE_REDIS_SERVER ?? 'redis-server';
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new StackError(
      `${bin} was not found. The stack's Redis runs the Debian package: apt-get install redis-server ` +
        '(bash scripts/dev.sh installs it), or set SLUICE_REDIS_SERVER to a redis-server binary.',
    );
  }
  // proc-title-template (below), which lets `down` recognise its own server, is Redis 6.2+.
  const m = /v=(\d+)\.(\d+)/.exec(r.stdout);
  if (m && (Number(m[1]) < 6 || (Number(m[1]) === 6 && Number(m[2]) < 2))) {
    throw new StackError(`${bin} is Redis ${m[1]}.${m[2]}; the stack needs Redis 6.2 or newer (Debian 12's redis-server is 7.0).`);
  }
  return bin;
}

/** Quoted for redis.conf (its parser takes "…" with \" and \\ escapes). */
const confString = (s: string): string => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;

/**
 * The pid if that process is alive and is the Redis of this stack folder. Redis rewrites its command line to
 * its proc-title-template, which names its config file: a reused pid (another program) is never trusted.
 */
function ownRedis(dir: string, r: RedisInfo | undefined): number | undefined {
  if (!r?.pid || !alive(r.pid)) return undefined;
  const cmd = processCommandLine(r.pid);
  return cmd !== undefined && cmd.includes('redis-server') && cmd.includes(join(redisFolder(dir), 'redis.conf')) ? r.pid : undefined;
}

/**
 * Whether a server answers on 127.0.0.1:port within 2 s: the connection opens, and — with `hello` — the
 * reply to what it sends passes its check.
 */
export function tcpProbe(port: number, hello?: { send: string; ok: (reply: Buffer) => boolean }): Promise<boolean> {
  return new Promise((resolveProbe) => {
    const s = createConnection({ host: '127.0.0.1', port });
    const done = (ok: boolean): void => {
      s.destroy();
      resolveProbe(ok);
    };
    s.setTimeout(2000, () => done(false));
    s.once('connect', () => (hello ? s.write(hello.send) : done(true)));
    if (hello) s.once('data', (d) => done(hello.ok(d)));
    s.once('error', () => done(false));
  });
}

/** PING over RESP, without a client library: true when the server answers +PONG (not -LOADING while it reads its data). */
const redisPing = (port: number): Promise<boolean> => tcpProbe(port, { send: '*1\r\n$4\r\nPING\r\n', ok: (d) => d.toString('latin1').startsWith('+PONG') });

async function redisStatus(dir: string): Promise<{ redis?: NonNullable<StackStatus['redis']> }> {
  const r = readRedisInfo(dir);
  if (!r) return {};
  const running = ownRedis(dir, r) !== undefined;
  return { redis: { running, healthy: running && (await redisPing(r.port)), ...(r.pid ? { pid: r.pid } : {}), url: r.url } };
}

/** Fails now, with what to do, when Redis could not start: no redis-server, or its port taken by another program. */
async function checkRedisCanStart(dir: string, port: number | undefined): Promise<void> {
  redisServer();
  const r = readRedisInfo(dir);
  const p = port ?? r?.port ?? DEFAULT_REDIS_PORT;
  if (ownRedis(dir, r) !== undefined && r!.port === p) return; // ours, already there
  if (!(await portFree(p))) {
    throw new StackError(
      `Port ${p} (redis) on 127.0.0.1 is taken by another program (the system's own Redis service?). Stop it, or choose ` +
        'another port: sluice up --with redis --redis-port N.',
    );
  }
}

/**
 * Starts Redis for the stack folder `dir` (default: the default stack), bound to 127.0.0.1 only, with its
 * data in `<dir>/redis` (append-only file, fsync every second; RDB snapshots off) and its log in
 * `<dir>/logs/redis.log`. Idempotent: a healthy Redis of this folder on the same port is left alone. The
 * port is remembered: a later start without one reuses it.
 */
export async function startRedis(opts: { dir?: string; port?: number; log?: Log } = {}): Promise<RedisInfo> {
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const dir = resolve(opts.dir ?? defaultStackDir());
  const existing = readRedisInfo(dir);
  const port = opts.port ?? existing?.port ?? DEFAULT_REDIS_PORT;
  if (existing && ownRedis(dir, existing) !== undefined) {
    if (existing.port === port && (await redisPing(port))) {
      log(`Redis in ${dir} is already running: ${existing.url}`);
      return existing;
    }
    await stopRedis({ dir, log: () => {} }); // another port asked for, or not answering: restart it
  }
  await checkRedisCanStart(dir, port);
  const bin = redisServer();
  const folder = redisFolder(dir);
  mkdirSync(folder, { recursive: true });
  mkdirSync(join(dir, 'logs'), { recursive: true });
  const conf = join(folder, 'redis.conf');
  writeFileSync(
    conf,
    [
      '# Written by sluice (src/stack/stack.ts) on each start: edits are lost.',
      'bind 127.0.0.1',
      'protected-mode yes',
      `port ${port}`,
      `dir ${confString(folder)}`,
      'appendonly yes',
      'appendfsync everysec',
      'save ""',
      'daemonize no',
      'logfile ""',
      // The command line then names this config file: how status/down know the pid is still this Redis.
      'proc-title-template "{title} {listen-addr} {server-mode} {config-file}"',
      '',
    ].join('\n'),
  );
  const logFile = join(dir, 'logs', 'redis.log');
  const out = openSync(logFile, 'a');
  const child = spawn(bin, [conf], { detached: true, cwd: folder, stdio: ['ignore', out, out] });
  closeSync(out);
  child.on('error', () => {}); // the binary was checked; a late spawn error shows as the process being gone
  child.unref();
  const info: RedisInfo = { dir: folder, port, pid: child.pid!, url: `redis://127.0.0.1:${port}` };
  writeRedisInfo(info);
  log(`Starting Redis on ${info.url} (data in ${folder}) …`);
  try {
    await waitFor('Redis', () => redisPing(port), child.pid!, logFile, 60_000, log);
  } catch (e) {
    await stopRedis({ dir, log: () => {} });
    throw e;
  }
  return info;
}

/**
 * Stops the Redis of stack folder `dir` if it runs (SIGTERM: Redis fsyncs its append-only file and exits),
 * checking first that the recorded pid is still that Redis. Its data is kept unless `purge`.
 */
export async function stopRedis(opts: { dir?: string; purge?: boolean; log?: Log } = {}): Promise<void> {
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const dir = resolve(opts.dir ?? defaultStackDir());
  const r = readRedisInfo(dir);
  if (!r) return;
  const pid = ownRedis(dir, r);
  if (pid !== undefined) await kill(pid);
  else if (r.pid && alive(r.pid)) {
    const cmd = processCommandLine(r.pid);
    if (cmd === undefined) {
      const msg = `Not stopping pid ${r.pid} (the Redis of ${dir} in redis.json): its command line cannot be read, so Sluice cannot tell whether it is still that Redis. If it is, stop it yourself: kill ${r.pid}.`;
      if (opts.purge) throw new StackError(`${msg} Its data is not deleted while it may run.`);
      log(msg);
      return;
    }
    log(`Not stopping pid ${r.pid}: redis.json names it as the Redis of ${dir}, but that process now runs something else (${cmd.slice(0, 120)}). Redis had already stopped.`);
  }
  if (opts.purge) rmSync(redisFolder(dir), { recursive: true, force: true });
  else writeRedisInfo({ dir: r.dir, port: r.port, url: r.url });
  if (pid !== undefined || opts.purge) log(`Redis of ${dir} ${pid !== undefined ? 'stopped' : 'not running'}${opts.purge ? '; its data deleted' : ''}.`);
}
