/** Starting a worker thread from a module next to the caller: compiled (dist), or TypeScript through tsx (tests, `sluice run` from source). */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

/** `js`: the compiled script's URL (`new URL('./x.js', import.meta.url)`); its `.ts` twin is used when it is absent. */
export function startWorkerScript(js: URL): Worker {
  if (existsSync(fileURLToPath(js))) return new Worker(js);
  const ts = new URL(js.href.replace(/\.js$/, '.ts'));
  // tsx's ESM entry (its `import` condition) registers the TypeScript loader in the worker's own thread.
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx/esm/api').replace(/\.cjs$/, '.mjs')).href;
  return new Worker(`import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(ts.href)}); });`, { eval: true });
}
