/** The `sluice` command: local stack, topics, produce/consume, run a pipeline file, the demo. */
import { Command, InvalidArgumentError } from 'commander';
import { existsSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import avro from 'avsc';
import { SluiceSession, builtSessions } from '../api/session.js';
import { connection } from '../config.js';
import { produceEvents, sampleEvents, userEventSchema } from '../demo/events.js';
import { demoPipeline } from '../demo/pipeline.js';
import { KafkaAdmin, KafkaRecord, RangeReader, AckedProducer, readTopic, PartitionOffsets } from '../kafka/client.js';
import { registryClient } from '../serde/registry.js';
import { explainCheckpoint, formatCheckpointReport } from '../checkpoint/explain.js';
import { doctor } from '../checkpoint/doctor.js';
import { formatFindings } from '../exec/diagnose.js';
import { startMonitor, type Monitor } from '../ui/server.js';
import { startStatusLine } from './statusLine.js';
import { frame } from '../serde/wireformat.js';
import { showString } from '../sinks/show.js';
import { StringType, StructType, IntegerType, LongType } from '../types/index.js';
import { DEFAULT_REDIS_PORT, STACK_SERVICES, defaultStackDir, down, status, up, type StackService } from '../stack/stack.js';
import type { SecureInfo } from '../stack/secure.js';

const err = (l: string): void => void process.stderr.write(l + '\n');
const num = (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`"${v}" is not a non-negative number.`);
  return n;
};
/** `--with redis` (comma-separated): the optional services of the local stack. */
const services = (v: string): StackService[] => {
  const names = v.split(',').map((x) => x.trim()).filter(Boolean);
  for (const n of names) {
    if (!(STACK_SERVICES as readonly string[]).includes(n)) throw new InvalidArgumentError(`"${n}" is not a service the stack can start (${STACK_SERVICES.join(', ')}).`);
  }
  return names as StackService[];
};
const fraction = (v: string): number => {
  const n = num(v);
  if (n > 1) throw new InvalidArgumentError('a fraction is between 0 and 1, e.g. 0.05');
  return n;
};

