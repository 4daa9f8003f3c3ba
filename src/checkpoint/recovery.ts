/**
 * What a restart does with a checkpoint, or why it must not run (issue 16, item 7). Both the micro-batch
 * loop (`planRestart`) and `sluice checkpoint explain` (`inspectCheckpoint`) ask here, so explain says
 * exactly what a restart would do.
 *
 * The protocol the checks rest on (DESIGN §3, Spark's MicroBatchExecution): batch N writes offsets/N, runs,
 * commits state version N+1, then writes commits/N; offsets/N+1 is written only after commits/N. So in a
 * healthy checkpoint, with L the last offsets/ entry and C the last commits/ entry: C = L (all done) or
 * C = L−1 (batch L was cut short and is re-run with its logged offsets), or no commit and L = 0; every
 * state version is at most C+2 (a batch cut short after its state commit); the purge never empties a log.
 * Anything else means files were deleted or damaged, and running anyway would silently read input again
 * (duplicates) or skip it. Such a checkpoint is refused with the file, what it means and the safe fix.
 *
 * Deleting the last, uncommitted offsets/N is legal (batch N is planned again); it leaves a healthy shape.
 * Not detectable, as in Spark: deleting offsets/ and commits/ of a stateless query altogether, or commits/
 * (folder and all) while only batch 0 exists — both look like a query that never finished a batch.
 * A restart reads only the last batches; older damaged or missing files are reported as history, not refused.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Checkpoint, CommitMetadata, LogRead, OffsetSeq } from './checkpoint.js';
import { CheckpointDamageError, CheckpointError, type CheckpointProblem } from './errors.js';
import { isTempFile } from './files.js';

const PARTITIONS_CONF = 'sluice.sql.shuffle.partitions';

/** What a restarting query brings to the checks: its sources and stateful operators. */
export interface QueryShape {
  /** The sources' descriptions, in plan order (`Source.describe()`). */
  sources: string[];
  /** The ids of the query's stateful operators (their state is in state/<id>/). */
  statefulOperators: number[];
}

/** Where a restart resumes. */
export interface RestartPlan {
  lastPlanned?: number;
  lastCommitted?: number;
  /** The batch the restart runs first. */
  nextBatch: number;
  /** Set when `nextBatch` was planned but not committed: it runs again with exactly these offsets. */
  rerun?: OffsetSeq;
  lastCommit?: CommitMetadata;
  /** The settings logged in the last offsets/N ({} before the first batch): they fix what shapes state. */
  loggedConf: Record<string, string>;
}

export interface CheckpointInspection {
  /** Undefined when a problem blocks the restart. */
  plan?: RestartPlan;
  /** Blocking problems first found first; then, with `history`, notes about files a restart does not read. */
  problems: CheckpointProblem[];
}

interface Folder {
  exists: boolean;
  /** A temporary file of an interrupted write: an empty log folder with one is a crash, not a deletion. */
  temp: boolean;
}

function folder(path: string): Folder {
  if (!existsSync(path)) return { exists: false, temp: false };
  return { exists: true, temp: readdirSync(path).some(isTempFile) };
}

interface StateLeaf {
  /** Relative to the checkpoint: state/<op>/<partition>[/left|right]. */
  rel: string;
  exists: boolean;
  deltas: Set<number>;
  snapshots: number[];
}

interface OperatorState {
  op: number;
  /** By partition: its folders of version files (one, or left/ and right/ for a stream-stream join). */
  partitions: Map<number, StateLeaf[]>;
  /** The highest version among its files, and that file. */
  top?: { version: number; file: string };
}

function readLeaf(root: string, rel: string): StateLeaf {
  const dir = join(root, rel);
  const leaf: StateLeaf = { rel, exists: existsSync(dir), deltas: new Set(), snapshots: [] };
  if (!leaf.exists) return leaf;
  for (const f of readdirSync(dir)) {
    const m = /^(\d+)\.(delta|snapshot)$/.exec(f);
    if (!m) continue;
    if (m[2] === 'delta') leaf.deltas.add(Number(m[1]));
    else leaf.snapshots.push(Number(m[1]));
  }
  return leaf;
}

