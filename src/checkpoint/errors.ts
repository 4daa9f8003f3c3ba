/**
 * Errors about a checkpoint folder. Kept apart from checkpoint.ts so the lock and the recovery checks can
 * use them without an import cycle.
 */

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

/** One thing wrong with a checkpoint, as `sluice checkpoint explain` and a refused restart report it. */
export interface CheckpointProblem {
  /** The file or folder, relative to the checkpoint (`offsets/3`, `commits/`, `state/0/1/4.delta`). */
  file: string;
  /** What is wrong with it, naming it (`offsets/3 is empty (0 bytes).`). */
  damage: string;
  /** What that means for the query. */
  meaning: string;
  /** The safe fix. */
  fix: string;
  /** False for history a restart does not read (an old batch's file): reported, not refused. */
  blocksRestart: boolean;
}

/** A restart refused because the checkpoint is damaged; `problem` says which file, what it means and the fix. */
export class CheckpointDamageError extends CheckpointError {
  override name = 'CheckpointDamageError';
  constructor(
    readonly root: string,
    readonly problem: CheckpointProblem,
    /** Further problems found (`sluice checkpoint explain` lists them all). */
    readonly more = 0,
  ) {
    super(
      `Checkpoint ${root} is damaged, so the query does not run (nothing was read or written): ${problem.damage}` +
        (problem.meaning ? ` ${problem.meaning}` : '') +
        `\nSafe fix: ${problem.fix}` +
        (more ? `\n(${more} more problem${more > 1 ? 's' : ''}: \`sluice checkpoint explain ${root}\` lists them all.)` : ''),
    );
  }
}

/** The checkpoint's lock is held by another query, or was lost by this one. */
export class CheckpointLockError extends CheckpointError {
  override name = 'CheckpointLockError';
}