async function decodeValue(v: Buffer | null): Promise<unknown> {
  if (v == null) return null;
  if (v.length >= 5 && v[0] === 0) {
    try {
      const s = await registryClient(connection().registry).getById(v.readUInt32BE(1));
      const type = avro.Type.forSchema(JSON.parse(s.schema));
      return JSON.parse(JSON.stringify(type.fromBuffer(v.subarray(5)), (_k, x) => (typeof x === 'bigint' ? Number(x) : x)));
    } catch (e) {
      return `<undecodable: ${(e as Error).message}>`;
    }
  }
  const text = v.toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

async function printRecords(records: KafkaRecord[], format: string): Promise<void> {
  const rows = [];
  for (const r of records) {
    const headers = Object.fromEntries((r.headers ?? []).flatMap((h) => Object.entries(h).map(([k, x]) => [k, x.toString()])));
    rows.push({ partition: r.partition, offset: r.offset, key: r.key?.toString('utf8') ?? null, value: await decodeValue(r.value), headers });
  }
  if (format === 'json') {
    for (const r of rows) process.stdout.write(JSON.stringify(r) + '\n');
    return;
  }
  const schema = new StructType().add('partition', IntegerType).add('offset', LongType).add('key', StringType).add('value', StringType);
  const table = rows.map((r) => ({ ...r, value: typeof r.value === 'string' ? r.value : JSON.stringify(r.value) }));
  process.stdout.write(showString(table, schema, table.length, 80));
}

/** The live monitor for `--ui [port]` (none without the option), its address said on stderr. */
async function monitorFor(session: SluiceSession, ui: boolean | string | undefined): Promise<Monitor | undefined> {
  if (!ui) return undefined;
  const monitor = await startMonitor(session, { port: ui === true ? 0 : num(String(ui)) });
  err(`[sluice] Monitor: ${monitor.url} (Prometheus metrics: ${monitor.url}metrics)`);
  return monitor;
}

/** How to connect to a secure local stack: never the passwords, only where they are. */
function secureLines(i: SecureInfo): string {
  return (
    `security           kafka SASL_SSL ${i.saslMechanism}, user "${i.username}", CA ${i.caLocation}; registry basic auth\n` +
    `credentials        ${i.credentialsFile} (connection() and the sluice commands read it)\n`
  );
}

export function program(): Command {
  const cli = new Command('sluice').description('Structured Streaming for TypeScript: local stack, topics, pipelines, demo').showHelpAfterError();

  cli
    .command('up')
    .description('start the local Kafka broker and Schema Registry on 127.0.0.1 (installs them on first use); --with redis adds Redis, --spark a Spark Connect server')
    .option('--dir <dir>', 'stack folder (data, logs, ports)', defaultStackDir())
    .option('--kafka-port <port>', 'Kafka listener port', num)
    .option('--controller-port <port>', 'KRaft controller port', num)
    .option('--registry-port <port>', 'Schema Registry port', num)
    .option('--with <services>', `also start these services (comma-separated): ${STACK_SERVICES.join(', ')}`, services)
    .option('--redis-port <port>', `Redis port (with --with redis; default ${DEFAULT_REDIS_PORT}, or the one it had)`, num)
    .option('--spark', 'also start Apache Spark 3.5 Connect (local[2], pyspark from PyPI, Kafka/Avro connectors from Maven Central) for SluiceSession.builder().remote(url); same as --with spark')
    .option('--spark-port <port>', 'Spark Connect port (default 15002, or the one it had)', num)
    .option('--secure', 'Kafka with SASL/SCRAM-SHA-256 over TLS (a CA made for the stack) and the registry with basic auth; credentials in <dir>/secure/credentials.json')
    .action(async (o) => {
      if (o.redisPort && !o.with?.includes('redis')) throw new InvalidArgumentError('--redis-port is for Redis: add --with redis.');
      const withServices: StackService[] = [...(o.with ?? []), ...(o.spark && !o.with?.includes('spark') ? (['spark'] as const) : [])];
      if (o.sparkPort && !withServices.includes('spark')) throw new InvalidArgumentError('--spark-port is for Spark Connect: add --spark.');
      const info = await up({
        dir: o.dir,
        ports: { ...(o.kafkaPort ? { kafka: o.kafkaPort } : {}), ...(o.controllerPort ? { controller: o.controllerPort } : {}), ...(o.registryPort ? { registry: o.registryPort } : {}) },
        ...(withServices.length ? { with: withServices } : {}),
        ...(o.redisPort ? { redisPort: o.redisPort } : {}),
        ...(o.sparkPort ? { sparkPort: o.sparkPort } : {}),
        ...(o.secure ? { secure: true } : {}),
      });
      process.stdout.write(`bootstrap.servers  ${info.bootstrapServers}\nschema registry    ${info.registryUrl}\n${info.redisUrl ? `redis              ${info.redisUrl}\n` : ''}${info.sparkConnectUrl ? `spark connect      ${info.sparkConnectUrl}\n` : ''}`);
      if (info.secure) process.stdout.write(secureLines(info.secure));
    });

  cli
    .command('down')
    .description('stop the local stack (Redis and Spark Connect too, if they run)')
    .option('--dir <dir>', 'stack folder', defaultStackDir())
    .option('--purge', 'also delete its data (topics, offsets, registered schemas)')
    .action(async (o) => down({ dir: o.dir, purge: !!o.purge }));

  cli
    .command('status')
    .description('is the local stack running and healthy?')
    .option('--dir <dir>', 'stack folder', defaultStackDir())
    .option('--json', 'print JSON')
    .action(async (o) => {
      const s = await status(o.dir);
      if (o.json) process.stdout.write(JSON.stringify(s) + '\n');
      else {
        const line = (n: string, x: { running: boolean; healthy: boolean; pid?: number }, where?: string): string =>
          `${n.padEnd(16)} ${x.healthy ? 'healthy' : x.running ? 'running, not answering' : 'stopped'}${x.pid && x.running ? ` (pid ${x.pid})` : ''}${where ? `  ${where}` : ''}`;
        process.stdout.write(`${line('kafka', s.kafka, s.kafka.bootstrapServers)}\n${line('schema registry', s.registry, s.registry.url)}\n`);
        if (s.redis) process.stdout.write(`${line('redis', s.redis, s.redis.url)}\n`);
        if (s.spark) process.stdout.write(`${line('spark connect', s.spark, s.spark.url)}\n`);
        if (s.secure) process.stdout.write(secureLines(s.secure));
      }
      // Redis counts once started here (`up --with redis`) and until `down` stops it.
      if (!s.kafka.healthy || !s.registry.healthy || (s.redis?.pid !== undefined && !s.redis.healthy) || (s.spark?.pid !== undefined && !s.spark.healthy)) process.exitCode = 1;
    });

  const topics = cli.command('topics').description('create, list, describe and delete topics');
  topics
    .command('create <name>')
    .option('-p, --partitions <n>', 'partitions', num, 3)
    .option('-r, --replication-factor <n>', 'replication factor (1 on the local stack)', num, 1)
    .option('--if-not-exists', 'succeed if it already exists')
    .action(async (name, o) => {
      const admin = new KafkaAdmin(connection().kafka);
      try {
        if (o.ifNotExists) await admin.ensureTopic(name, o.partitions, o.replicationFactor);
        else await admin.createTopic(name, o.partitions, o.replicationFactor);
        process.stdout.write(`Created topic ${name} (${o.partitions} partitions, replication factor ${o.replicationFactor}).\n`);
      } finally {
        admin.disconnect();
      }
    });
  topics.command('list').action(async () => {
    const admin = new KafkaAdmin(connection().kafka);
    try {
      for (const t of await admin.listTopics()) process.stdout.write(t + '\n');
    } finally {
      admin.disconnect();
    }
  });
  topics.command('describe <name>').action(async (name) => {
    const admin = new KafkaAdmin(connection().kafka);
    try {
      const [d] = await admin.describeTopics([name]);
      const parts = d!.partitions.map((p) => ({ topic: name, partition: p.partition }));
      const [e, l] = await Promise.all([admin.listOffsets(parts, 'earliest'), admin.listOffsets(parts, 'latest')]);
      process.stdout.write(`Topic: ${name}\tPartitionCount: ${d!.partitions.length}\tReplicationFactor: ${d!.partitions[0]?.replicas.length ?? 0}\n`);
      for (const p of d!.partitions) {
        const k = String(p.partition);
        process.stdout.write(
          `\tPartition: ${p.partition}\tLeader: ${p.leader}\tReplicas: ${p.replicas.join(',')}\tIsr: ${p.isr.join(',')}\tOffsets: ${e[name]![k]}..${l[name]![k]} (${l[name]![k]! - e[name]![k]!} records)\n`,
        );
      }
    } finally {
      admin.disconnect();
    }
  });
  topics.command('delete <name>').action(async (name) => {
    const admin = new KafkaAdmin(connection().kafka);
    try {
      await admin.deleteTopic(name);
      process.stdout.write(`Deleted topic ${name}.\n`);
    } finally {
      admin.disconnect();
    }
  });

  cli
    .command('produce')
    .description('produce sample user events (Avro via the registry, or JSON)')
    .requiredOption('-t, --topic <topic>', 'topic to write to')
    .option('-n, --count <n>', 'number of events', num, 100)
    .option('--rate <n>', 'events per second (0 = as fast as possible)', num, 0)
    .option('--format <f>', 'avro (Confluent wire format, registered schema) or json', 'avro')
    .option('--subject <s>', 'registry subject (default <topic>-value)')
    .option('--users <n>', 'distinct users (keys)', num, 100)
    .option('--no-keys', 'produce without keys')
    .option('--late <fraction>', 'fraction of events 15 minutes late', fraction, 0)
    .option('--out-of-order <fraction>', 'fraction of events swapped with the next one', fraction, 0)
    .option('--malformed <fraction>', 'fraction of records that are not valid framed Avro', fraction, 0)
    .option('--seed <n>', 'random seed (same seed, same events)', num, 42)
    .option('--sample', 'publish the sample events of data/sample_events.jsonl instead')
    .action(async (o) => {
      const conn = connection();
      if (o.format !== 'avro' && o.format !== 'json') throw new InvalidArgumentError('--format is avro or json');
      if (o.sample) {
        const p = new AckedProducer(conn.kafka);
        const events = sampleEvents();
        let value: (e: (typeof events)[0]) => Buffer = (e) => Buffer.from(JSON.stringify({ ...e, timestamp: new Date(e.timestamp).toISOString() }));
        if (o.format === 'avro') {
          const id = await registryClient(conn.registry).register(o.subject ?? `${o.topic}-value`, userEventSchema());
          const type = avro.Type.forSchema(JSON.parse(userEventSchema()));
          value = (e) => frame(id, type.toBuffer(e));
        }
        await p.send(events.map((e) => ({ topic: o.topic, key: o.keys ? Buffer.from(e.user_id) : null, value: value(e) })));
        await p.flush();
        await p.close();
        process.stdout.write(`Produced ${events.length} sample events to ${o.topic} (${o.format}).\n`);
        return;
      }
      const t0 = Date.now();
      const r = await produceEvents(o.count, {
        topic: o.topic,
        kafka: conn.kafka,
        format: o.format,
        registry: conn.registry,
        subject: o.subject,
        rate: o.rate,
        keyed: o.keys,
        users: o.users,
        lateFraction: o.late,
        outOfOrderFraction: o.outOfOrder,
        malformedFraction: o.malformed,
        seed: o.seed,
        onProgress: (n) => process.stderr.isTTY && process.stderr.write(`\r  produced ${n}/${o.count}`),
      });
      if (process.stderr.isTTY) process.stderr.write('\n');
      process.stdout.write(
        `Produced ${r.sent} events to ${o.topic} in ${((Date.now() - t0) / 1000).toFixed(1)} s (${o.format}${r.schemaId !== undefined ? `, schema id ${r.schemaId}` : ''}): ` +
          `${r.malformed} malformed, ${r.late} late.\n`,
      );
    });

  cli
    .command('consume')
    .description('read a topic, decoding Schema Registry framed Avro')
    .requiredOption('-t, --topic <topic>', 'topic to read')
    .option('--from-beginning', 'read what is in the topic now, from the first offset (default: wait for new records)')
    .option('-m, --max-messages <n>', 'stop after this many records', num)
    .option('--timeout <seconds>', 'without --from-beginning: stop after this long without reaching max messages', num, 10)
    .option('--format <f>', 'table or json (one JSON object per line)', 'table')
    .action(async (o) => {
      const conn = connection();
      const max = o.maxMessages ?? Infinity;
      if (o.fromBeginning) {
        await printRecords(await readTopic(conn.kafka, o.topic, max), o.format);
        return;
      }
      const admin = new KafkaAdmin(conn.kafka);
      const reader = new RangeReader(conn.kafka, 30_000);
      try {
        const [d] = await admin.describeTopics([o.topic]);
        const parts = d!.partitions.map((p) => ({ topic: o.topic, partition: p.partition }));
        let from: PartitionOffsets = await admin.listOffsets(parts, 'latest');
        let seen = 0;
        const deadline = Date.now() + o.timeout * 1000;
        while (seen < max && Date.now() < deadline) {
          const to = await admin.listOffsets(parts, 'latest');
          const recs = (await reader.read(from, to)).slice(0, max - seen);
          if (recs.length) await printRecords(recs, o.format);
          seen += recs.length;
          from = to;
          await new Promise((r) => setTimeout(r, 300));
        }
      } finally {
        await reader.close();
        admin.disconnect();
      }
    });

  cli
    .command('run <file>')
    .description('run a pipeline file (TypeScript or JavaScript) that starts queries; ends when they end')
    .option('--ui [port]', 'serve the live monitor (charts, findings, /metrics) on 127.0.0.1 while it runs (default: a free port)')
    .option('--no-status', 'no live status line (there is none anyway when stdout is not a terminal)')
    .action(async (file, o) => {
      const path = resolve(file);
      if (!existsSync(path)) throw new InvalidArgumentError(`${path} does not exist.`);
      if (/\.[cm]?ts$/.test(path)) {
        const { register } = await import('tsx/esm/api');
        register();
      }
      // The file builds its session with SluiceSession.builder(): the same one, so the monitor sees its queries.
      const session = SluiceSession.builder().getOrCreate();
      const monitor = await monitorFor(session, o.ui);
      const line = o.status ? startStatusLine(session) : undefined;
      try {
        await import(pathToFileURL(path).href);
        // Until every query of the file has ended: its local ones, and those it started on Spark (a session
        // with .remote()), whose process is elsewhere.
        for (;;) {
          const busy = builtSessions().filter((x) => x.streams.active.length);
          if (!busy.length) break;
          await Promise.race(busy.map((x) => x.streams.awaitAnyTermination().finally(() => x.streams.resetTerminated())));
        }
        // A query that failed while another was awaited (or before the wait) fails the run too.
        const failed = builtSessions().flatMap((x) => x.streams.failed)[0];
        if (failed?.exception) throw failed.exception;
      } finally {
        line?.stop();
        await monitor?.close();
      }
    });

  cli
    .command('doctor <dir>')
    .description("why does the query of this checkpoint write nothing? Findings, most likely first, with the evidence and what to do")
    .option('--bootstrap-servers <list>', "Kafka to ask about the sources' topics (default: the one the query used)")
    .option('--kafka-option <key=value>', 'a kafka.* option for that (security settings), repeatable', (v: string, all: string[] = []) => [...all, v])
    .option('--json', 'print JSON')
    .action(async (dir, o) => {
      const kafkaOptions = Object.fromEntries(
        (o.kafkaOption ?? []).map((kv: string) => {
          const i = kv.indexOf('=');
          if (i < 1) throw new InvalidArgumentError(`--kafka-option wants key=value, got "${kv}".`);
          const k = kv.slice(0, i);
          return [k.startsWith('kafka.') ? k : `kafka.${k}`, kv.slice(i + 1)];
        }),
      );
      const r = await doctor(resolve(dir), { ...(o.bootstrapServers ? { bootstrapServers: o.bootstrapServers } : {}), kafkaOptions });
      process.stdout.write(o.json ? JSON.stringify(r.findings) + '\n' : formatFindings(r.findings));
      if (r.findings.some((f) => f.cause === 'checkpoint-damaged')) process.exitCode = 2;
    });

  cli
    .command('checkpoint')
    .description('inspect a query checkpoint')
    .command('explain <dir>')
    .description('what the checkpoint holds, and what a restart would do next (exit code 2: damaged, a restart would refuse it)')
    .option('--json', 'print JSON')
    .action((dir, o) => {
      const report = explainCheckpoint(resolve(dir));
      process.stdout.write(o.json ? JSON.stringify(report) + '\n' : formatCheckpointReport(report));
      // Scripts can tell: a checkpoint a restart would refuse exits 2 (the report says why and what to do).
      if (report.problems.some((p) => p.blocksRestart)) process.exitCode = 2;
    });

  cli
    .command('demo')
    .description('Avro events in → parse, filter, derive → Avro out, on the local stack (started if needed)')
    .option('-n, --events <n>', 'events to produce', num, 10_000)
    .option('--malformed <fraction>', 'fraction of malformed records (they go to the dead-letter topic)', fraction, 0.01)
    .option('--rate <n>', 'events per second produced (0 = as fast as possible)', num, 0)
    .option('--ui [port]', 'serve the live monitor on 127.0.0.1 while the demo runs')
    .option('--json', 'print only one JSON summary line')
    .action(async (o) => runDemo(o));

  return cli;
}

interface DemoOptions {
  events: number;
  malformed: number;
  rate: number;
  json?: boolean;
  ui?: boolean | string;
}

async function runDemo(o: DemoOptions): Promise<void> {
  const say = o.json ? (_: string): void => {} : (l: string): void => void process.stdout.write(l + '\n');
  let conn = connection();
  if (conn.local && !(await status()).kafka.healthy) {
    await up({ log: o.json ? () => {} : err });
    conn = connection();
  }
  const run = new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14);
  const inputTopic = `user-events-${run}`;
  const outputTopic = `processed-user-events-${run}`;
  const deadLetterTopic = `user-events-dlq-${run}`;
  const admin = new KafkaAdmin(conn.kafka);
  for (const t of [inputTopic, outputTopic, deadLetterTopic]) await admin.ensureTopic(t, 3, 1);
  admin.disconnect();
  say(`Topics: ${inputTopic} → ${outputTopic} (dead letters: ${deadLetterTopic})`);
  const checkpointLocation = join(defaultStackDir(), 'checkpoints', `demo-${run}`);
  rmSync(checkpointLocation, { recursive: true, force: true });

  // Register the input schema first: the pipeline reads its reader schema from the subject.
  await registryClient(conn.registry).register(`${inputTopic}-value`, userEventSchema());
  const producing = produceEvents(o.events, {
    topic: inputTopic,
    kafka: conn.kafka,
    format: 'avro',
    registry: conn.registry,
    malformedFraction: o.malformed,
    rate: o.rate,
  });

  const session = SluiceSession.builder().appName('sluice-demo').getOrCreate();
  session.log = o.json ? () => {} : (l) => (/^WARN Batch \d+: \d+ record/.test(l) ? undefined : err(`[sluice] ${l}`));
  const monitor = await monitorFor(session, o.ui);
  const started = Date.now();
  const query = await demoPipeline(session, {
    bootstrapServers: conn.bootstrapServers,
    kafkaOptions: conn.kafkaOptions,
    registry: conn.registry,
    inputTopic,
    outputTopic,
    deadLetterTopic,
    checkpointLocation,
    trigger: { processingTime: '500 milliseconds' },
  }).start();

  const totals = { input: 0, output: 0, deadLetter: 0, filtered: 0, batches: 0 };
  let lastBatchAt = started;
  session.streams.addListener({
    onQueryProgress: ({ progress: p }) => {
      totals.input += p.numInputRows;
      totals.output += p.sink.numOutputRows;
      totals.deadLetter += p.numDeadLetterRows;
      totals.filtered += p.numFilteredRows;
      totals.batches++;
      lastBatchAt = Date.now();
    },
  });
  const live = !o.json && process.stdout.isTTY;
  const timer = setInterval(() => {
    const secs = (Date.now() - started) / 1000;
    const line = `  batch ${totals.batches}  in ${totals.input}/${o.events}  out ${totals.output}  dead-letter ${totals.deadLetter}  ${Math.round(totals.input / secs)} rec/s`;
    if (live) process.stdout.write(`\r${line}   `);
  }, 250);
  const produced = await producing;
  try {
    while (totals.input < produced.sent) {
      if (!query.isActive) throw query.exception ?? new Error('The demo query stopped early.');
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    clearInterval(timer);
    await query.stop();
    await monitor?.close();
  }
  if (live) process.stdout.write('\n');
  const seconds = (lastBatchAt - started) / 1000;
  const summary = {
    input: totals.input,
    output: totals.output,
    deadLetter: totals.deadLetter,
    filtered: totals.filtered,
    batches: totals.batches,
    seconds: Math.round(seconds * 100) / 100,
    recordsPerSecond: Math.round(totals.input / Math.max(seconds, 0.001)),
    inputTopic,
    outputTopic,
    deadLetterTopic,
    checkpointLocation,
  };
  if (o.json) {
    process.stdout.write(JSON.stringify(summary) + '\n');
    return;
  }
  say('\nSample of the output topic (Avro, decoded with its registered schema):');
  await printRecords(await readTopic(conn.kafka, outputTopic, 5), 'table');
  const dlq = await readTopic(conn.kafka, deadLetterTopic, 3);
  if (dlq.length) {
    say('Dead-letter records carry the reason in their headers:');
    for (const r of dlq) {
      const h = Object.fromEntries((r.headers ?? []).flatMap((x) => Object.entries(x).map(([k, v]) => [k, v.toString()])));
      say(`  ${h['sluice.source.topic']}-${h['sluice.source.partition']}@${h['sluice.source.offset']}: ${h['sluice.error.reason']} — ${h['sluice.error.message']}`);
    }
  }
  say(
    `\nSummary: ${summary.input} in = ${summary.output} out + ${summary.deadLetter} dead-letter + ${summary.filtered} filtered, ` +
      `${summary.batches} batches, ${summary.recordsPerSecond} records/s.\nCheckpoint: ${checkpointLocation}\n` +
      `Look again: sluice consume -t ${outputTopic} --from-beginning -m 10`,
  );
}

export async function main(argv = process.argv): Promise<void> {
  try {
    await program().parseAsync(argv);
    if (process.exitCode === undefined) process.exitCode = 0;
  } catch (e) {
    err(`sluice: ${(e as Error).message}`);
    process.exitCode = 1;
  }
}
