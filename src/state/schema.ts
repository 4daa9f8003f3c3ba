/**
 * The schema of a stateful operator's state, written once to `state/<operatorId>/_metadata/schema` (as
 * Spark's StateSchemaCompatibilityChecker does) and checked when a query restarts on the checkpoint.
 *
 * State holds what the old query wrote: group keys and aggregate buffers, dedupe keys, sessions. A query
 * changed in a way that reads those bytes differently (another aggregate, a key of another type) would
 * compute wrong numbers or crash on the first old key, so the change is refused before the first batch,
 * with what changed.
 *
 * Sluice is stricter than Spark on values: Spark compares buffer types only (so `sum(x)` → `count(x)`, both
 * bigint, passes and gives wrong counts); Sluice compares the aggregate functions too (docs/decisions.md).
 * Names may change, as in Spark: renaming an output column does not change the bytes in state.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { writeAtomic } from '../checkpoint/checkpoint.js';

export interface StateField {
  name: string;
  /** The type as stored: a Spark type name, or for aggregate buffers the function and its argument type. */
  type: string;
}

export interface StateSchema {
  /** Spark's short operator name (`stateStoreSave`, `dedupe`, …): another kind of operator reads state differently. */
  operator: string;
  keySchema: StateField[];
  valueSchema: StateField[];
  /**
   * Values are named parts matched by name (transformWithState's state variables): one added or removed is
   * allowed (the schema file is then written again), one whose type changed is not.
   */
  valuesByName?: boolean;
}

export class StateSchemaError extends Error {
  override name = 'StateSchemaError';
}

const FILE_VERSION = 1;

export function stateSchemaPath(operatorDir: string): string {
  return join(operatorDir, '_metadata', 'schema');
}

const show = (fs: StateField[]): string => `[${fs.map((f) => `${f.name}: ${f.type}`).join(', ')}]`;

/** Writes the schema of an operator's state (once its first state version is committed). */
export function writeStateSchema(operatorDir: string, schema: StateSchema): void {
  const path = stateSchemaPath(operatorDir);
  mkdirSync(dirname(path), { recursive: true });
  writeAtomic(path, JSON.stringify({ version: FILE_VERSION, ...schema }, null, 2) + '\n');
}

/**
 * Checks an operator's state schema against the one written with its state. Returns false when it must be
 * (re)written: there is none yet (a new operator: the caller writes it once state is committed, so a first
 * run that fails before committing fixes nothing), or named values were added or removed. Throws a StateSchemaError saying what changed when the state cannot be read
 * by this query.
 */
export function checkStateSchema(operatorDir: string, id: number, schema: StateSchema): boolean {
  const path = stateSchemaPath(operatorDir);
  if (!existsSync(path)) return false;
  const old = JSON.parse(readFileSync(path, 'utf8')) as StateSchema & { version: number };
  const problems: string[] = [];
  if (old.operator !== schema.operator) {
    problems.push(`it was written by a ${old.operator} operator, and operator ${id} of this query is ${schema.operator}`);
  } else {
    const diff = (what: string, was: StateField[], now: StateField[]): void => {
      const same = was.length === now.length && was.every((f, i) => f.type === now[i]!.type);
      if (!same) problems.push(`its ${what} were ${show(was)}, this query's are ${show(now)}`);
    };
    diff('keys', old.keySchema, schema.keySchema);
    if (schema.valuesByName) {
      const was = new Map(old.valueSchema.map((f) => [f.name, f.type]));
      const changed = schema.valueSchema.filter((f) => was.has(f.name) && was.get(f.name) !== f.type);
      if (changed.length) {
        problems.push(`its ${changed.map((f) => `${f.name} was ${was.get(f.name)!}, this query's is ${f.type}`).join(', ')}`);
      } else if (old.valueSchema.length !== schema.valueSchema.length || schema.valueSchema.some((f) => !was.has(f.name))) {
        return false; // variables added or retired: the schema file is written again with the next commit
      }
    } else diff('values', old.valueSchema, schema.valueSchema);
  }
  if (!problems.length) return true;
  throw new StateSchemaError(
    `The state of stateful operator ${id} in ${operatorDir} does not fit this query: ${problems.join('; and ')}.\n` +
      'State holds what the old query computed (group keys and aggregate buffers); reading it with a changed ' +
      'grouping or other aggregates would give wrong results silently. Start the changed query with a new ' +
      'checkpointLocation (it then reads its sources from startingOffsets again), or restore the original ' +
      'groupBy/agg. (Spark checks this too, in state/<id>/_metadata/schema, but only by type.)',
  );
}
