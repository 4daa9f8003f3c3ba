/**
 * Runs a pipeline file as its own process, as `sluice run <file>` does: what a lesson or a test needs when the
 * pipeline is going to be killed (a fault point, SLUICE_FAULT) and must not take the notebook with it.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { packageRoot } from './packageRoot.js';

export interface PipelineRun {
  /** The signal that ended the process (SIGKILL from a fault point), or null. */
  signal: string | null;
  code: number | null;
  /** What it printed, stdout and stderr in the order written, one entry per line, redacted (below). */
  lines: string[];
}

/**
 * What changes from run to run in a log line, replaced by <…>: query and run ids, pids, times, the host name,
 * heartbeat ages and the current folder — so that printed runs can be compared and checked.
 */
export function redactRunLine(line: string, cwd = process.cwd()): string {
  return line
    .replaceAll(`${cwd}/`, '')
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, '<id>')
    .replace(/\d{4}-\d\d-\d\dT[\d:.]+Z/g, '<time>')
    .replace(/(pid|process) \d+/g, '$1 <pid>')
    .replace(/on host \S+,/, 'on host <host>,')
    .replace(/\([\d.]+ s ago\)/, '(<n> s ago)');
}

/**
 * Runs `sluice run <file>` with `env` added to this process's environment (SLUICE_FAULT only if `env` sets
 * it); resolves when the process has ended, with how it ended and its redacted output lines.
 */
export function runPipelineFile(file: string, env: Record<string, string> = {}): Promise<PipelineRun> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'SLUICE_FAULT'));
  const bin = join(packageRoot(), 'bin', 'sluice.js');
  // stderr joins stdout in one pipe (2>&1), so the lines keep the order they were written in.
  const child = spawn('sh', ['-c', 'exec "$@" 2>&1', 'sh', process.execPath, bin, 'run', file], { env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  return new Promise((done) => child.on('close', (code, signal) => done({ code, signal, lines: out.split('\n').filter(Boolean).map((l) => redactRunLine(l)) })));
}
