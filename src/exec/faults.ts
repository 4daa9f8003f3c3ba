/**
 * Deterministic fault injection: named points the micro-batch loop passes, where a test can make the process
 * die as a real crash would — SIGKILL, no exception, no `finally`, no flush — to check what a restart does.
 *
 * Armed by the environment of the process to crash:
 *
 *   SLUICE_FAULT=after-sink@1              die at `after-sink` of batch 1
 *   SLUICE_FAULT=before-sink               die at `before-sink` of the first batch that reaches it
 *   SLUICE_FAULT=after-sink@1,after-commit@3   the first of these reached
 *
 * Points, in the order a batch N passes them (exec/microBatch.ts):
 *
 * | point                 | where                                             | on disk when it dies                  |
 * |-----------------------|---------------------------------------------------|---------------------------------------|
 * | `before-sink`         | offsets/N written, before the sink is opened      | offsets/N                             |
 * | `mid-transaction`     | exactly-once Kafka sink: every record of batch N  | offsets/N, the batch in Kafka in an   |
 * |                       | is in the log, in a transaction not committed yet | open transaction (never seen by       |
 * |                       | (not reached by a batch with no output)           | read_committed readers)               |
 * | `after-sink`          | the sink (Kafka, foreachBatch…) has written the   | offsets/N, the batch in the sink      |
 * |                       | whole batch; state and commits/N not yet          |                                       |
 * | `during-state-commit` | state version N+1 written by every operator,      | offsets/N, the sink's output, state   |
 * |                       | commits/N not yet (the batch is half committed)   | N+1 (a restart re-runs N from state N)|
 * | `after-commit`        | commits/N written, before the next batch          | the whole batch                       |
 *
 * Unset, a point costs one environment read and a falsy check per batch. A name not in FAULT_POINTS is an
 * error at the first point passed (a typo must not silently test nothing). New points (a crash inside the
 * state store between partitions) are one `fault('name', batchId)`
 * call where they happen and one entry in FAULT_POINTS. With the exactly-once Kafka sink, `after-sink` is after
 * the transaction committed, before commits/N.
 */
import { writeSync } from 'node:fs';

export const FAULT_POINTS = ['before-sink', 'mid-transaction', 'after-sink', 'during-state-commit', 'after-commit'] as const;
export type FaultPoint = (typeof FAULT_POINTS)[number];

/** The environment variable that arms faults. */
export const FAULT_ENV = 'SLUICE_FAULT';

export interface FaultSpec {
  point: FaultPoint;
  /** The batch at which to die; undefined: the first batch that reaches the point. */
  batchId?: number;
}

/** Parses `point@batchId[,point@batchId…]` (`@batchId` optional); throws on an unknown point or a bad batch id. */
export function parseFaults(value: string): FaultSpec[] {
  return value
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean)
    .map((part) => {
      const [name, id, ...rest] = part.split('@');
      if (!(FAULT_POINTS as readonly string[]).includes(name!)) {
        throw new Error(`${FAULT_ENV}="${value}": "${name}" is not a fault point. Points: ${FAULT_POINTS.join(', ')} (e.g. after-sink@1).`);
      }
      if (rest.length || (id !== undefined && !/^\d+$/.test(id))) {
        throw new Error(`${FAULT_ENV}="${value}": "${part}" should be <point>@<batch id>, the batch id a whole number (e.g. after-sink@1).`);
      }
      return { point: name as FaultPoint, ...(id !== undefined ? { batchId: Number(id) } : {}) };
    });
}

let parsed: { raw: string; specs: FaultSpec[] } | undefined;

/**
 * A named fault point, passed by batch `batchId`: returns at once unless SLUICE_FAULT names this point (and
 * batch), in which case the process writes one line to stderr and kills itself with SIGKILL.
 */
export function fault(point: FaultPoint, batchId: number): void {
  const raw = process.env[FAULT_ENV];
  if (!raw) return;
  if (parsed?.raw !== raw) parsed = { raw, specs: parseFaults(raw) };
  if (!parsed.specs.some((s) => s.point === point && (s.batchId === undefined || s.batchId === batchId))) return;
  // Synchronous: the line is out before the signal. Then a real crash: nothing after this runs.
  writeSync(2, `sluice: ${FAULT_ENV}=${raw}: killing process ${process.pid} with SIGKILL at ${point} of batch ${batchId}\n`);
  process.kill(process.pid, 'SIGKILL');
  // SIGKILL to oneself is delivered before kill() returns on Linux; elsewhere, never go on meanwhile.
  for (;;) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1000);
}
