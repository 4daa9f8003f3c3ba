/** A private Kafka + registry stack for one benchmark: free 127.0.0.1 ports, a temporary folder, stopped and removed by close(). */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { down, freePort, up, type StackInfo } from '../src/stack/stack.js';

export async function privateStack(note: (l: string) => void, prefix = 'sluice-bench-'): Promise<{ dir: string; info: StackInfo; close(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const info = await up({ dir, ports: { kafka: await freePort(), controller: await freePort(), registry: await freePort() }, log: note });
  return {
    dir,
    info,
    async close() {
      await down({ dir, log: () => {} });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
