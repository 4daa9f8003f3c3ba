// Lessons and examples import 'sluice' like user code does: link the package into its own node_modules
// after every install (npm ci and npm install remove links they did not make). Idempotent.
import { lstatSync, mkdirSync, rmSync, symlinkSync } from 'node:fs';

const link = 'node_modules/sluice';
mkdirSync('node_modules', { recursive: true });
try {
  if (lstatSync(link).isSymbolicLink()) process.exit(0);
  rmSync(link, { recursive: true, force: true });
} catch {
  // not there yet
}
symlinkSync('..', link, 'dir');
