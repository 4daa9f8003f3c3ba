/**
 * A local Spark Connect server for the stack (`sluice up --spark`) and the cross-backend tests: Apache
 * Spark 3.5 from PyPI (`pyspark`, which carries Spark's jars and spark-submit), the spark-connect,
 * spark-sql-kafka-0-10 and spark-avro jars from Maven Central (resolved by spark-submit's ivy into
 * `~/.cache/sluice/ivy`), started with `local[2]` and every socket on 127.0.0.1.
 *
 * Spark 3.5's SparkConnectServer listens on all interfaces and cannot be told otherwise, so the server is
 * `spark/LoopbackConnectServer.java` (compiled here once with javac): Spark's own SparkConnectService on a
 * loopback socket. Its pid and port are in `<stack>/spark/spark.json`; its log is `<stack>/logs/spark-connect.log`.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { packageRoot } from '../util/packageRoot.js';
import { StackError, alive, defaultStackDir, kill, portFree, processCommandLine, sluiceHome, tcpProbe, waitFor, type Log } from './stack.js';

/** pyspark from PyPI: the Spark the local server runs. 3.5.x is what the Connect client speaks (connect/client.ts). */
export const PYSPARK_VERSION = '3.5.9';
/** The newest 3.5 connectors on Maven Central (3.5.8 and 3.5.9 are not published there); they run on pyspark 3.5.9. */
export const SPARK_CONNECTORS_VERSION = '3.5.7';
export const DEFAULT_SPARK_CONNECT_PORT = 15002;
const PACKAGES = ['spark-connect', 'spark-sql-kafka-0-10', 'spark-avro'].map((a) => `org.apache.spark:${a}_2.12:${SPARK_CONNECTORS_VERSION}`);
const MAIN_CLASS = 'sluice.LoopbackConnectServer';

export interface SparkConnectInfo {
  /** `<stack>/spark`: the server's working folder (spark-warehouse, spark.json). */
  dir: string;
  port: number;
  /** Set while the server may run. */
  pid?: number;
  /** `sc://127.0.0.1:<port>` */
  url: string;
}

const folder = (dir: string): string => join(resolve(dir), 'spark');
const infoPath = (dir: string): string => join(folder(dir), 'spark.json');

/** The Spark Connect server recorded in stack folder `dir`, if one was started there. */
export function sparkConnectInfo(dir: string = defaultStackDir()): SparkConnectInfo | undefined {
  return existsSync(infoPath(dir)) ? (JSON.parse(readFileSync(infoPath(dir), 'utf8')) as SparkConnectInfo) : undefined;
}

