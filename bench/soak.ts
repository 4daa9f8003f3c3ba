/**
 * `npm run soak -- [--kills 200] [--sink exactlyOnce|atLeastOnce] [--stateful]`: a crash loop, not run in CI
 * (it takes about 3 s per kill). A pipeline process (`sluice run test/fixtures/eos-pipeline.ts`) copies a topic
 * that a producer keeps filling, and is killed with SIGKILL at a random moment of its work, again and again,
 * each time restarted from the same checkpoint. Then the producer stops, a last run drains the input, and a
 * read_committed reader counts the output:
 *
 *   {"kills":200,"input":…,"output":…,"missing":0,"duplicates":0}
 *
 * Stateless: every input record (a unique value) must come out. Stateful (`--stateful`: dropDuplicates on the
 * value, each value produced twice): every distinct value must come out. `duplicates` counts output records
 * beyond the first of their value. Runs on a private stack (free ports, temporary folder). Results:
 * docs/reliability.md.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { AckedProducer, KafkaAdmin, readTopic } from '../src/kafka/client.js';
import { privateStack } from './stack.js';

const { values: args } = parseArgs({
  options: {
    kills: { type: 'string', default: '200' },
    sink: { type: 'string', default: 'exactlyOnce' },
    stateful: { type: 'boolean', default: false },
    rate: { type: 'string', default: '2000' },
    'per-batch': { type: 'string', default: '500' },
    seed: { type: 'string', default: '11' },
  },
});
const KILLS = Number(args.kills);
const EXACTLY_ONCE = args.sink === 'exactlyOnce';
if (!EXACTLY_ONCE && args.sink !== 'atLeastOnce') throw new Error(`--sink must be exactlyOnce or atLeastOnce, got ${args.sink}`);
const note = (l: string): void => void process.stderr.write(l + '\n');

/** A small deterministic generator, so that a run's kill times can be repeated (--seed). */
let seed = Number(args.seed);
const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);

const sluiceBin = new URL('../../bin/sluice.js', import.meta.url).pathname;
const fixture = new URL('../../test/fixtures/eos-pipeline.ts', import.meta.url).pathname;

function run(env: Record<string, string>) {
  const child = spawn(process.execPath, [sluiceBin, 'run', fixture], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let batches = 0;
  let onBatch: (() => void) | undefined;
  child.stdout.on('data', (d: Buffer) => {
    out += d;
    batches += (d.toString().match(/^batch /gm) ?? []).length;
    if (batches) onBatch?.();
  });
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const firstBatch = new Promise<void>((resolve) => (onBatch = resolve));
  return { child, exited, firstBatch, output: () => out };
}

async function main(): Promise<void> {
  const { dir, info, close } = await privateStack(note, 'sluice-soak-');
  const conf = { 'bootstrap.servers': info.bootstrapServers };
  const [IN, OUT] = ['soak-in', 'soak-out'];
  let produced = 0;
  let producing = true;
  try {
    const admin = new KafkaAdmin(conf);
    for (const t of [IN, OUT]) await admin.createTopic(t, 3);
    admin.disconnect();
    // The input grows while the pipeline is killed and restarted: `rate` records a second, in 100 ms steps.
    const producer = new AckedProducer(conf);
    const value = (i: number): string => (args.stateful ? `v${Math.floor(i / 2)}` : `v${i}`); // stateful: each value twice
    const feeding = (async () => {
      while (producing) {
        const n = Math.round(Number(args.rate) / 10);
        await producer.send(Array.from({ length: n }, (_, j) => ({ topic: IN, key: Buffer.from(`k${produced + j}`), value: Buffer.from(value(produced + j)) })));
        await producer.flush();
        produced += n;
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const env = {
      BOOTSTRAP: info.bootstrapServers,
      IN,
      OUT,
      CHECKPOINT: join(dir, 'checkpoint'),
      DEDUPE: String(args.stateful),
      EXACTLY_ONCE: String(EXACTLY_ONCE),
      PER_BATCH: String(args['per-batch']),
    };
    const t0 = Date.now();
    for (let k = 1; k <= KILLS; k++) {
      const p = run(env);
      // Killed at a random moment once it is working: 0–1.5 s after its first batch.
      const started = await Promise.race([p.firstBatch.then(() => true), p.exited.then(() => false)]);
      if (!started) throw new Error(`the pipeline exited on its own before kill ${k}:\n${p.output()}`);
      await new Promise((r) => setTimeout(r, random() * 1500));
      p.child.kill('SIGKILL');
      await p.exited;
      if (k % 10 === 0) note(`${k}/${KILLS} kills, ${produced} records produced, ${Math.round((Date.now() - t0) / 1000)} s`);
    }
    producing = false;
    await feeding;
    await producer.close();
    const last = run({ ...env, TRIGGER: 'availableNow' });
    const code = await last.exited;
    if (code !== 0) throw new Error(`the final run failed (${code}):\n${last.output()}`);

    const out = await readTopic(conf, OUT);
    const seen = new Map<string, number>();
    for (const r of out) seen.set(r.value!.toString(), (seen.get(r.value!.toString()) ?? 0) + 1);
    const expected = args.stateful ? Math.ceil(produced / 2) : produced;
    let missing = 0;
    for (let i = 0; i < expected; i++) if (!seen.has(`v${i}`)) missing++;
    const result = {
      sink: args.sink,
      query: args.stateful ? 'stateful (dropDuplicates)' : 'stateless',
      kills: KILLS,
      input: produced,
      output: out.length,
      missing,
      duplicates: out.length - seen.size,
      seconds: Math.round((Date.now() - t0) / 1000),
    };
    process.stdout.write(JSON.stringify(result) + '\n');
  } finally {
    producing = false;
    await close();
  }
}

await main();