/** The version files of every operator folder under state/. */
function readState(root: string): Map<number, OperatorState> {
  const out = new Map<number, OperatorState>();
  const dir = join(root, 'state');
  if (!existsSync(dir)) return out;
  for (const o of readdirSync(dir).filter((d) => /^\d+$/.test(d))) {
    const op = Number(o);
    const st: OperatorState = { op, partitions: new Map() };
    for (const p of readdirSync(join(dir, o)).filter((d) => /^\d+$/.test(d))) {
      const rel = `state/${o}/${p}`;
      const sides = ['left', 'right'].filter((s) => existsSync(join(root, rel, s)));
      // A stream-stream join keeps each side in its own folder: with one of them there, both must be.
      const leaves = sides.length ? ['left', 'right'].map((s) => readLeaf(root, `${rel}/${s}`)) : [readLeaf(root, rel)];
      st.partitions.set(Number(p), leaves);
      for (const l of leaves) {
        for (const v of [...l.deltas, ...l.snapshots]) {
          if (!st.top || v > st.top.version) st.top = { version: v, file: `${l.rel}/${v}.${l.deltas.has(v) ? 'delta' : 'snapshot'}` };
        }
      }
    }
    out.set(op, st);
  }
  return out;
}

/** The first file missing to rebuild state version `v` of a leaf (newest snapshot ≤ v, then the deltas after it). */
function missingForVersion(leaf: StateLeaf, v: number): string | undefined {
  if (!leaf.exists) return `${leaf.rel}/`;
  const base = Math.max(0, ...leaf.snapshots.filter((s) => s <= v));
  for (let k = base + 1; k <= v; k++) if (!leaf.deltas.has(k)) return `${leaf.rel}/${k}.delta`;
  return undefined;
}

const ids = (from: number, to: number): number[] => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);
const files = (dir: string, list: number[]): string =>
  list.length === 1 ? `${dir}/${list[0]}` : list.length === 2 ? `${dir}/${list[0]} and ${dir}/${list[1]}` : `${dir}/${list[0]}…${dir}/${list[list.length - 1]}`;
const were = (list: number[]): string => (list.length === 1 ? 'was' : 'were');

/**
 * Checks a checkpoint against the protocol and says where a restart resumes, or what stops it. With
 * `query`, also checks the state of that query's operators; with `history`, also reports older files
 * a restart does not read (for `sluice checkpoint explain`). Never writes anything.
 */
