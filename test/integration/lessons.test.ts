/**
 * Every lesson notebook runs headless (Jupyter + tslab) against the test stack; a failing cell or a failing
 * check cell fails this test. The rendered Markdown in docs/lessons must be current with the sources.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { bootstrapServers, registry, sparkConnectForTests } from './helpers.js';

// Lesson 13 runs its pipeline on Spark Connect too: a server of its own, on a free 127.0.0.1 port.
const sparkConnectUrl = sparkConnectForTests();

const root = new URL('../..', import.meta.url).pathname;

describe('lessons', () => {
  it('run cell by cell without an error, each within 60 s, and end with their checks passing', () => {
    const r = spawnSync('python3', ['scripts/lessons.py', 'run'], {
      cwd: root,
      encoding: 'utf8',
      env: { ...process.env, SLUICE_BOOTSTRAP_SERVERS: bootstrapServers(), SLUICE_REGISTRY_URL: registry().url, SLUICE_SPARK_CONNECT_URL: sparkConnectUrl() },
      timeout: 600_000,
    });
    console.log(r.stdout);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/ok {3}00-local-stack/);
  }, 660_000);

  it('notebooks and rendered Markdown are current with the lesson sources', () => {
    const r = spawnSync('python3', ['scripts/lessons.py', 'check'], { cwd: root, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
  });
});
