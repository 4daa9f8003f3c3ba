/**
 * Issue 16, item 7 — damaged checkpoints on the real stack. A Kafka → Kafka copy runs over N records in
 * several batches and stops; then a copy of its checkpoint is damaged as a user might (delete commits/ or
 * offsets/, empty the offsets files, remove the log files, cut a line off offsets/N) and the query is
 * restarted on it. Each restart must refuse with the file, what it means and the fix, and the output topic
 * must not get a single record twice. Before: a missing offset line said "different sources" (with two
 * equal lists); deleting commits/ re-ran the last batch; removing the log files re-read everything (the
 * probe's 6,000 records written instead of 1,000); emptied files gave `starts with "", not "v1"`.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { SluiceSession, col } from '../../src/index.js';
import { AckedProducer, readTopic } from '../../src/kafka/client.js';
import { bootstrapServers, freshTopics, kafka } from '../integration/helpers.js';

const bin = new URL('../../bin/sluice.js', import.meta.url).pathname;
const N = 1000;

function session(): SluiceSession {
  const s = new SluiceSession('damage');
  s.out = () => {};
  s.log = () => {};
  return s;
}

/** The copy query (200 records per batch, so 5 batches for N) on `checkpoint`; resolves to its error, if any. */
async function copy(t: { input: string; output: string }, checkpoint: string): Promise<Error | null> {
  const q = await session()
    .readStream.format('kafka')
    .option('kafka.bootstrap.servers', bootstrapServers())
    .option('subscribe', t.input)
    .option('startingOffsets', 'earliest')
    .option('maxOffsetsPerTrigger', 200)
    .load()
    .select(col('key'), col('value'))
    .writeStream.format('kafka')
    .option('kafka.bootstrap.servers', bootstrapServers())
    .option('topic', t.output)
    .option('checkpointLocation', checkpoint)
    .trigger({ availableNow: true })
    .start();
  await q.awaitTermination().catch(() => {});
  return q.exception;
}

/** The output's values, and whether any was written twice. */
async function output(topic: string): Promise<{ total: number; distinct: number }> {
  const values = (await readTopic(kafka(), topic)).map((r) => r.value!.toString());
  return { total: values.length, distinct: new Set(values).size };
}

describe('damaged checkpoints on Kafka', () => {
  let t: { input: string; output: string };
  let original: string;
  /** The last batch of the first run (200 records per batch: 5 or more batches). */
  let L: number;

  beforeAll(async () => {
    t = await freshTopics('cp-damage');
    const p = new AckedProducer(kafka());
    await p.send(Array.from({ length: N }, (_, i) => ({ topic: t.input, key: Buffer.from(`k${i % 7}`), value: Buffer.from(`v${i}`) })));
    await p.flush();
    await p.close();
    original = join(mkdtempSync(join(tmpdir(), 'sluice-cp-damage-')), 'cp');
    expect(await copy(t, original)).toBeNull();
    expect(await output(t.output)).toEqual({ total: N, distinct: N });
    L = Math.max(...readdirSync(join(original, 'offsets')).map(Number));
    expect(L).toBeGreaterThanOrEqual(4);
    expect(readdirSync(join(original, 'commits')).map(Number).sort((a, b) => a - b)).toEqual(Array.from({ length: L + 1 }, (_, i) => i));
  });

  /** A copy of the finished checkpoint, damaged by `damage`. */
  const damaged = (damage: (dir: string) => void): string => {
    const dir = join(mkdtempSync(join(tmpdir(), 'sluice-cp-damaged-')), 'cp');
    cpSync(original, dir, { recursive: true });
    damage(dir);
    return dir;
  };

  /** Restarts on `dir`: the refusal's message; and nothing may have been written to the output. */
  const refused = async (dir: string): Promise<string> => {
    const error = await copy(t, dir);
    expect(await output(t.output), 'the restart wrote to the output').toEqual({ total: N, distinct: N });
    return error?.message ?? '(the restart was not refused)';
  };

  // The probe's first finding: a missing offset line read as "belongs to a query with different sources".
  it('an offsets/N missing its source line: "truncated", the line named', async () => {
    const dir = damaged((d) => {
      const path = join(d, 'offsets', String(L));
      writeFileSync(path, readFileSync(path, 'utf8').split('\n').slice(0, 2).join('\n') + '\n');
    });
    const message = await refused(dir);
    expect(message).toMatch(new RegExp(`offsets/${L} is truncated: it was written for 1 source \\(line 2 lists KafkaV2\\[Subscribe\\[${t.input}\\]\\]\\), but has 0 offset lines: line 3, source 0's offset \\(KafkaV2\\[Subscribe\\[${t.input}\\]\\]\\), is missing`));
    expect(message).not.toMatch(/different sources/);
  });

  // offsets/ deleted: explain said "a restart plans batch 0" — re-reading all N records.
  it('offsets/ deleted: refused, and checkpoint explain says so instead of "plans batch 0"', async () => {
    const dir = damaged((d) => rmSync(join(d, 'offsets'), { recursive: true }));
    const explain = spawnSync(process.execPath, [bin, 'checkpoint', 'explain', dir], { encoding: 'utf8' });
    expect(explain.stdout).toMatch(new RegExp(`Next: A restart refuses to run: offsets/ is missing, but commits/ records batches up to ${L}\\.`));
    expect(explain.stdout).not.toMatch(/plans batch 0/);
    expect(await refused(dir)).toMatch(new RegExp(`offsets/ is missing, but commits/ records batches up to ${L}\\.[\\s\\S]*Safe fix: Restore offsets/ from a backup`));
  });

  // commits/ deleted: the last batch was re-run (up to 200 records written twice).
  it('commits/ deleted: refused, no batch written again', async () => {
    const dir = damaged((d) => rmSync(join(d, 'commits'), { recursive: true }));
    expect(await refused(dir)).toMatch(new RegExp(`commits/ is missing, but offsets/ has batches up to ${L}\\. offsets/${L} is only written after batch ${L - 1} commits`));
  });

  // Offsets files emptied (0 bytes): named as such, with what the file recorded.
  it('offsets files emptied: "is empty (0 bytes)", with its meaning', async () => {
    const dir = damaged((d) => {
      for (const f of readdirSync(join(d, 'offsets'))) truncateSync(join(d, 'offsets', f), 0);
    });
    expect(await refused(dir)).toMatch(new RegExp(`offsets/${L} is empty \\(0 bytes\\)\\. It says where batch ${L}, the last committed, ended`));
  });

  // The log files removed, folders kept: the restart read all N records again from sources/0/0.
  it('offsets and commits files removed: refused, nothing re-read from the start', async () => {
    const dir = damaged((d) => {
      for (const log of ['offsets', 'commits']) for (const f of readdirSync(join(d, log))) rmSync(join(d, log, f));
    });
    expect(await refused(dir)).toMatch(/offsets\/ and commits\/ hold no batch file, though commits\/ exists/);
  });
});