export function inspectCheckpoint(cp: Checkpoint, query?: QueryShape, opts: { history?: boolean } = {}): CheckpointInspection {
  const root = cp.root;
  const problems: CheckpointProblem[] = [];
  const block = (p: Omit<CheckpointProblem, 'blocksRestart'>): void => void problems.push({ ...p, blocksRestart: true });
  const note = (p: Omit<CheckpointProblem, 'blocksRestart'>): void => void problems.push({ ...p, blocksRestart: false });
  const blocked = (): boolean => problems.some((p) => p.blocksRestart);

  const meta = cp.metadataProblem();
  if (meta) problems.push(meta);

  const O = cp.offsets.batchIds();
  const Cm = cp.commits.batchIds();
  const L = O[O.length - 1];
  const C = Cm[Cm.length - 1];
  const offsetsCache = new Map<number, LogRead<OffsetSeq> | undefined>();
  const offsetsAt = (id: number): LogRead<OffsetSeq> | undefined => {
    if (!offsetsCache.has(id)) offsetsCache.set(id, cp.offsets.read(id));
    return offsetsCache.get(id);
  };
  const endOf = (id: number): string | undefined => {
    const v = offsetsAt(id)?.value;
    return v ? JSON.stringify(v.offsets.length === 1 ? v.offsets[0] : v.offsets) : undefined;
  };
  const offsetsDir = folder(join(root, 'offsets'));
  const commitsDir = folder(join(root, 'commits'));
  const state = readState(root);
  const stateTop = [...state.values()]
    .map((s) => s.top)
    .filter((t): t is { version: number; file: string } => t !== undefined)
    .sort((a, b) => b.version - a.version)[0];
  const stateAbove = (v: number): string =>
    stateTop && stateTop.version > v ? `, and the state files of versions above ${v} (${v + 1}.delta and later, and such .snapshot files) in every state/<operator>/<partition>/ folder` : '';

  // 1. The logs' shape.
  if (L === undefined) {
    if (C !== undefined) {
      block({
        file: 'offsets/',
        damage: `offsets/ is ${offsetsDir.exists ? 'empty' : 'missing'}, but commits/ records batches up to ${C}.`,
        meaning:
          'offsets/N says where batch N ended and is written before the batch runs, so those batches had theirs: they were deleted. ' +
          'Without them a restart cannot tell where to resume; it would read everything again from where the query first started (sources/*/0).',
        fix: 'Restore offsets/ from a backup of this checkpoint. To process everything again on purpose, delete the whole checkpoint folder instead (the sink then gets all of it a second time).',
      });
    } else if (commitsDir.exists && !commitsDir.temp) {
      // Not a crash: commits/ is created only by commits/0's write, after offsets/0 is durable. (An empty
      // offsets/ alone is one: the first run died writing offsets/0, whose folder is made first.)
      block({
        file: 'offsets/',
        damage: 'offsets/ and commits/ hold no batch file, though commits/ exists: it is created only when batch 0 commits, so their files were deleted.',
        meaning: 'A restart would start over from where the query first started (sources/*/0) and write everything again.',
        fix: 'Restore offsets/ and commits/ from a backup. To start over on purpose, delete the whole checkpoint folder.',
      });
    } else if (stateTop && stateTop.version >= 2) {
      // (Version 1 alone is legal: batch 0 wrote its state and died before commits/0, and its uncommitted
      // offsets/0 may be deleted — batch 0 is then planned again and writes version 1 anew.)
      block({
        file: stateTop.file,
        damage: `${stateTop.file} is state version ${stateTop.version}, written by batch ${stateTop.version - 1}, but offsets/ and commits/ hold no batch.`,
        meaning: 'They were deleted: a restart would read everything again from where the query first started (sources/*/0) and add it to state that already counts it.',
        fix: 'Restore offsets/ and commits/ from a backup. To start over on purpose, delete the whole checkpoint folder (state included).',
      });
    }
  } else if (C !== undefined && C > L) {
    const lost = ids(L + 1, C);
    block({
      file: `offsets/${L + 1}`,
      damage: `commits/${C} exists, but offsets/ ends at batch ${L}: ${files('offsets', lost)} ${were(lost)} deleted (offsets/N is written before batch N runs, commits/N after).`,
      meaning: `Where batch ${C}, the last committed, ended is recorded only in offsets/${C}: a restart cannot resume exactly.`,
      fix:
        `Restore ${files('offsets', lost)} from a backup. Without one, delete ${files('commits', lost)} too${stateAbove(L + 1)}: ` +
        `batch${lost.length > 1 ? 'es' : ''} ${lost.join(', ')} then run${lost.length > 1 ? '' : 's'} again from where batch ${L} ended, so ${lost.length > 1 ? 'their' : 'its'} output reaches the sink a second time.`,
    });
  } else if (L > 0 && (C === undefined || C < L - 1)) {
    const lost = ids(C === undefined ? 0 : C + 1, L - 1);
    const w = offsetsAt(L)?.value?.metadata.batchWatermarkMs;
    block({
      file: `commits/${L - 1}`,
      damage:
        C === undefined
          ? `commits/ is ${commitsDir.exists ? 'empty' : 'missing'}, but offsets/ has batches up to ${L}.`
          : `commits/ ends at batch ${C}, but offsets/ has batches up to ${L}: ${files('commits', lost)} ${were(lost)} deleted.`,
      meaning:
        `offsets/${L} is only written after batch ${L - 1} commits, so batches up to ${L - 1} finished and their commit records were deleted. ` +
        'Without them a restart cannot tell which batch to resume from, nor with which watermark.',
      fix:
        'Restore commits/ from a backup.' +
        (w !== undefined
          ? ` Or write the record of batch ${L - 1} again, with the watermark batch ${L} was planned with (in offsets/${L}): ` +
            `${commitsDir.exists ? '' : `mkdir ${join(root, 'commits')} && `}printf 'v1\\n{"nextBatchWatermarkMs":${w}}\\n' > ${join(root, 'commits', String(L - 1))} — a restart then runs batch ${L} again ` +
            'with its logged offsets (its output may reach the sink twice, as after a crash).'
          : ''),
    });
  }

  // 2. The files a restart reads: offsets/L, offsets/L-1 for a re-run, offsets/C-1's watermark, commits/C, sources/*/0 for batch 0.
  const rerunning = L !== undefined && C !== L;
  if (!blocked() && L !== undefined) {
    const last = offsetsAt(L)!;
    if (last.problem !== undefined) {
      block(
        rerunning
          ? {
              file: `offsets/${L}`,
              damage: `offsets/${L} ${last.problem}.`,
              meaning: `It is batch ${L}'s plan, and batch ${L} never committed (there is no commits/${L}).`,
              fix:
                `Delete offsets/${L}: a restart then plans batch ${L} again${L > 0 ? `, from where batch ${L - 1} ended` : ''}. ` +
                `If the lost run wrote some of its rows, they reach the sink again; a sink that skips batch ids it has seen would skip the new batch ${L}, so restore the file instead if yours does.`,
            }
          : {
              file: `offsets/${L}`,
              damage: `offsets/${L} ${last.problem}.`,
              meaning: `It says where batch ${L}, the last committed, ended: the next batch starts there.`,
              fix:
                `Restore it from a backup. Without one, delete commits/${L} and offsets/${L}: batch ${L} then runs again from where ` +
                `${L > 0 ? `batch ${L - 1} ended` : 'the query started'} (its output reaches the sink a second time).`,
            },
      );
    }
    if (rerunning && L > 0) {
      const prev = offsetsAt(L - 1);
      if (prev?.problem !== undefined || !prev) {
        const end = endOf(L);
        block({
          file: `offsets/${L - 1}`,
          damage: prev ? `offsets/${L - 1} ${prev.problem}.` : `offsets/${L - 1} is missing.`,
          meaning: `Batch ${L} was planned but not committed, so a restart runs it again from where batch ${L - 1} ended — which only offsets/${L - 1} records.`,
          fix:
            'Restore it from a backup. Without one this checkpoint cannot resume exactly: start the query on a new checkpointLocation with ' +
            `startingOffsets set to where it should resume${end ? ` (batch ${L} was to end at ${end}; starting there skips its rows unless the lost run wrote them)` : ''}.`,
        });
      }
    }
    const wmOf = C !== undefined ? C - 1 : -1;
    if (wmOf >= 0 && !(rerunning && wmOf === L - 1)) {
      const r = offsetsAt(wmOf);
      if (r?.problem !== undefined) {
        block({
          file: `offsets/${wmOf}`,
          damage: `offsets/${wmOf} ${r.problem}.`,
          meaning: `A restart reads from it only the watermark batch ${wmOf} ran with, to decide whether a no-data batch is due.`,
          fix: 'Restore it from a backup, or delete it: a restart then does without that watermark.',
        });
      }
    }
    if (C !== undefined) {
      const r = cp.commits.read(C);
      if (r?.problem !== undefined) {
        const w = offsetsAt(L)?.value?.metadata.batchWatermarkMs;
        block(
          C === L
            ? {
                file: `commits/${C}`,
                damage: `commits/${C} ${r.problem}.`,
                meaning: `It records that batch ${C}, the last, finished, and the watermark for the next batch.`,
                fix: `Delete it: a restart then runs batch ${C} again with its logged offsets (its output may reach the sink twice, as after a crash). Or restore it from a backup.`,
              }
            : {
                file: `commits/${C}`,
                damage: `commits/${C} ${r.problem}.`,
                meaning: `It records that batch ${C} finished, with the watermark batch ${L} was planned with.`,
                fix:
                  'Restore it from a backup' +
                  (w !== undefined ? `, or write it again: printf 'v1\\n{"nextBatchWatermarkMs":${w}}\\n' > ${join(root, 'commits', String(C))} (the watermark in offsets/${L}).` : '.'),
              },
        );
      }
    }
  }
  if (!blocked() && (L === undefined || (L === 0 && rerunning))) {
    const logged = L === 0 ? offsetsAt(0)?.value : undefined;
    const n = query?.sources.length ?? logged?.offsets.length ?? countSources(root);
    for (let i = 0; i < n; i++) {
      const r = cp.readSourceStart(i);
      const file = `sources/${i}/0`;
      if (L === undefined && r?.problem !== undefined) {
        block({
          file,
          damage: `${file} ${r.problem}.`,
          meaning: `No batch was planned yet; it is where source ${i} starts.`,
          fix: `Delete it: no batch read anything yet, so the query resolves startingOffsets again (with "latest", from the restart on).`,
        });
      } else if (L === 0 && (r === undefined || r.problem !== undefined)) {
        block({
          file,
          damage: r ? `${file} ${r.problem}.` : `${file} is missing.`,
          meaning: `Batch 0 was planned but not committed, so a restart runs it again from where each source started — which only sources/*/0 records.`,
          fix:
            'Restore it from a backup. Or delete offsets/0 and sources/: the query then starts as new and resolves startingOffsets again ' +
            '(with "earliest" it may write batch 0\'s rows a second time; with "latest" it skips what arrived before the restart).',
        });
      }
    }
  }

  // 3. State: nothing beyond what the logs say, and the version the next batch loads must be rebuildable.
  const limit = (C ?? -1) + 2;
  for (const s of state.values()) {
    if (!s.top || s.top.version <= limit) continue;
    block({
      file: s.top.file,
      damage:
        `${s.top.file} is state version ${s.top.version} (written by batch ${s.top.version - 1}), but the logs end ` +
        (C === undefined ? 'before any committed batch.' : `at batch ${C}, the last committed${L !== undefined && L > C ? ` (batch ${L} planned)` : ''}.`),
      meaning:
        `The offsets/ and commits/ files of the batches after ${C === undefined ? 'the start' : `batch ${C}`} were deleted (or this state comes from another checkpoint): ` +
        "a restart would read those batches' input again and write their output a second time.",
      fix:
        'Restore offsets/ and commits/ from a backup. To run those batches again on purpose, delete the state files of versions above ' +
        `${limit - 1} (${limit}.delta and later, and such .snapshot files) in every state/<operator>/<partition>/ folder.`,
    });
    break;
  }
  if (!blocked() && C !== undefined) {
    const need = C + 1;
    const conf = L !== undefined ? offsetsAt(L)?.value?.metadata.conf : undefined;
    const partitions = conf?.[PARTITIONS_CONF] !== undefined ? Number(conf[PARTITIONS_CONF]) : undefined;
    const ops = new Set([...state.keys(), ...(query?.statefulOperators ?? [])]);
    for (const op of [...ops].sort((a, b) => a - b)) {
      if (query && !query.statefulOperators.includes(op)) continue; // an operator the query no longer has
      const s = state.get(op);
      if (!s) {
        block({
          file: `state/${op}/`,
          damage: `state/${op}/ is missing, but batch ${C} committed.`,
          meaning: `The query's stateful operator ${op} needs its state as of batch ${C}: the folder was deleted, or the query gained a stateful operator since this checkpoint was written (Spark 3.5 refuses both).`,
          fix: `Restore state/${op}/ from a backup; for a changed query, start it on a new checkpointLocation.`,
        });
        break;
      }
      const parts = partitions !== undefined && partitions >= 1 ? ids(0, partitions - 1) : [...s.partitions.keys()];
      let missing: string | undefined;
      for (const p of parts) {
        for (const leaf of s.partitions.get(p) ?? [readLeaf(root, `state/${op}/${p}`)]) {
          missing = missingForVersion(leaf, need);
          if (missing) break;
        }
        if (missing) break;
      }
      if (missing) {
        block({
          file: missing,
          damage: `${missing} is missing.`,
          meaning:
            `State version ${need} (after batch ${C}, the last committed) is rebuilt from the newest snapshot at or below it and the deltas after it; ` +
            `without this ${missing.endsWith('/') ? 'folder' : 'file'} operator ${op}'s state would be incomplete (counts, keys seen, buffered rows).`,
          fix: 'Restore it from a backup. Without one the state cannot be rebuilt: start the query on a new checkpointLocation (its state starts empty).',
        });
        break;
      }
    }
  }

  // 4. History a restart does not read (explain only).
  if (opts.history) {
    const history = (log: 'offsets' | 'commits', present: number[], needed: Set<number>): void => {
      for (let k = present[0]!; present.length && k < present[present.length - 1]!; k++) {
        if (present.includes(k)) continue;
        note({
          file: `${log}/${k}`,
          damage: `${log}/${k} is missing (${log}/ has batches ${present[0]}…${present[present.length - 1]}).`,
          meaning: 'History only: a restart reads just the last batches.',
          fix: 'Nothing is needed to restart; restore it from a backup to keep the history whole.',
        });
      }
      for (const k of present) {
        if (needed.has(k)) continue;
        const r = log === 'offsets' ? offsetsAt(k) : cp.commits.read(k);
        if (r?.problem === undefined) continue;
        note({
          file: `${log}/${k}`,
          damage: `${log}/${k} ${r.problem}.`,
          meaning: 'History only: a restart reads just the last batches.',
          fix: 'Nothing is needed to restart; restore it from a backup to keep the history whole, or delete it.',
        });
      }
    };
    const neededOffsets = new Set([L, L !== undefined ? L - 1 : undefined, C !== undefined ? C - 1 : undefined].filter((x): x is number => x !== undefined));
    history('offsets', O, neededOffsets);
    history('commits', Cm, new Set(C !== undefined ? [C] : []));
  }

  if (blocked()) return { problems };
  const lastCommit = C !== undefined ? cp.commits.read(C)?.value : undefined;
  const latest = L !== undefined ? offsetsAt(L)?.value : undefined;
  const plan: RestartPlan = {
    ...(L !== undefined ? { lastPlanned: L } : {}),
    ...(C !== undefined ? { lastCommitted: C } : {}),
    nextBatch: rerunning ? L : C === undefined ? 0 : C + 1,
    ...(rerunning && latest ? { rerun: latest } : {}),
    ...(lastCommit ? { lastCommit } : {}),
    loggedConf: latest?.metadata.conf ?? {},
  };
  return { plan, problems };
}

