/** The `sluice` command against the real stack (connection settings from the environment). */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bootstrapServers, registry } from './helpers.js';

const bin = new URL('../../bin/sluice.js', import.meta.url).pathname;
function sluice(...args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [bin, ...args], {
    encoding: 'utf8',
    env: { ...process.env, SLUICE_BOOTSTRAP_SERVERS: bootstrapServers(), SLUICE_REGISTRY_URL: registry().url, SLUICE_STACK_DIR: mkdtempSync(join(tmpdir(), 'sluice-cli-')) },
    timeout: 120_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('sluice CLI', () => {
  it('creates, describes, produces to, consumes from and deletes a topic', () => {
    const topic = `cli-${process.pid}-${Date.now()}`;
    expect(sluice('topics', 'create', topic, '-p', '2').out).toBe(`Created topic ${topic} (2 partitions, replication factor 1).\n`);
    expect(sluice('topics', 'list').out.split('\n')).toContain(topic);
    const produced = sluice('produce', '-t', topic, '-n', '40', '--malformed', '0.1', '--seed', '9');
    expect(produced.code).toBe(0);
    const malformed = Number(/(\d+) malformed/.exec(produced.out)![1]);
    expect(produced.out).toMatch(new RegExp(`^Produced 40 events to ${topic} in .* s \\(avro, schema id \\d+\\): ${malformed} malformed, 0 late\\.\\n$`));
    const described = sluice('topics', 'describe', topic).out;
    expect(described).toMatch(new RegExp(`^Topic: ${topic}\tPartitionCount: 2\tReplicationFactor: 1\n\tPartition: 0\tLeader: 1\tReplicas: 1\tIsr: 1\tOffsets: 0\\.\\.\\d+`));
    const perPartition = [...described.matchAll(/\((\d+) records\)/g)].map((m) => Number(m[1]));
    expect(perPartition.reduce((a, b) => a + b, 0)).toBe(40);
    const lines = sluice('consume', '-t', topic, '--from-beginning', '--format', 'json').out.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toHaveLength(40);
    // Malformed records print as they are (a JSON text, raw bytes, or <undecodable: reason>).
    const decoded = lines.filter((l) => typeof l.value?.user_id === 'string');
    expect(decoded).toHaveLength(40 - malformed);
    expect(decoded[0].value).toMatchObject({ user_id: expect.stringMatching(/^user_\d+$/), event_type: expect.any(String) });
    expect(decoded[0].key).toBe(decoded[0].value.user_id);
    expect(sluice('topics', 'delete', topic).out).toBe(`Deleted topic ${topic}.\n`);
    const missing = sluice('topics', 'describe', 'no-such-topic-cli');
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/^sluice: Cannot describe topic "no-such-topic-cli"/);
  });

  it('demo --events N --json ends by itself with output + deadLetter = N', () => {
    const r = sluice('demo', '--events', '2000', '--json');
    expect(r.code, r.err).toBe(0);
    const lines = r.out.trim().split('\n');
    expect(lines).toHaveLength(1);
    const s = JSON.parse(lines[0]!);
    expect(s.input).toBe(2000);
    expect(s.output + s.deadLetter + s.filtered).toBe(2000);
    expect(s.deadLetter).toBeGreaterThan(0); // 1% malformed by default
    expect(s.filtered).toBe(0);
    expect(s.recordsPerSecond).toBeGreaterThan(0);
  });

  it('checkpoint explain exits 2 on a checkpoint a restart would refuse, naming the damage', () => {
    // offsets/ deleted while commits/ says batches 0 and 1 ran: a restart must not start over silently.
    const cp = mkdtempSync(join(tmpdir(), 'sluice-cli-cp-'));
    writeFileSync(join(cp, 'metadata'), '{"id":"5f0c7c0e-0000-4000-8000-000000000000"}\n');
    mkdirSync(join(cp, 'commits'));
    for (const n of [0, 1]) writeFileSync(join(cp, 'commits', String(n)), 'v1\n{"nextBatchWatermarkMs":0}\n');
    const r = sluice('checkpoint', 'explain', cp);
    expect(r.code).toBe(2);
    expect(r.out).toMatch(/offsets\/ is missing, but commits\/ records batches up to 1/);
  });
});
