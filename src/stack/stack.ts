/**
 * The local stack: a real Apache Kafka broker (KRaft, combined broker+controller, jars from Maven Central)
 * and a real Schema Registry (Apicurio Registry, Confluent-compatible API), both bound to 127.0.0.1. Jars are
 * installed once into a cache outside the repository (`$SLUICE_HOME`, default ~/.cache/sluice); each stack
 * instance has its own folder with data, logs, pids and ports (`stack.json`). The registry stores its schemas
 * in an H2 database file in that folder (`registry-db/`), so `down`/`up` keeps them and their ids; only
 * `down --purge` deletes them, together with the topics.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

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
}

export const DEFAULT_PORTS: StackPorts = { kafka: 9092, controller: 9093, registry: 8081 };

export function sluiceHome(): string {
  return process.env.SLUICE_HOME ?? join(homedir(), '.cache', 'sluice');
}

/** The default stack instance folder (`sluice up` without --dir). */
export function defaultStackDir(): string {
  return process.env.SLUICE_STACK_DIR ?? join(sluiceHome(), 'stack');
}

type Log = (line: string) => void;

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

function alive(pid: number | undefined): boolean {
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

function info(dir: string, ports: StackPorts, pids: StackInfo['pids']): StackInfo {
  return {
    dir,
    ports,
    pids,
    bootstrapServers: `127.0.0.1:${ports.kafka}`,
    registryUrl: `http://127.0.0.1:${ports.registry}/apis/ccompat/v7`,
  };
}

async function registryHealthy(url: string): Promise<boolean> {
  try {
    const r = await fetch(`${url}/subjects`, { signal: AbortSignal.timeout(2000) });
    return r.ok;
  } catch {
    return false;
  }
}

export interface StackStatus {
  dir: string;
  kafka: { running: boolean; healthy: boolean; pid?: number; bootstrapServers?: string };
  registry: { running: boolean; healthy: boolean; pid?: number; url?: string };
}

export async function status(dir = defaultStackDir()): Promise<StackStatus> {
  const i = readInfo(dir);
  // A pid counts only while it is still the process this stack started (pids are reused).
  const kafkaUp = ownProcess(i, 'kafka') !== undefined;
  const regUp = ownProcess(i, 'registry') !== undefined;
  return {
    dir,
    kafka: { running: kafkaUp, healthy: kafkaUp && !!i && (await tcpOpen(i.ports.kafka)), ...(i ? { pid: i.pids.kafka, bootstrapServers: i.bootstrapServers } : {}) },
    registry: { running: regUp, healthy: regUp && !!i && (await registryHealthy(i.registryUrl)), ...(i ? { pid: i.pids.registry, url: i.registryUrl } : {}) },
  };
}

async function waitFor(what: string, check: () => Promise<boolean>, pid: number, logFile: string, timeoutMs: number, log: Log): Promise<void> {
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

export interface UpOptions {
  dir?: string;
  ports?: Partial<StackPorts>;
  log?: Log;
}

/** Starts Kafka and the registry (installing them on first use). Idempotent: a running healthy stack is left alone. */
export async function up(opts: UpOptions = {}): Promise<StackInfo> {
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const dir = opts.dir ?? defaultStackDir();
  const existing = readInfo(dir);
  const st = await status(dir);
  if (existing && st.kafka.healthy && st.registry.healthy) {
    log(`The stack in ${dir} is already running: Kafka ${existing.bootstrapServers}, registry ${existing.registryUrl}`);
    return existing;
  }
  if (existing && (st.kafka.running || st.registry.running)) await down({ dir, log: () => {} });
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
  const dataDir = join(dir, 'kafka-data');
  const props = join(dir, 'server.properties');
  writeFileSync(
    props,
    [
      'process.roles=broker,controller',
      'node.id=1',
      `controller.quorum.voters=1@127.0.0.1:${ports.controller}`,
      `listeners=PLAINTEXT://127.0.0.1:${ports.kafka},CONTROLLER://127.0.0.1:${ports.controller}`,
      `advertised.listeners=PLAINTEXT://127.0.0.1:${ports.kafka}`,
      'controller.listener.names=CONTROLLER',
      'inter.broker.listener.name=PLAINTEXT',
      'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
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
    const r = spawnSync(javaBin, [...jvm, 'kafka.tools.StorageTool', 'format', '-t', clusterId, '-c', props], { encoding: 'utf8' });
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
  const result = info(dir, ports, { kafka: kafka.pid, registry: registry.pid });
  writeFileSync(join(dir, 'stack.json'), JSON.stringify(result, null, 2) + '\n');
  log(`Starting Kafka ${KAFKA_VERSION} on ${result.bootstrapServers} and Apicurio Registry ${APICURIO_VERSION} on ${result.registryUrl} …`);
  try {
    await Promise.all([
      waitFor('Kafka', () => kafkaReady(result.bootstrapServers), kafka.pid!, kafkaLog, 120_000, log),
      waitFor('the Schema Registry', () => registryHealthy(result.registryUrl), registry.pid!, registryLog, 180_000, log),
    ]);
  } catch (e) {
    await down({ dir, log: () => {} });
    throw e;
  }
  log(`Stack up. Logs: ${join(dir, 'logs')}`);
  return result;
}

/** Kafka is ready when a client can list topics (the listener is up and the controller elected). */
async function kafkaReady(bootstrap: string): Promise<boolean> {
  const port = Number(bootstrap.split(':')[1]);
  if (!(await tcpOpen(port))) return false;
  const { KafkaAdmin } = await import('../kafka/client.js');
  const admin = new KafkaAdmin({ 'bootstrap.servers': bootstrap }, 3000);
  try {
    await admin.listTopics();
    return true;
  } catch {
    return false;
  } finally {
    admin.disconnect();
  }
}

async function kill(pid: number | undefined): Promise<void> {
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

/** Stops the stack, keeping its data; with `purge`, also deletes the data (topics, offsets and registered schemas). */
export async function down(opts: { dir?: string; purge?: boolean; log?: Log } = {}): Promise<void> {
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
