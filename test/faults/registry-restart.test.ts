/**
 * The local Schema Registry must not forget (issue 16, item 4): schema ids are written into every Kafka
 * record, so after `sluice down` / `sluice up` an old id must still resolve to its old schema, and a new
 * schema must never get an id that was handed out before. With Apicurio's in-memory storage both failed:
 * the old ids were unknown and the next registration got id 1 again, so old records were decoded with the
 * wrong schema.
 *
 * This test starts its own stack (not the shared one of test/globalSetup.ts), since it stops and restarts it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registryClient } from '../../src/serde/registry.js';
import { down, freePort, up, type StackInfo, type StackPorts } from '../../src/stack/stack.js';

const log = (l: string) => process.stderr.write(`[registry-restart stack] ${l}\n`);

const avro = (name: string, field: string) => JSON.stringify({ type: 'record', name, namespace: 'sluice.faults', fields: [{ name: field, type: 'long' }] });

/**
 * A fresh client each time: RegistryClient caches schemas by id forever, so asking the client that
 * registered them would answer from its cache and never ask the restarted registry.
 */
const client = (info: StackInfo) => registryClient({ url: info.registryUrl, retries: 2, retryBackoffMs: 200 });

describe('the local Schema Registry across a restart', () => {
  let dir: string;
  let ports: StackPorts;
  let info: StackInfo;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-registry-restart-'));
    ports = { kafka: await freePort(), controller: await freePort(), registry: await freePort() };
    info = await up({ dir, ports, log });
  });

  afterAll(async () => {
    if (dir) {
      await down({ dir, log: () => {} });
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps schema ids through down/up and never hands out an old id again', async () => {
    const schemaA = avro('Order', 'amount');
    const schemaB = avro('Payment', 'cents');
    const before = client(info);
    const idA = await before.register('orders-value', schemaA);
    const idB = await before.register('payments-value', schemaB);
    expect(idB).not.toBe(idA); // two different schema texts: two ids

    // A plain `down` (not `--purge`) and `up` on the same stack folder: what `sluice down; sluice up` does.
    await down({ dir, log });
    info = await up({ dir, ports, log });

    const after = client(info);
    // Records framed with idA / idB before the restart are still in Kafka: their ids must still name the
    // same schemas, or they would be decoded with another schema (or sent to dead letters as "unknown id").
    expect((await after.getById(idA)).schema).toBe(schemaA);
    expect((await after.getById(idB)).schema).toBe(schemaB);
    // The subjects survive too: a producer asking for the latest version finds the same id.
    expect((await after.getVersion('orders-value')).id).toBe(idA);

    // A new schema after the restart must get a new id: with in-memory storage the id sequence restarted and
    // the new schema took id 1 = idA, so old records would be read with the new schema.
    const idC = await after.register('refunds-value', avro('Refund', 'reason_code'));
    expect([idA, idB]).not.toContain(idC);
  });

  it('keeps a registration the registry acknowledged even when the registry is killed (SIGKILL)', async () => {
    info = await up({ dir, ports, log }); // a no-op when the stack runs; starts it if the test above failed midway
    const schemaD = avro('Shipment', 'parcels');
    const idD = await client(info).register('shipments-value', schemaD);
    const pid = info.pids.registry!;
    // Killed at once, without a clean shutdown: `down` escalates to SIGKILL when the registry does not stop
    // within 20 s, and a machine can crash. H2's default write delay lost such a registration (tried);
    // the registry's database URL sets WRITE_DELAY=0.
    process.kill(pid, 'SIGKILL');
    while (isAlive(pid)) await new Promise((r) => setTimeout(r, 100));
    info = await up({ dir, ports, log }); // restarts the stack: the registry is no longer running

    const after = client(info);
    expect((await after.getById(idD)).schema).toBe(schemaD);
    const idE = await after.register('returns-value', avro('Return', 'items'));
    expect(idE).not.toBe(idD); // the id sequence survived the kill as well
  });
});

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
