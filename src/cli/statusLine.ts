/**
 * The live status line of `sluice run` (and `sluice demo`'s): per running query, its last batch, input and
 * processing rates, watermark and lag (records waiting in the sources), rewritten in place. Only on a
 * terminal: when stdout is a pipe or a file nothing is written (logs and JSON stay clean).
 */
import type { SluiceSession } from '../api/session.js';
import type { StreamingQueryProgress } from '../exec/progress.js';

const RENDER_MS = 500;
/** Lag asks the broker: not more often than this. */
const LAG_MS = 5_000;

export function startStatusLine(session: SluiceSession, out: NodeJS.WriteStream = process.stdout): { stop(): void } {
  if (!out.isTTY) return { stop: () => {} };
  const last = new Map<string, StreamingQueryProgress>();
  const lag = new Map<string, number | undefined>();
  const listener = { onQueryProgress: ({ progress }: { progress: StreamingQueryProgress }) => void last.set(progress.id, progress) };
  session.streams.addListener(listener);
  let lagAt = 0;
  let shown = false;
  const render = (): void => {
    const queries = session.streams.active;
    if (Date.now() - lagAt > LAG_MS) {
      lagAt = Date.now();
      for (const q of queries) q.lag().then((n) => lag.set(q.id, n), () => lag.delete(q.id)); // lag() asks one at a time
    }
    const parts = queries.map((q) => {
      const p = last.get(q.id);
      if (!p) return `${q.name ?? q.id.slice(0, 8)}: starting`;
      const wm = p.eventTime.watermark && Date.parse(p.eventTime.watermark) > 0 ? ` · watermark ${p.eventTime.watermark.slice(11, 19)}` : '';
      const behind = lag.get(q.id);
      return (
        `${q.name ?? q.id.slice(0, 8)}: batch ${p.batchId} · in ${Math.round(p.inputRowsPerSecond)}/s · processed ${Math.round(p.processedRowsPerSecond)}/s` +
        `${wm}${behind !== undefined ? ` · lag ${behind}` : ''}`
      );
    });
    if (!parts.length) return;
    const line = parts.join(' | ');
    const width = out.columns ?? 120;
    out.write(`\r${line.length > width - 1 ? `${line.slice(0, width - 2)}…` : line.padEnd(width - 1)}`);
    shown = true;
  };
  const timer = setInterval(render, RENDER_MS);
  timer.unref();
  return {
    stop: () => {
      clearInterval(timer);
      session.streams.removeListener(listener);
      if (shown) out.write('\n');
    },
  };
}
