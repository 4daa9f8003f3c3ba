/**
 * Idempotent writes from foreachBatch into Redis: the batch's values and the query's last-applied batch id
 * go in ONE MULTI/EXEC, and a batch whose id is not above the stored one is skipped. A batch re-run after a
 * crash (the sink wrote, `commits/N` did not) then changes nothing the second time.
 *
 * ```ts
 * import { createClient } from 'redis';
 * import { redisUrl, upsertBatch, sum, col } from 'sluice';
 *
 * const redis = await createClient({ url: redisUrl() }).connect();   // a connection for this query alone
 * df.writeStream.foreachBatch(async (batch, batchId) => {
 *   const totals = await batch.groupBy('user').agg(sum('amount').alias('total')).collect();
 *   await upsertBatch(redis, { queryId: 'totals', batchId, incrBy: new Map(totals.map((r) => [String(r.user), Number(r.total)])) });
 * }).option('checkpointLocation', './checkpoints/totals').start();
 * ```
 *
 * The protocol, per call:
 *   WATCH  sluice:{q}:lastBatchId            — EXEC will fail if anyone changes it from now on
 *   GET    sluice:{q}:lastBatchId            — batchId <= it: UNWATCH, skip (already applied)
 *   MULTI
 *     SET/INCRBY sluice:{q}:key:<key> …      — the batch's writes
 *     SET    sluice:{q}:lastBatchId batchId
 *   EXEC                                     — all or nothing; aborted (a concurrent writer): start over
 *
 * Rules that come with it:
 * - WATCH belongs to a connection: give upsertBatch a client no other code uses meanwhile (one per query,
 *   e.g. `client.duplicate()`); foreachBatch calls of one query never overlap.
 * - `queryId` names the query's keys for good: keep it as long as the checkpoint. A query started afresh
 *   (new checkpoint, batch ids from 0 again) needs a new queryId, or its old keys deleted — else every batch
 *   up to the old last id is skipped (`applied: false` says so).
 * - The `{q}` hash tag keeps a query's keys in one Redis Cluster slot, so the transaction is allowed there too.
 * - Redis does not roll back a command that fails inside EXEC (INCRBY on a non-number): only this helper
 *   should write these keys.
 */
import { DEFAULT_REDIS_PORT, redisInfo } from '../stack/stack.js';

/** What upsertBatch needs of a client: node-redis's `createClient()` (v5/v6) has it; so has ioredis. */
export interface UpsertClient {
  watch(key: string): Promise<unknown>;
  unwatch(): Promise<unknown>;
  get(key: string): Promise<unknown>;
  multi(): UpsertTransaction;
}
export interface UpsertTransaction {
  set(key: string, value: string): unknown;
  incrBy(key: string, increment: number): unknown;
  incrByFloat(key: string, increment: number): unknown;
  /** Rejects with node-redis's WatchError, or resolves to null (ioredis), when a watched key changed. */
  exec(): Promise<unknown>;
}

/** Key/value pairs: an object, a Map, or [key, value] pairs. */
export type Entries<V> = Record<string, V> | Iterable<readonly [string, V]>;

export interface UpsertBatch {
  /** Names the query's keys: stable for as long as its checkpoint. No `{` or `}`. */
  queryId: string;
  /** foreachBatch's batchId. */
  batchId: number;
  /** SET: the latest value per key (an upsert). */
  set?: Entries<string | number>;
  /** INCRBY (INCRBYFLOAT for a fraction): added per key, which is why a batch must never be applied twice. */
  incrBy?: Entries<number>;
}

export interface UpsertResult {
  /** False when the batch had been applied already (its id <= the stored last-applied id). */
  applied: boolean;
  /** The query's last-applied batch id after the call. */
  lastBatchId: number;
}

const MAX_ATTEMPTS = 10;

function checkQueryId(queryId: string): void {
  if (!queryId || /[{}]/.test(queryId)) throw new Error(`upsertBatch: queryId must be a non-empty name without { or }, got "${queryId}".`);
}

/** The Redis key holding the query's last-applied batch id. */
export function lastBatchKey(queryId: string): string {
  checkQueryId(queryId);
  return `sluice:{${queryId}}:lastBatchId`;
}

/** The Redis key upsertBatch writes `key` of query `queryId` to. */
export function storeKey(queryId: string, key: string): string {
  checkQueryId(queryId);
  return `sluice:{${queryId}}:key:${key}`;
}

/** The query's last-applied batch id, or -1 when none was applied. */
export async function lastAppliedBatch(client: Pick<UpsertClient, 'get'>, queryId: string): Promise<number> {
  const v = await client.get(lastBatchKey(queryId));
  return v == null ? -1 : Number(String(v));
}

function entries<V>(e: Entries<V> | undefined): Iterable<readonly [string, V]> {
  if (!e) return [];
  return Symbol.iterator in e ? (e as Iterable<readonly [string, V]>) : Object.entries(e);
}

const isWatchAbort = (e: unknown): boolean => e instanceof Error && e.constructor.name === 'WatchError';

/**
 * Applies batch `batchId` of query `queryId` once: its writes and the new last-applied id in one MULTI/EXEC,
 * or nothing when that id was applied already. See the module comment for the protocol and its rules.
 */
export async function upsertBatch(client: UpsertClient, batch: UpsertBatch): Promise<UpsertResult> {
  const { queryId, batchId } = batch;
  if (!Number.isInteger(batchId) || batchId < 0) throw new Error(`upsertBatch: batchId must be a whole number >= 0, got ${batchId}.`);
  const guard = lastBatchKey(queryId);
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    await client.watch(guard);
    const last = await lastAppliedBatch(client, queryId);
    if (batchId <= last) {
      await client.unwatch();
      return { applied: false, lastBatchId: last };
    }
    const tx = client.multi();
    for (const [k, v] of entries(batch.set)) tx.set(storeKey(queryId, k), String(v));
    for (const [k, n] of entries(batch.incrBy)) {
      if (Number.isInteger(n)) tx.incrBy(storeKey(queryId, k), n);
      else tx.incrByFloat(storeKey(queryId, k), n);
    }
    tx.set(guard, String(batchId));
    try {
      if ((await tx.exec()) !== null) return { applied: true, lastBatchId: batchId };
    } catch (e) {
      if (!isWatchAbort(e)) throw e;
    }
    // Another writer changed the last-applied id between WATCH and EXEC: nothing was written; look again.
  }
  throw new Error(`upsertBatch: ${guard} kept changing under ${MAX_ATTEMPTS} attempts: another writer uses this queryId.`);
}

/**
 * The Redis URL for lessons and examples: `$SLUICE_REDIS_URL`, else the local stack's Redis (`sluice up
 * --with redis`), else `redis://127.0.0.1:<DEFAULT_REDIS_PORT>`.
 */
export function redisUrl(env: NodeJS.ProcessEnv = process.env): string {
  return env.SLUICE_REDIS_URL ?? redisInfo()?.url ?? `redis://127.0.0.1:${DEFAULT_REDIS_PORT}`;
}
