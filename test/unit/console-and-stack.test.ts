import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SluiceSession, col } from '../../src/index.js';
import { freePort, up } from '../../src/stack/stack.js';

describe('console sink', () => {
  it("prints each batch as Spark's console sink does, honouring numRows and truncate", async () => {
    const s = new SluiceSession('console');
    let printed = '';
    s.out = (t) => (printed += t);
    const input = s.memoryStream('word STRING, n INT');
    const q = await input.toDF().writeStream.format('console').option('numRows', 2).start();
    input.addData({ word: 'a fairly long word of many letters', n: 1 }, { word: null, n: 2 }, { word: 'c', n: 3 });
    await q.processAllAvailable();
    await q.stop();
    expect(printed).toBe(
      [
        '-------------------------------------------',
        'Batch: 0',
        '-------------------------------------------',
        '+--------------------+---+',
        '|                word|  n|',
        '+--------------------+---+',
        '|a fairly long wor...|  1|', // Spark: the first 17 characters + "..."
        '|                null|  2|',
        '+--------------------+---+',
        'only showing top 2 rows',
        '',
        '',
      ].join('\n'),
    );
  });

  it('session.streams tracks active queries and explain() describes one', async () => {
    const s = new SluiceSession('mgr');
    s.out = () => {};
    const input = s.memoryStream('n INT');
    const q = await input.toDF().filter(col('n').gt(0)).writeStream.format('memory').queryName('m').start();
    expect(s.streams.active).toEqual([q]);
    expect(s.streams.get(q.id)).toBe(q);
    expect(q.explain()).toMatch(/Filter \(n > 0\)[\s\S]*StreamingRelation memory[\s\S]*sink: MemorySink\[m\]/);
    await q.stop();
    expect(s.streams.active).toEqual([]);
    expect(await s.streams.awaitAnyTermination(1000)).toBe(true);
  });
});

describe('local stack errors', () => {
  it('says which port is taken', async () => {
    const port = await freePort();
    const srv = createServer().listen(port, '127.0.0.1');
    await new Promise((r) => srv.once('listening', r));
    try {
      await expect(up({ dir: mkdtempSync(join(tmpdir(), 'sluice-port-')), ports: { kafka: port, controller: await freePort(), registry: await freePort() }, log: () => {} }))
        .rejects.toThrow(new RegExp(`Port ${port} \\(kafka\\) on 127.0.0.1 is taken by another program`));
    } finally {
      srv.close();
    }
  });

  it('says Java is missing, without a stack trace', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-nojava-'));
    const bin = new URL('../../bin/sluice.js', import.meta.url).pathname;
    const r = spawnSync(process.execPath, [bin, 'up', '--dir', dir], { env: { PATH: '/nonexistent', SLUICE_HOME: dir }, encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^sluice: Java was not found\. .*install a JDK/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
