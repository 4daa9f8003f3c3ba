/**
 * Issue 13 item 3 — the live monitor in a real headless browser (Debian's chromium, driven by puppeteer-core):
 * the page is loaded while a query runs, its charts must grow as batches come, its findings must show
 * diagnose()'s answer, and /metrics must carry the same figures. A screenshot is saved
 * (SLUICE_SCREENSHOT=<path> to keep it; docs/images/monitor.png is one).
 */
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer, { type Browser } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SluiceSession, col, count, startMonitor, window, type Monitor } from '../../src/index.js';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find(existsSync);
let browser: Browser;

beforeAll(async () => {
  if (!CHROMIUM) throw new Error('The browser test needs Debian\'s chromium (apt-get install chromium): scripts/dev.sh installs it.');
  browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
}, 60_000);
afterAll(async () => {
  await browser?.close();
});

const at = (t: string): Date => new Date(`2026-01-01T${t}Z`);

describe('live monitor (sluice monitor page)', () => {
  it('shows a running query: charts update with each batch, findings come from diagnose(), /metrics has the figures', async () => {
    const s = new SluiceSession('monitor');
    s.out = () => {};
    s.log = () => {};
    let monitor: Monitor | undefined;
    try {
      monitor = await startMonitor(s);
      expect(monitor.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
      const clicks = s.memoryStream('user STRING, ts TIMESTAMP');
      const q = await clicks.toDF().withWatermark('ts', '10 minutes').groupBy(window(col('ts'), '5 minutes'), col('user')).agg(count('*').alias('n'))
        .writeStream.format('memory').queryName('clicks_per_window').outputMode('append')
        .option('checkpointLocation', join(mkdtempSync(join(tmpdir(), 'sluice-ui-')), 'cp'))
        .start();
      clicks.addData({ user: 'ada', ts: at('12:01:00') }, { user: 'bob', ts: at('12:02:00') });
      await q.processAllAvailable();

      const page = await browser.newPage();
      await page.setViewport({ width: 1280, height: 1100 });
      await page.goto(monitor.url);
      const card = `#q-${q.id}`;
      await page.waitForSelector(`${card} .chart canvas`);
      const batches = (): Promise<number> => page.$eval(card, (el) => Number((el as HTMLElement).dataset.batches ?? 0));
      const before = await batches();
      expect(before).toBeGreaterThanOrEqual(1);
      expect(await page.$$eval(`${card} .chart`, (els) => els.map((e) => (e as HTMLElement).dataset.chart))).toEqual(['rates', 'phases', 'time', 'state', 'lost']);
      // Append mode, nothing written yet: the page shows the watermark finding.
      await page.waitForFunction((sel) => (document.querySelector(sel) as HTMLElement | null)?.dataset.findings === 'waiting-for-watermark', { timeout: 10_000 }, card);

      // More batches while the page is open: the charts grow by Server-Sent Events, without a reload.
      for (const t of ['12:06:00', '12:09:00', '12:16:00', '12:21:00']) {
        clicks.addData({ user: 'ada', ts: at(t) });
        await q.processAllAvailable();
      }
      await page.waitForFunction((sel, n) => Number((document.querySelector(sel) as HTMLElement).dataset.batches) >= n, { timeout: 10_000 }, card, before + 4);
      expect(await page.$eval(`${card} h2`, (e) => e.textContent)).toBe('clicks_per_windowactive');
      // Windows were written once the watermark passed them: the finding is gone.
      await page.waitForFunction((sel) => (document.querySelector(sel) as HTMLElement).dataset.findings === '', { timeout: 10_000 }, card);
      await page.screenshot({ path: process.env.SLUICE_SCREENSHOT ?? join(tmpdir(), 'sluice-monitor.png'), fullPage: true });

      // DNS rebinding: a request naming another host is refused, though it reached 127.0.0.1.
      const { request } = await import('node:http');
      const rebound = await new Promise<number>((resolve, reject) =>
        request(`${monitor!.url}api/queries`, { headers: { Host: 'attacker.example:80' } }, (res) => resolve(res.statusCode ?? 0)).on('error', reject).end(),
      );
      expect(rebound).toBe(403);
      const metrics = await (await fetch(`${monitor.url}metrics`)).text();
      expect(metrics).toMatch(/sluice_streaming_numInputRows_total\{query="clicks_per_window"\} 6/);
      expect(metrics).toMatch(/sluice_streaming_eventTime_watermark\{query="clicks_per_window"\} \d+/);
      await q.stop();
      await page.close();
    } finally {
      await monitor?.close();
    }
  });
});
