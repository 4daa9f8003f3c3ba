import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The Sluice package's folder (package.json, bin/, proto/, spark/), found upwards from this module, whether it
 * runs from src/ (tsx, vitest) or dist/src/.
 */
export function packageRoot(): string {
  for (let d = dirname(fileURLToPath(import.meta.url)); ; d = dirname(d)) {
    const pkg = join(d, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'sluice') return d;
    if (dirname(d) === d) throw new Error('The sluice package folder (with package.json) was not found above this module.');
  }
}