/** pyspark's folder (its SPARK_HOME), installing pyspark from PyPI when it is missing or not 3.5. */
export function ensurePyspark(log: Log): string {
  const ask = (): { version: string; home: string } | undefined => {
    const r = spawnSync('python3', ['-c', 'import pyspark, os; print(pyspark.__version__); print(os.path.dirname(pyspark.__file__))'], { encoding: 'utf8' });
    if (r.error) throw new StackError('python3 was not found: the local Spark comes from PyPI (pyspark). Install Python 3.9+.');
    if (r.status !== 0) return undefined;
    const [version, home] = r.stdout.trim().split('\n');
    return { version: version!, home: home! };
  };
  let found = ask();
  if (!found || !found.version.startsWith('3.5.')) {
    log(`Installing pyspark ${PYSPARK_VERSION} from PyPI (about 320 MB, once)${found ? ` — found ${found.version}, Sluice's Connect client speaks Spark 3.5` : ''} …`);
    const r = spawnSync('python3', ['-m', 'pip', 'install', '-q', '--disable-pip-version-check', `pyspark==${PYSPARK_VERSION}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    if (r.status !== 0) throw new StackError(`pip install pyspark==${PYSPARK_VERSION} failed: ${r.stderr.slice(-1500)}. Is PyPI reachable from this machine?`);
    found = ask();
    if (!found) throw new StackError('pyspark was installed but python3 cannot import it: is pip installing for another python?');
  }
  return found.home;
}

function javaTool(name: 'javac' | 'jar'): string {
  const home = process.env.JAVA_HOME;
  const bin = home && existsSync(join(home, 'bin', name)) ? join(home, 'bin', name) : name;
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) throw new StackError(`${name} was not found: the local Spark Connect server's launcher is built with a JDK (17). Install one (apt-get install openjdk-17-jdk-headless) or set JAVA_HOME.`);
  return bin;
}

function launcherSource(): string {
  const p = join(packageRoot(), 'spark', 'LoopbackConnectServer.java');
  if (!existsSync(p)) throw new StackError(`${p} is missing from the sluice package: reinstall sluice.`);
  return p;
}

/** The launcher jar, built once per source version into ~/.cache/sluice/spark-connect. */
function launcherJar(sparkHome: string, log: Log): string {
  const src = launcherSource();
  const hash = createHash('sha256').update(readFileSync(src)).update(PYSPARK_VERSION).digest('hex').slice(0, 12);
  const out = join(sluiceHome(), 'spark-connect');
  const jar = join(out, `launcher-${hash}.jar`);
  if (existsSync(jar)) return jar;
  log('Building the loopback Spark Connect launcher (javac, once) …');
  const classes = join(out, `classes-${hash}`);
  rmSync(classes, { recursive: true, force: true });
  mkdirSync(classes, { recursive: true });
  const c = spawnSync(javaTool('javac'), ['-d', classes, '-cp', join(sparkHome, 'jars', '*'), src], { encoding: 'utf8' });
  if (c.status !== 0) throw new StackError(`javac failed on ${src}:\n${c.stderr.slice(-2000)}`);
  const j = spawnSync(javaTool('jar'), ['cf', jar, '-C', classes, '.'], { encoding: 'utf8' });
  if (j.status !== 0) throw new StackError(`jar failed: ${j.stderr.slice(-1000)}`);
  rmSync(classes, { recursive: true, force: true });
  return jar;
}

/** True when a TCP connection to 127.0.0.1:port opens. */
const listening = (port: number): Promise<boolean> => tcpProbe(port);

function ownServer(dir: string, i: SparkConnectInfo | undefined): number | undefined {
  if (!i?.pid || !alive(i.pid)) return undefined;
  const cmd = processCommandLine(i.pid);
  return cmd !== undefined && cmd.includes(MAIN_CLASS) && cmd.includes(`spark.connect.grpc.binding.port=${i.port}`) ? i.pid : undefined;
}

/**
 * Starts the Spark Connect server of stack folder `dir` on 127.0.0.1:`port`, installing pyspark and resolving
 * the connector jars on first use (progress goes to `log`). Idempotent: a server of this folder already
 * listening on that port is left alone.
 */
export async function startSparkConnect(opts: { dir?: string; port?: number; log?: Log; driverMemory?: string } = {}): Promise<SparkConnectInfo> {
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const dir = resolve(opts.dir ?? defaultStackDir());
  const existing = sparkConnectInfo(dir);
  const port = opts.port ?? existing?.port ?? DEFAULT_SPARK_CONNECT_PORT;
  if (existing && ownServer(dir, existing) !== undefined) {
    if (existing.port === port && (await listening(port))) {
      log(`Spark Connect in ${dir} is already running: ${existing.url}`);
      return existing;
    }
    await stopSparkConnect({ dir, log: () => {} });
  }
  if (!(await portFree(port))) {
    throw new StackError(`Port ${port} (Spark Connect) on 127.0.0.1 is taken by another program. Stop it, or choose another port: sluice up --spark --spark-port N.`);
  }
  const sparkHome = ensurePyspark(log);
  const jar = launcherJar(sparkHome, log);
  const work = folder(dir);
  mkdirSync(work, { recursive: true });
  mkdirSync(join(dir, 'logs'), { recursive: true });
  const ivy = join(sluiceHome(), 'ivy');
  const conf: Record<string, string> = {
    'spark.jars.ivy': ivy,
    'spark.driver.host': '127.0.0.1',
    'spark.driver.bindAddress': '127.0.0.1',
    'spark.driver.memory': opts.driverMemory ?? '1g',
    'spark.ui.enabled': 'false',
    'spark.ui.showConsoleProgress': 'false',
    'spark.connect.grpc.binding.port': String(port),
    'spark.sql.warehouse.dir': join(work, 'spark-warehouse'),
    // Sluice computes times in UTC (hour(), to_date(), window boundaries): the server does the same.
    'spark.sql.session.timeZone': 'UTC',
    'spark.sql.shuffle.partitions': '2',
  };
  const args = [
    '--class',
    MAIN_CLASS,
    '--name',
    'sluice-spark-connect',
    '--master',
    'local[2]',
    '--packages',
    PACKAGES.join(','),
    ...Object.entries(conf).flatMap(([k, v]) => ['--conf', `${k}=${v}`]),
    '--driver-java-options',
    '-Duser.timezone=UTC',
    jar,
  ];
  const logFile = join(dir, 'logs', 'spark-connect.log');
  const out = openSync(logFile, 'a');
  const child = spawn(join(sparkHome, 'bin', 'spark-submit'), args, {
    detached: true,
    cwd: work,
    stdio: ['ignore', out, out],
    env: { ...process.env, SPARK_HOME: sparkHome, SPARK_LOCAL_IP: '127.0.0.1', PYSPARK_PYTHON: 'python3' },
  });
  closeSync(out);
  child.on('error', () => {});
  child.unref();
  const info: SparkConnectInfo = { dir: work, port, pid: child.pid!, url: `sc://127.0.0.1:${port}` };
  writeFileSync(infoPath(dir), JSON.stringify(info, null, 2) + '\n');
  log(`Starting Spark ${PYSPARK_VERSION} Connect (local[2]) on ${info.url}; the first start downloads the connector jars from Maven Central …`);
  try {
    // First start: ivy downloads the jars (a minute or two); later starts take about 15 s.
    await waitFor('Spark Connect', () => listening(port), child.pid!, logFile, 600_000, log);
  } catch (e) {
    await stopSparkConnect({ dir, log: () => {} });
    throw e;
  }
  return info;
}

/** Stops the Spark Connect server of stack folder `dir`, if it runs. */
export async function stopSparkConnect(opts: { dir?: string; log?: Log } = {}): Promise<void> {
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const dir = resolve(opts.dir ?? defaultStackDir());
  const i = sparkConnectInfo(dir);
  if (!i) return;
  const pid = ownServer(dir, i);
  if (pid !== undefined) {
    await kill(pid);
    log(`Spark Connect of ${dir} stopped.`);
  }
  const { pid: _gone, ...rest } = i;
  writeFileSync(infoPath(dir), JSON.stringify(rest, null, 2) + '\n');
}

/** Whether the server of `dir` runs and accepts connections. */
export async function sparkConnectStatus(dir: string = defaultStackDir()): Promise<{ spark?: { running: boolean; healthy: boolean; pid?: number; url: string } }> {
  const i = sparkConnectInfo(dir);
  if (!i) return {};
  const running = ownServer(dir, i) !== undefined;
  return { spark: { running, healthy: running && (await listening(i.port)), ...(i.pid ? { pid: i.pid } : {}), url: i.url } };
}
