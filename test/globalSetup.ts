/**
 * Starts a real Kafka broker and Schema Registry for the integration tests, on free 127.0.0.1 ports in a
 * temporary folder, and stops them afterwards. Skipped when only unit tests run (SLUICE_UNIT_ONLY=1).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { down, freePort, up } from '../src/stack/stack.js';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  if (process.env.SLUICE_UNIT_ONLY === '1') return async () => {};
  const dir = mkdtempSync(join(tmpdir(), 'sluice-test-stack-'));
  const ports = { kafka: await freePort(), controller: await freePort(), registry: await freePort() };
  const info = await up({ dir, ports, log: (l) => process.stderr.write(`[stack] ${l}\n`) });
  project.provide('bootstrapServers', info.bootstrapServers);
  project.provide('registryUrl', info.registryUrl);
  project.provide('stackDir', dir);
  return async () => {
    await down({ dir, log: () => {} });
    rmSync(dir, { recursive: true, force: true });
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    bootstrapServers: string;
    registryUrl: string;
    stackDir: string;
  }
}
