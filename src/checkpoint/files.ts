/**
 * Crash-durable file writes for the checkpoint and the state files.
 *
 * A rename alone is atomic but not durable: after a power loss or kernel crash the new name can point at a
 * file whose data never reached the disk (an empty `offsets/N`), or the rename itself can be forgotten
 * while a later write survives. So every write here is: write a temporary file, fsync it, move it into
 * place, fsync the folder (the folder's entry is what makes the new name durable). New folders are fsynced
 * into their parents the same way.
 *
 * Files that must never be replaced (`offsets/N`, `commits/N`, `metadata`, the lock) are created
 * exclusively: moved into place with a hard link, which fails if the name exists — unlike rename, which
 * silently replaces it — never by "check, then rename". Two writers racing for the same batch therefore
 * cannot both succeed (Spark relies on HDFS's rename failing the same way). Where the file system has no
 * hard links, the file is copied into a name created with O_EXCL: still exclusive, but a crash during the
 * copy can leave a short file, which a restart reports as damaged (./recovery.ts) instead of using it.
 *
 * `fs` is used through its default export so tests can observe the order of the system calls.
 */
import fs from 'node:fs';
import { randomUUID } from 'node:crypto';
import { dirname } from 'node:path';

/** Temporary files end like this; a crash can leave one behind (see {@link isTempFile}). */
const TEMP_SUFFIX = '.tmp';

/** A temporary name next to `path`, unique per process and call. */
export function tempName(path: string): string {
  return `${path}.${process.pid}.${randomUUID().slice(0, 8)}${TEMP_SUFFIX}`;
}

/** True for a temporary file a write of this module may have left behind when the process died. */
export function isTempFile(name: string): boolean {
  return /\.\d+\.[0-9a-f]{8}\.tmp$/.test(name);
}

/** Errors fsync of a folder gives where folders cannot be fsynced (Windows, some network file systems). */
const DIR_FSYNC_UNSUPPORTED = new Set(['EISDIR', 'EINVAL', 'EPERM', 'EBADF', 'ENOTSUP', 'EOPNOTSUPP', 'EACCES']);

/** Makes the entries of `dir` (files created, renamed or removed in it) durable. */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch (e) {
    if (!DIR_FSYNC_UNSUPPORTED.has((e as NodeJS.ErrnoException).code ?? '')) throw e;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Creates `dir` (and missing parents) durably: each new folder is fsynced into its parent. */
export function ensureDir(dir: string): void {
  const first = fs.mkdirSync(dir, { recursive: true });
  if (first === undefined) return; // it existed
  for (let d = dir; ; d = dirname(d)) {
    fsyncDir(dirname(d));
    if (d === first || dirname(d) === d) break;
  }
}

/** Hard links are not offered by every file system; then the exclusive create is an O_EXCL copy. */
const LINK_UNSUPPORTED = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EMLINK']);

/**
 * Writes `content` to `path` atomically and durably. With `overwrite: false`, fails with an `EEXIST` error
 * (and leaves the existing file alone) when `path` exists, even if another process creates it meanwhile.
 * `content` may be an iterable of chunks, so a file larger than memory (a state snapshot) is never one string.
 */
export function writeAtomic(path: string, content: string | Iterable<string>, opts: { overwrite?: boolean } = {}): void {
  const dir = dirname(path);
  ensureDir(dir);
  const tmp = tempName(path);
  const fd = fs.openSync(tmp, 'wx');
  try {
    if (typeof content === 'string') fs.writeFileSync(fd, content);
    else {
      let chunk = '';
      for (const part of content) {
        chunk += part;
        if (chunk.length > 1 << 20) {
          fs.writeFileSync(fd, chunk);
          chunk = '';
        }
      }
      if (chunk) fs.writeFileSync(fd, chunk);
    }
    fs.fsyncSync(fd); // the data is on disk before the name points at it
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  try {
    if (opts.overwrite === false) moveNoReplace(tmp, path);
    else fs.renameSync(tmp, path);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fsyncDir(dir); // the new name is on disk
}

function moveNoReplace(tmp: string, path: string): void {
  try {
    fs.linkSync(tmp, path); // fails with EEXIST if path exists: the no-replace rename
  } catch (e) {
    if (!LINK_UNSUPPORTED.has((e as NodeJS.ErrnoException).code ?? '')) throw e;
    // No hard links here: COPYFILE_EXCL creates the name with O_EXCL, so of two writers one still fails
    // with EEXIST. Not atomic: a crash mid-copy leaves a short file, refused on restart as damaged.
    fs.copyFileSync(tmp, path, fs.constants.COPYFILE_EXCL);
    const fd = fs.openSync(path, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }
  fs.unlinkSync(tmp);
}
