/**
 * Issue 13 item 1 — "why is there no output?" on a real broker: the causes that live in Kafka and the
 * checkpoint, each reproduced, and diagnose()'s finding for it asserted. (Memory-stream causes: test/unit/diagnose.test.ts.)
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { col, doctor } from '../../src/index.js';
import { bootstrapServers, freshTopics, newCheckpoint, produceRecords, quietSession, readKafka, startPipeline } from './helpers.js';

const values = (topic: string, n: number) => produceRecords(Array.from({ length: n }, (_, i) => ({ topic, value: Buffer.from(`v${i}`) })));

describe('diagnose() on Kafka', () => {
  it('a subscribed topic that does not exist: the query failed, and the topic is named', async () => {
    const s = quietSession('diag-missing');
    const topic = `missing-${Date.now()}`;
    const q = await readKafka(s, topic).select(col('value')).writeStream.format('memory').queryName('diag_missing').start();
    await q.awaitTermination().catch(() => {});
    const findings = await q.diagnose();
    expect(findings.map((f) => f.cause)).toEqual(['query-failed', 'topic-missing']);
    expect(findings[1]!.summary).toBe(`KafkaV2[Subscribe[${topic}]] reads "${topic}", which does not exist.`);
    expect(findings[1]!.action).toBe(`Create it (sluice topics create ${topic}), or correct the name in subscribe.`);
  });

  it('a pattern that matches no topic', async () => {
    const s = quietSession('diag-pattern');
    const q = await s.readStream.format('kafka').option('kafka.bootstrap.servers', (await import('./helpers.js')).bootstrapServers())
      .option('subscribePattern', `nothing-matches-${Date.now()}-.*`).load()
      .writeStream.format('memory').queryName('diag_pattern').start();
    await q.processAllAvailable();
    const findings = await q.diagnose();
    expect(findings.map((f) => f.cause)).toEqual(['pattern-matches-nothing']);
    await q.stop();
  });

  it('no new data since the query started at latest (the default): says so, and how to read what was there', async () => {
    const t = await freshTopics('diag-latest', 1);
    await values(t.input, 5);
    const s = quietSession('diag-latest');
    const q = await s.readStream.format('kafka').option('kafka.bootstrap.servers', (await import('./helpers.js')).bootstrapServers()).option('subscribe', t.input).load()
      .writeStream.format('memory').queryName('diag_latest').option('checkpointLocation', newCheckpoint()).start();
    await q.processAllAvailable();
    const findings = await q.diagnose();
    expect(findings.map((f) => f.cause)).toEqual(['no-new-data']);
    expect(findings[0]!.summary).toBe(`No new data in KafkaV2[Subscribe[${t.input}]] since the query started at the latest offsets (startingOffsets=latest, the default).`);
    expect(findings[0]!.evidence).toEqual([`position {"${t.input}":{"0":5}}`, `latest offsets now {"${t.input}":{"0":5}}`]);
    expect(findings[0]!.action).toMatch(/startingOffsets', 'earliest'\) with a new checkpointLocation/);
    await q.stop();
  });

  // Review: every restarted idle query was told startingOffsets was ignored (and to start over on a new
  // checkpoint, losing its state), because the default counted as an option given.
  it('a restarted query with default options and no new data: no new data since it resumed — not "startingOffsets ignored"', async () => {
    const t = await freshTopics('diag-restart', 1);
    const checkpoint = newCheckpoint();
    const start = (name: string) =>
      quietSession(name).readStream.format('kafka').option('kafka.bootstrap.servers', bootstrapServers()).option('subscribe', t.input).load()
        .writeStream.format('memory').queryName(name).option('checkpointLocation', checkpoint).start();
    const first = await start('diag_restart_1');
    await first.processAllAvailable();
    await values(t.input, 3);
    await first.processAllAvailable();
    expect(first.recentProgress.reduce((n, p) => n + p.numInputRows, 0)).toBe(3);
    await first.stop();
    const second = await start('diag_restart_2');
    await second.processAllAvailable();
    const findings = await second.diagnose();
    expect(findings.map((f) => f.cause)).toEqual(['no-new-data']);
    expect(findings[0]!.summary).toBe(`No new data in KafkaV2[Subscribe[${t.input}]] since the query resumed from its checkpoint.`);
    await second.stop();
  });

  it('startingOffsets=earliest on a checkpoint that already read the topic: ignored, and why', async () => {
    const t = await freshTopics('diag-resume', 1);
    await values(t.input, 5);
    const checkpoint = newCheckpoint();
    const run = (name: string) =>
      readKafka(quietSession(name), t.input).select(col('value')).writeStream.format('memory').queryName(name).option('checkpointLocation', checkpoint);
    const first = await run('diag_first').trigger({ availableNow: true }).start();
    await first.awaitTermination();
    expect(first.recentProgress.reduce((n, p) => n + p.numInputRows, 0)).toBe(5);
    const second = await run('diag_second').start(); // readKafka sets startingOffsets=earliest
    await second.processAllAvailable();
    const findings = await second.diagnose();
    expect(findings.map((f) => f.cause)).toEqual(['starting-offsets-ignored']);
    expect(findings[0]!.summary).toMatch(/^startingOffsets=earliest is ignored: the query resumed from its checkpoint, which already read/);
    expect(findings[0]!.evidence).toEqual([`resumed at {"${t.input}":{"0":5}}`, `latest offsets now {"${t.input}":{"0":5}}`]);
    await second.stop();

    // The same answer from the checkpoint alone, after the process is gone: `sluice doctor`.
    const offline = await doctor(checkpoint);
    expect(offline.findings.map((f) => f.cause)).toEqual(['query-stopped', 'starting-offsets-ignored']);
    expect(offline.findings[1]!.evidence).toEqual(findings[0]!.evidence);
    const cli = spawnSync(process.execPath, [new URL('../../bin/sluice.js', import.meta.url).pathname, 'doctor', checkpoint, '--bootstrap-servers', bootstrapServers()], { encoding: 'utf8' });
    expect(cli.status, cli.stderr).toBe(0);
    expect(cli.stdout).toMatch(/^1\. \[query-stopped\] The query diag_second was stopped[\s\S]*\n2\. \[starting-offsets-ignored\] startingOffsets=earliest is ignored/);
  });

  it('doctor on the checkpoint of a process killed mid-run: it died, and where it resumes', async () => {
    const t = await freshTopics('diag-killed', 1);
    await values(t.input, 300);
    const checkpoint = newCheckpoint();
    const run = startPipeline('eos-pipeline.ts', { BOOTSTRAP: bootstrapServers(), IN: t.input, OUT: t.output, CHECKPOINT: checkpoint, SLUICE_FAULT: 'after-sink@1', TRIGGER: 'availableNow' });
    await run.exited;
    expect(run.child.signalCode).toBe('SIGKILL');
    const r = await doctor(checkpoint);
    expect(r.findings[0]!.cause).toBe('query-stopped');
    expect(r.findings[0]!.summary).toMatch(/^The query's last run \(.*\) ended without stopping: its process died\.$/);
    expect(r.findings[0]!.evidence[1]).toBe('last batch: 0'); // batch 1 was in flight: written, not committed
  });

  it('a checkpoint that belongs to another query (other sources): the query fails, and the finding says why', async () => {
    const a = await freshTopics('diag-owner-a', 1);
    const b = await freshTopics('diag-owner-b', 1);
    await values(a.input, 2);
    const checkpoint = newCheckpoint();
    const run = async (topic: string, name: string) => {
      const q = await readKafka(quietSession(name), topic).select(col('value')).writeStream.format('memory').queryName(name)
        .option('checkpointLocation', checkpoint).trigger({ availableNow: true }).start();
      await q.awaitTermination().catch(() => {});
      return q;
    };
    await run(a.input, 'diag_owner_a');
    const other = await run(b.input, 'diag_owner_b'); // copied the wrong checkpointLocation
    const [first] = await other.diagnose();
    expect(first?.cause).toBe('query-failed');
    expect(first?.evidence[0]).toContain(a.input); // the error names the checkpoint's sources and the query's
    expect(first?.evidence[0]).toContain(b.input);
  });
});