/** How many sources/<i>/ folders there are, in a row from 0. */
function countSources(root: string): number {
  let n = 0;
  while (existsSync(join(root, 'sources', String(n)))) n++;
  return n;
}

/**
 * Where a restarting query resumes. Throws a {@link CheckpointDamageError} (the file, what it means, the
 * safe fix) when the checkpoint is damaged, and a {@link CheckpointError} when it belongs to a query with
 * other sources. Reads only; nothing is written.
 */
export function planRestart(cp: Checkpoint, query: QueryShape): RestartPlan {
  const { plan, problems } = inspectCheckpoint(cp, query);
  const blocking = problems.filter((p) => p.blocksRestart);
  if (!plan || blocking.length) throw new CheckpointDamageError(cp.root, blocking[0]!, blocking.length - 1);
  if (plan.lastPlanned !== undefined) checkCompatible(cp, cp.offsets.get(plan.lastPlanned)!, `offsets/${plan.lastPlanned}`, query.sources);
  return plan;
}

/** Refuses a checkpoint written by a query with other sources: that query's offsets mean nothing here. */
function checkCompatible(cp: Checkpoint, logged: OffsetSeq, path: string, sources: string[]): void {
  const was = logged.metadata.conf['sluice.sources'];
  const now = JSON.stringify(sources);
  if (logged.offsets.length !== sources.length || (was !== undefined && was !== now)) {
    throw new CheckpointError(
      `The checkpoint at ${cp.root} belongs to a query with different sources, so it cannot be resumed.\n` +
        `  checkpoint (${path}): ${was ?? `${logged.offsets.length} source(s)`}\n` +
        `  this query:          ${now}\n` +
        'Its offsets name what the old query read; applying them to other sources would skip or repeat data, or make the ' +
        "query wait for offsets that never come. (Spark 3.5 does not compare the sources: a query subscribed to another topic " +
        'finds the old topic\'s partitions missing from the new offsets and, with the default failOnDataLoss=true, fails at its first ' +
        'batch reporting data loss.) Use a new checkpointLocation for the changed query, or restore the original sources.',
    );
  }
}
