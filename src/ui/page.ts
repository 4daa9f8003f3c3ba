/**
 * The monitor's page (served by ui/server.ts): one card per query with its status, diagnose() findings and
 * five uPlot charts fed live by Server-Sent Events — input vs processing rate, batch duration by phase,
 * watermark vs max event time, state rows, late rows and dead letters per batch. No build step: the page is
 * plain JS, and uPlot (a maintained, small time-series chart library) is served from node_modules.
 */
export const PAGE = /* html */ `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Sluice — streaming queries</title>
<link rel="stylesheet" href="/uplot.min.css">
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #1d232b; }
  header { background: #14324a; color: #fff; padding: 10px 20px; display: flex; gap: 16px; align-items: baseline; }
  header h1 { font-size: 18px; margin: 0; }
  header .live { font-size: 12px; opacity: .8; }
  main { padding: 16px 20px; display: grid; gap: 16px; }
  .query { background: #fff; border: 1px solid #dde2e8; border-radius: 6px; padding: 12px 16px; }
  .query h2 { font-size: 16px; margin: 0 0 4px; }
  .status { font-size: 12px; padding: 1px 8px; border-radius: 10px; margin-left: 8px; }
  .status.active { background: #e3f5e9; color: #1b6e3a; } .status.stopped { background: #eceff3; color: #56606b; }
  .status.failed { background: #fde8e8; color: #a11d1d; }
  .summary { color: #56606b; font-size: 13px; margin-bottom: 8px; }
  .findings { margin: 8px 0; padding: 0; list-style: none; }
  .findings li { border-left: 3px solid #e0a100; background: #fff9e8; padding: 6px 10px; margin-bottom: 6px; }
  .findings li.ok { border-color: #2e9d5b; background: #eef8f1; }
  .findings .cause { font-family: ui-monospace, monospace; font-size: 12px; color: #7a5b00; }
  .findings .action { color: #14324a; }
  .charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(460px, 1fr)); gap: 12px; }
  .chart h3 { font-size: 13px; margin: 4px 0; color: #38424d; font-weight: 600; }
  .empty { color: #56606b; }
</style>
</head>
<body>
<header><h1>Sluice — streaming queries</h1><span class="live" id="live">connecting…</span></header>
<main id="queries"><p class="empty">No query yet: start one in this process.</p></main>
<script src="/uplot.iife.min.js"></script>
<script>
const MAX_POINTS = 300;
const queries = new Map();
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
const secs = (iso) => Date.parse(iso) / 1000;
const PHASES = ['latestOffset', 'walCommit', 'queryPlanning', 'addBatch', 'commitOffsets'];
const CHARTS = [
  { key: 'rates', title: 'Input vs processing rate (rows/s)', series: [['input', '#2f7ed8'], ['processed', '#e4572e']],
    values: (p) => [p.inputRowsPerSecond, p.processedRowsPerSecond] },
  { key: 'phases', title: 'Batch duration by phase (ms)', series: PHASES.map((n, i) => [n, ['#8d6cab', '#3ba272', '#f0a30a', '#2f7ed8', '#e4572e'][i]]),
    values: (p) => PHASES.map((n) => p.durationMs[n] ?? 0) },
  { key: 'time', title: 'Watermark vs max event time', time: true, series: [['watermark', '#14324a'], ['max event time', '#3ba272']],
    values: (p) => [p.eventTime.watermark && Date.parse(p.eventTime.watermark) > 0 ? secs(p.eventTime.watermark) : null, p.eventTime.max ? secs(p.eventTime.max) : null] }, // no watermark yet (1970): not plotted
  { key: 'state', title: 'Rows in state', series: [['state rows', '#8d6cab']],
    values: (p) => [p.stateOperators.reduce((n, o) => n + o.numRowsTotal, 0)] },
  { key: 'lost', title: 'Late rows and dead letters per batch', series: [['late (dropped by watermark)', '#f0a30a'], ['dead letters', '#a11d1d']],
    values: (p) => [p.stateOperators.reduce((n, o) => n + o.numRowsDroppedByWatermark, 0), p.numDeadLetterRows] },
];

function card(q) {
  const root = document.getElementById('queries');
  root.querySelector('.empty')?.remove();
  const el = document.createElement('section');
  el.className = 'query';
  el.id = 'q-' + q.id;
  el.innerHTML = '<h2></h2><div class="summary"></div><ul class="findings"></ul><div class="charts"></div>';
  root.appendChild(el);
  const entry = { id: q.id, el, data: {}, plots: {}, batches: 0 };
  for (const c of CHARTS) {
    const div = document.createElement('div');
    div.className = 'chart';
    div.dataset.chart = c.key;
    div.innerHTML = '<h3>' + esc(c.title) + '</h3>';
    el.querySelector('.charts').appendChild(div);
    entry.data[c.key] = [[], ...c.series.map(() => [])];
    const opts = {
      width: 460, height: 170,
      scales: c.time ? { x: { time: true }, y: { time: true } } : { x: { time: true } },
      series: [{}, ...c.series.map(([label, stroke]) => ({ label, stroke, width: 1.5, spanGaps: true }))],
      // Event time on the y axis: HH:MM:SS (UTC), as progress reports it.
      axes: [{}, c.time ? { size: 70, values: (u, vals) => vals.map((v) => new Date(v * 1000).toISOString().slice(11, 19)) } : { size: 60 }],
      legend: { live: false },
    };
    entry.plots[c.key] = new uPlot(opts, entry.data[c.key], div);
  }
  queries.set(q.id, entry);
  return entry;
}

function describe(entry, q) {
  entry.el.querySelector('h2').innerHTML = esc(q.name || q.id) + '<span class="status ' + q.status + '">' + q.status + '</span>';
  const last = entry.last;
  entry.el.querySelector('.summary').textContent = last
    ? 'batch ' + last.batchId + ' · ' + last.numInputRows + ' rows in, ' + last.sink.numOutputRows + ' out · ' + last.sink.description +
      (last.eventTime.watermark ? ' · watermark ' + last.eventTime.watermark : '')
    : 'no batch yet';
  if (q.exception) entry.el.querySelector('.summary').textContent += ' · ' + q.exception;
}

function add(entry, p) {
  entry.last = p;
  entry.batches++;
  for (const c of CHARTS) {
    const d = entry.data[c.key];
    d[0].push(secs(p.timestamp));
    c.values(p).forEach((v, i) => d[i + 1].push(v));
    if (d[0].length > MAX_POINTS) d.forEach((col) => col.shift());
  }
}

function redraw(entry) {
  for (const c of CHARTS) entry.plots[c.key].setData(entry.data[c.key]);
  entry.el.dataset.batches = String(entry.batches); // read by the browser test
}

async function findings(entry) {
  const r = await fetch('/api/diagnose?id=' + encodeURIComponent(entry.id));
  if (!r.ok) return;
  const list = await r.json();
  entry.el.querySelector('.findings').innerHTML = list.length
    ? list.map((f) => '<li><span class="cause">' + esc(f.cause) + '</span> ' + esc(f.summary) +
        (f.evidence.length ? '<br><small>' + f.evidence.map(esc).join(' · ') + '</small>' : '') +
        '<br><span class="action">→ ' + esc(f.action) + '</span></li>').join('')
    : '<li class="ok">No problem found.</li>';
  entry.el.dataset.findings = list.map((f) => f.cause).join(' ');
}

const pendingFindings = new Map();
function findingsSoon(entry) {
  if (pendingFindings.has(entry.id)) return;
  pendingFindings.set(entry.id, setTimeout(() => { pendingFindings.delete(entry.id); findings(entry); }, 1000));
}

async function load() {
  const state = await (await fetch('/api/queries')).json();
  for (const q of state) {
    const entry = queries.get(q.id) ?? card(q);
    for (const p of q.progress) add(entry, p);
    redraw(entry);
    describe(entry, q);
    findings(entry);
  }
}

function connect() {
  const es = new EventSource('/events');
  es.onopen = () => { document.getElementById('live').textContent = 'live'; };
  es.onerror = () => { document.getElementById('live').textContent = 'reconnecting…'; };
  es.addEventListener('query', (e) => {
    const q = JSON.parse(e.data);
    const entry = queries.get(q.id) ?? card(q);
    describe(entry, q);
    findingsSoon(entry);
  });
  es.addEventListener('progress', (e) => {
    const { query, progress } = JSON.parse(e.data);
    const entry = queries.get(query.id) ?? card(query);
    add(entry, progress);
    redraw(entry);
    describe(entry, query);
    findingsSoon(entry);
  });
}

load().then(connect);
</script>
</body>
</html>
`;
