/**
 * session.read: the json, csv and parquet readers against Spark's rules (inference, user schemas, malformed
 * records in each mode, quotes and nulls, Parquet's types), each read seeing the files as they are now,
 * cache() reading once, and the Kafka reader's option checks (its reads are in the integration tests).
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { describe, expect, it } from 'vitest';
import { BatchSourceError, Decimal, MicrosDate, SluiceSession, col, registerBatchReader } from '../../src/index.js';
import type { BatchReader, Row, StructType } from '../../src/index.js';
import { createBatchReader } from '../../src/sources/batch.js';
import '../../src/sources/batch/index.js';
import { CHUNK_ROWS } from '../../src/sources/source.js';
import { parseSchema } from '../../src/types/index.js';
import { epochMicros } from '../../src/types/timestamp.js';

const dir = mkdtempSync(join(tmpdir(), 'sluice-batch-read-'));
let n = 0;
/** Writes a file in a fresh folder and returns its path. */
function file(name: string, content: string | Buffer | ArrayBuffer): string {
  const d = join(dir, `t${n++}`);
  mkdirSync(d, { recursive: true });
  const p = join(d, name);
  writeFileSync(p, content instanceof ArrayBuffer ? Buffer.from(content) : content);
  return p;
}

function session(): SluiceSession {
  const s = new SluiceSession('batch-read');
  s.out = () => {};
  s.log = () => {};
  return s;
}

async function readAll(format: string, paths: string[], options: Record<string, string> = {}, schema?: string): Promise<{ schema: StructType; rows: Row[]; chunks: number[] }> {
  const r = createBatchReader({ format, options, paths, ...(schema ? { userSchema: parseSchema(schema) } : {}) });
  const s = await r.schema();
  const rows: Row[] = [];
  const chunks: number[] = [];
  for await (const c of r.read(s)) {
    chunks.push(c.length);
    rows.push(...c);
  }
  return { schema: s, rows, chunks };
}

const lines = (...objs: unknown[]): string => objs.map((o) => (typeof o === 'string' ? o : JSON.stringify(o))).join('\n') + '\n';

describe('json', () => {
  it('infers types as Spark: merged over rows, fields sorted, 1.0 a double, timestamps strings, all-null a string', async () => {
    const p = file(
      'a.json',
      '{"name":"Ada","n":1,"price":1.0,"ok":true,"ts":"2025-01-01T10:00:00Z","tags":["a"],"addr":{"city":"London","zip":1},"none":null}\n' +
        '{"name":"Bob","n":2.5,"price":2,"ok":false,"mixed":1,"tags":[],"addr":{"city":"Paris","extra":true}}\n' +
        '\n' +
        '{"name":"Cy","n":3,"mixed":"x","big":12345678901234567890}\n',
    );
    const { schema, rows } = await readAll('json', [p]);
    expect(schema.simpleString()).toBe(
      'struct<addr:struct<city:string,extra:boolean,zip:bigint>,big:decimal(20,0),mixed:string,n:double,name:string,none:string,ok:boolean,price:double,tags:array<string>,ts:string>',
    );
    expect(rows).toHaveLength(3);
    expect(rows[0]).toEqual({
      addr: { city: 'London', extra: null, zip: 1 }, big: null, mixed: null, n: 1, name: 'Ada', none: null, ok: true, price: 1, tags: ['a'], ts: '2025-01-01T10:00:00Z',
    });
    expect(rows[1]!.mixed).toBe('1'); // a number read into a string column keeps its JSON text
    expect(rows[2]!.big).toEqual(Decimal.parse('12345678901234567890'));
    expect((rows[2]!.big as Decimal).toPlainString()).toBe('12345678901234567890');
  });

  it('reads with a given schema: timestamps with µs, exact decimals, nested structs, arrays and maps, JSON text into strings', async () => {
    const p = file(
      'a.json',
      lines(
        { id: 1, ts: '2025-08-22 17:23:54.123456', amount: 12345678901234567890.123456789, user: { name: 'Ada', age: 36 }, scores: [1, 2], attrs: { a: 1, b: 2 }, raw: { x: [1, 2] }, day: '2025-02-03', unknown: 'ignored' },
        { id: 2 },
      ).replace('12345678901234567000', '12345678901234567890.123456789'),
    );
    const { rows } = await readAll(
      'json',
      [p],
      {},
      'id BIGINT, ts TIMESTAMP, amount DECIMAL(38,9), user STRUCT<name: STRING, age: INT>, scores ARRAY<INT>, attrs MAP<STRING, INT>, raw STRING, day DATE',
    );
    expect(rows[0]!.ts).toBeInstanceOf(MicrosDate);
    expect(epochMicros(rows[0]!.ts as Date)).toBe(Date.UTC(2025, 7, 22, 17, 23, 54, 123) * 1000 + 456);
    expect((rows[0]!.amount as Decimal).toPlainString()).toBe('12345678901234567890.123456789');
    expect(rows[0]).toMatchObject({ id: 1, user: { name: 'Ada', age: 36 }, scores: [1, 2], attrs: { a: 1, b: 2 }, raw: '{"x":[1,2]}', day: '2025-02-03' });
    expect(rows[1]).toEqual({ id: 2, ts: null, amount: null, user: null, scores: null, attrs: null, raw: null, day: null });
  });

  it('PERMISSIVE (default): a malformed line is nulls, with its text in _corrupt_record when the schema has it; inference adds the column', async () => {
    const p = file('a.json', lines({ a: 1, b: 'x' }, '{"a": 2, "b": ', { a: 'three', b: 'y' }, '42'));
    const inferred = await readAll('json', [p]);
    expect(inferred.schema.fieldNames).toEqual(['_corrupt_record', 'a', 'b']);
    expect(inferred.rows).toEqual([
      { _corrupt_record: null, a: '1', b: 'x' },
      { _corrupt_record: '{"a": 2, "b": ', a: null, b: null },
      { _corrupt_record: null, a: 'three', b: 'y' },
      { _corrupt_record: '42', a: null, b: null },
    ]);
    // A field of the wrong type: that field is null, the others keep their values (Spark 3's partial results).
    const typed = await readAll('json', [p], {}, 'a INT, b STRING, _corrupt_record STRING');
    expect(typed.rows).toEqual([
      { a: 1, b: 'x', _corrupt_record: null },
      { a: null, b: null, _corrupt_record: '{"a": 2, "b": ' },
      { a: null, b: 'y', _corrupt_record: '{"a":"three","b":"y"}' },
      { a: null, b: null, _corrupt_record: '42' },
    ]);
    // Without the corrupt-record column the rows are still there.
    expect((await readAll('json', [p], {}, 'a INT, b STRING')).rows).toHaveLength(4);
    // An int column does not take a fraction, as Spark's parser.
    expect((await readAll('json', [file('f.json', lines({ a: 1.5 }))], {}, 'a INT, _corrupt_record STRING')).rows).toEqual([{ a: null, _corrupt_record: '{"a":1.5}' }]);
  });

  it('DROPMALFORMED leaves malformed records out; FAILFAST stops with the file, line and record', async () => {
    const p = file('a.json', lines({ a: 1 }, '{oops', { a: 'x' }, { a: 3 }));
    expect((await readAll('json', [p], { mode: 'DROPMALFORMED' }, 'a INT')).rows).toEqual([{ a: 1 }, { a: 3 }]);
    expect((await readAll('json', [p], { mode: 'dropmalformed' })).rows).toEqual([{ a: '1' }, { a: 'x' }, { a: '3' }]);
    await expect(readAll('json', [p], { mode: 'FAILFAST' }, 'a INT')).rejects.toThrow(/Malformed JSON record in .*a\.json, line 2: not valid JSON.*"\{oops".*mode=FAILFAST/);
    await expect(readAll('json', [p], { mode: 'FAILFAST' })).rejects.toThrow(/while inferring the schema.*line 2/);
    await expect(readAll('json', [file('b.json', lines({ a: 'x' }))], { mode: 'FAILFAST' }, 'a INT')).rejects.toThrow(/field "a" is int but the record has "x"/);
  });

  it('multiLine: one document per file, an array gives a row per element; a line holding an array gives several rows', async () => {
    const p = file('m.json', '[\n  {"a": 1,\n   "b": [1,\n 2]},\n  {"a": 2}\n]\n');
    expect((await readAll('json', [p], { multiLine: 'true' })).rows).toEqual([
      { a: 1, b: [1, 2] },
      { a: 2, b: null },
    ]);
    expect((await readAll('json', [file('l.json', '[{"a":1},{"a":2}]\n{"a":3}\n')])).rows).toEqual([{ a: 1 }, { a: 2 }, { a: 3 }]);
  });

  it('a folder is read file by file in name order, hidden files skipped; globs, gzip and several paths', async () => {
    const d = join(dir, 'folder');
    mkdirSync(join(d, 'sub'), { recursive: true });
    writeFileSync(join(d, 'b.json'), lines({ i: 2 }));
    writeFileSync(join(d, 'a.json'), lines({ i: 1 }));
    writeFileSync(join(d, 'c.json.gz'), gzipSync(lines({ i: 3 })));
    writeFileSync(join(d, '_SUCCESS'), '');
    writeFileSync(join(d, '.a.json.crc'), 'garbage');
    writeFileSync(join(d, 'sub', 'd.json'), lines({ i: 4 }));
    expect((await readAll('json', [d])).rows.map((r) => r.i)).toEqual([1, 2, 3]);
    expect((await readAll('json', [d], { recursiveFileLookup: 'true' })).rows.map((r) => r.i)).toEqual([1, 2, 3, 4]);
    expect((await readAll('json', [join(d, '*.json')])).rows.map((r) => r.i)).toEqual([1, 2]);
    expect((await readAll('json', [join(d, 'b.json'), join(d, 'a.json')])).rows.map((r) => r.i)).toEqual([2, 1]);
    expect((await readAll('json', [d], { pathGlobFilter: '*.gz' })).rows.map((r) => r.i)).toEqual([3]);
  });

  it('hands rows over in chunks of CHUNK_ROWS', async () => {
    const p = file('big.json', Array.from({ length: CHUNK_ROWS * 2 + 5 }, (_, i) => `{"i":${i}}`).join('\n'));
    const { chunks, rows } = await readAll('json', [p], {}, 'i INT');
    expect(chunks).toEqual([CHUNK_ROWS, CHUNK_ROWS, 5]);
    expect(rows.at(-1)).toEqual({ i: CHUNK_ROWS * 2 + 4 });
  });
});

describe('csv', () => {
  it('header: names from the first line, all strings by default (as Spark); without it _c0, _c1, …', async () => {
    const p = file('a.csv', 'name,age\nAda,36\nBob,\n');
    const h = await readAll('csv', [p], { header: 'true' });
    expect(h.schema.simpleString()).toBe('struct<name:string,age:string>');
    expect(h.rows).toEqual([
      { name: 'Ada', age: '36' },
      { name: 'Bob', age: null },
    ]);
    const noHeader = await readAll('csv', [p]);
    expect(noHeader.schema.fieldNames).toEqual(['_c0', '_c1']);
    expect(noHeader.rows[0]).toEqual({ _c0: 'name', _c1: 'age' });
    // Duplicate and empty header names get their position, as Spark's makeSafeHeader.
    expect((await readAll('csv', [file('d.csv', 'a,A,,b\n1,2,3,4\n')], { header: 'true' })).schema.fieldNames).toEqual(['a0', 'A1', '_c2', 'b']);
  });

  it('inferSchema: int, bigint, decimal, double, date, timestamp, boolean and string, nulls left out of the vote', async () => {
    const p = file(
      'a.csv',
      'i,l,big,d,day,ts,b,s,mix\n' +
        '1,1,12345678901234567890,1.5,2025-01-02,2025-01-02 10:00:00,true,x,1\n' +
        ',3000000000,1,2,2025-12-31,2025-01-02T10:00:00.123456Z,FALSE,2,2025-01-02\n' +
        '3,,,NaN,,,,,\n',
    );
    const { schema, rows } = await readAll('csv', [p], { header: 'true', inferSchema: 'true' });
    expect(schema.simpleString()).toBe('struct<i:int,l:bigint,big:decimal(20,0),d:double,day:date,ts:timestamp,b:boolean,s:string,mix:string>');
    expect(rows[0]).toEqual({ i: 1, l: 1, big: Decimal.parse('12345678901234567890'), d: 1.5, day: '2025-01-02', ts: new Date('2025-01-02T10:00:00Z'), b: true, s: 'x', mix: '1' });
    expect(rows[1]).toMatchObject({ i: null, l: 3000000000, d: 2, b: false, s: '2', mix: '2025-01-02' });
    expect(epochMicros(rows[1]!.ts as Date)).toBe(Date.parse('2025-01-02T10:00:00.123Z') * 1000 + 456);
    expect(rows[2]!.d).toBeNaN();
  });

  it('quotes: separators and line breaks inside quotes, \\" escapes (Spark\'s default) or "" with escape=\'"\'', async () => {
    const p = file('q.csv', 'id,text\n1,"a, b"\n2,"say \\"hi\\""\n3,"two\nlines"\n');
    expect((await readAll('csv', [p], { header: 'true' })).rows).toEqual([
      { id: '1', text: 'a, b' },
      { id: '2', text: 'say "hi"' },
      { id: '3', text: 'two\nlines' },
    ]);
    const rfc = file('r.csv', 'id,text\n1,"say ""hi"""\n');
    expect((await readAll('csv', [rfc], { header: 'true', escape: '"' })).rows).toEqual([{ id: '1', text: 'say "hi"' }]);
    const semi = file('s.csv', "id;text\n1;'x;y'\n");
    expect((await readAll('csv', [semi], { header: 'true', sep: ';', quote: "'" })).rows).toEqual([{ id: '1', text: 'x;y' }]);
    const latin = file('l.csv', Buffer.from('name\nJosé\n', 'latin1'));
    expect((await readAll('csv', [latin], { header: 'true', encoding: 'ISO-8859-1' })).rows).toEqual([{ name: 'José' }]);
    expect((await readAll('json', [file('l.json', Buffer.from('{"name":"José"}\n', 'latin1'))], { charset: 'latin1' })).rows).toEqual([{ name: 'José' }]);
    const tabs = file('t.tsv', 'a\tb\n1\t2\n');
    expect((await readAll('csv', [tabs], { header: 'true', sep: '\\t' })).rows).toEqual([{ a: '1', b: '2' }]);
  });

  it('nulls: an empty value and a quoted "" are null by default; nullValue names another text', async () => {
    const p = file('n.csv', 'a,b,c\n,"",x\nNA,"NA",y\n');
    expect((await readAll('csv', [p], { header: 'true' })).rows).toEqual([
      { a: null, b: null, c: 'x' },
      { a: 'NA', b: 'NA', c: 'y' },
    ]);
    expect((await readAll('csv', [p], { header: 'true', nullValue: 'NA' })).rows).toEqual([
      { a: null, b: '', c: 'x' },
      { a: null, b: null, c: 'y' },
    ]);
    const typed = await readAll('csv', [p], { header: 'true', nullValue: 'NA' }, 'a INT, b STRING, c STRING');
    expect(typed.rows).toEqual([
      { a: null, b: '', c: 'x' },
      { a: null, b: null, c: 'y' },
    ]);
  });

  it('malformed: a value that does not convert or a wrong number of values, in each mode', async () => {
    const p = file('m.csv', 'id,n\n1,10\n2,abc\n3\n4,40,extra\n');
    const schema = 'id INT, n INT, _corrupt_record STRING';
    expect((await readAll('csv', [p], { header: 'true' }, schema)).rows).toEqual([
      { id: 1, n: 10, _corrupt_record: null },
      { id: 2, n: null, _corrupt_record: '2,abc' },
      { id: 3, n: null, _corrupt_record: '3' },
      { id: 4, n: 40, _corrupt_record: '4,40,extra' },
    ]);
    expect((await readAll('csv', [p], { header: 'true', mode: 'DROPMALFORMED' }, 'id INT, n INT')).rows).toEqual([{ id: 1, n: 10 }]);
    await expect(readAll('csv', [p], { header: 'true', mode: 'FAILFAST' }, 'id INT, n INT')).rejects.toThrow(
      /Malformed CSV record in .*m\.csv, line 3: column "n" is int but the value is "abc"/,
    );
  });

  it.runIf(existsSync('/proc/self/fd'))('a read that stops early (the header alone, FAILFAST) closes its file', async () => {
    const p = file('h.csv', 'a,b\nx,y\n' + '1,2\n'.repeat(50_000));
    const g = file('h.json.gz', gzipSync(lines({ a: 1 }, '{bad')));
    const open = (): number => readdirSync('/proc/self/fd').length;
    const before = open();
    for (let i = 0; i < 30; i++) {
      await createBatchReader({ format: 'csv', options: { header: 'true' }, paths: [p] }).schema();
      await expect(readAll('csv', [p], { header: 'true', mode: 'FAILFAST' }, 'a INT, b INT')).rejects.toThrow(/Malformed/);
      await expect(readAll('json', [g], { mode: 'FAILFAST' }, 'a INT')).rejects.toThrow(/Malformed/);
    }
    await new Promise((r) => setTimeout(r, 50));
    expect(open() - before).toBeLessThan(5);
  });

  it('refuses what it cannot read: nested types, an unknown option (listing the known ones)', () => {
    const p = file('x.csv', 'a\n1\n');
    expect(() => createBatchReader({ format: 'csv', options: {}, paths: [p], userSchema: parseSchema('a ARRAY<INT>') })).toThrow(/cannot read column "a" as array<int>/);
    expect(() => createBatchReader({ format: 'csv', options: { delimeter: ';' }, paths: [p] })).toThrow(/has no option "delimeter" \(did you mean delimiter\?\). Its options: path, .*sep, delimiter, /);
  });
});

/** Writes a parquet file with hyparquet-writer. */
function parquetFile(name: string, columnData: Array<{ name: string; data: unknown[] }>, schema: Array<Record<string, unknown>>, rowGroupSize?: number): string {
  return file(
    name,
    parquetWriteBuffer({
      columnData: columnData as Parameters<typeof parquetWriteBuffer>[0]['columnData'],
      schema: schema as Parameters<typeof parquetWriteBuffer>[0]['schema'],
      ...(rowGroupSize ? { rowGroupSize } : {}),
    }),
  );
}

describe('parquet', () => {
  const micros = BigInt(Date.UTC(2025, 7, 22, 17, 23, 54, 123)) * 1000n + 456n;
  const schema = [
    { name: 'root', num_children: 12 },
    { name: 'i', type: 'INT32', repetition_type: 'OPTIONAL' },
    { name: 'l', type: 'INT64', repetition_type: 'REQUIRED' },
    { name: 'd', type: 'DOUBLE', repetition_type: 'OPTIONAL' },
    { name: 'b', type: 'BOOLEAN', repetition_type: 'OPTIONAL' },
    { name: 's', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
    { name: 'bin', type: 'BYTE_ARRAY', repetition_type: 'OPTIONAL' },
    { name: 'dec', type: 'FIXED_LEN_BYTE_ARRAY', type_length: 16, converted_type: 'DECIMAL', precision: 38, scale: 18, repetition_type: 'OPTIONAL' },
    { name: 'dec64', type: 'INT64', converted_type: 'DECIMAL', precision: 12, scale: 2, repetition_type: 'OPTIONAL' },
    { name: 'ts', type: 'INT64', converted_type: 'TIMESTAMP_MICROS', repetition_type: 'OPTIONAL' },
    { name: 'tsm', type: 'INT64', converted_type: 'TIMESTAMP_MILLIS', repetition_type: 'OPTIONAL' },
    { name: 'day', type: 'INT32', converted_type: 'DATE', repetition_type: 'OPTIONAL' },
    { name: 'small', type: 'INT32', converted_type: 'INT_16', repetition_type: 'OPTIONAL' },
  ];
  const data = [
    { name: 'i', data: [1, null] },
    { name: 'l', data: [2n ** 40n, -5n] },
    { name: 'd', data: [1.5, null] },
    { name: 'b', data: [true, null] },
    { name: 's', data: ['héllo', null] },
    { name: 'bin', data: [new Uint8Array([0, 255]), null] },
    { name: 'dec', data: [12345678901234567890123456789012345678n, -1n] },
    { name: 'dec64', data: [12345n, null] },
    { name: 'ts', data: [micros, null] },
    { name: 'tsm', data: [new Date('2025-01-01T00:00:00.250Z'), null] },
    { name: 'day', data: [new Date('2025-02-03T00:00:00Z'), null] },
    { name: 'small', data: [-7, null] },
  ];

  it('maps Parquet types to Spark types: exact decimals, timestamps with µs, dates, strings and binary', async () => {
    const p = parquetFile('t.parquet', data, schema);
    const { schema: s, rows } = await readAll('parquet', [p]);
    expect(s.simpleString()).toBe(
      'struct<i:int,l:bigint,d:double,b:boolean,s:string,bin:binary,dec:decimal(38,18),dec64:decimal(12,2),ts:timestamp,tsm:timestamp,day:date,small:smallint>',
    );
    expect(s.field('l')!.nullable).toBe(false);
    const [r0, r1] = rows;
    expect((r0!.dec as Decimal).toPlainString()).toBe('12345678901234567890.123456789012345678');
    expect((r1!.dec as Decimal).toPlainString()).toBe('-0.000000000000000001');
    expect((r0!.dec64 as Decimal).toPlainString()).toBe('123.45');
    expect(r0!.ts).toBeInstanceOf(MicrosDate);
    expect(BigInt(epochMicros(r0!.ts as Date))).toBe(micros);
    expect(r0).toMatchObject({ i: 1, l: 2 ** 40, d: 1.5, b: true, s: 'héllo', tsm: new Date('2025-01-01T00:00:00.250Z'), day: '2025-02-03', small: -7 });
    expect(Buffer.isBuffer(r0!.bin)).toBe(true);
    expect([...(r0!.bin as Buffer)]).toEqual([0, 255]);
    expect(r1).toMatchObject({ i: null, l: -5, d: null, b: null, s: null, bin: null, dec64: null, ts: null, tsm: null, day: null, small: null });
  });

  it('nested: struct, list (with null elements) and map columns', async () => {
    const p = parquetFile(
      'n.parquet',
      [
        { name: 'user', data: [{ name: 'Ada', age: 36 }, null] },
        { name: 'tags', data: [['a', null, 'c'], []] },
        { name: 'attrs', data: [{ x: 1n, y: 2n }, null] },
      ],
      [
        { name: 'root', num_children: 3 },
        { name: 'user', repetition_type: 'OPTIONAL', num_children: 2 },
        { name: 'name', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
        { name: 'age', type: 'INT32', repetition_type: 'OPTIONAL' },
        { name: 'tags', repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 },
        { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
        { name: 'element', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
        { name: 'attrs', repetition_type: 'OPTIONAL', converted_type: 'MAP', num_children: 1 },
        { name: 'key_value', repetition_type: 'REPEATED', num_children: 2 },
        { name: 'key', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'REQUIRED' },
        { name: 'value', type: 'INT64', repetition_type: 'OPTIONAL' },
      ],
    );
    const { schema: s, rows } = await readAll('parquet', [p]);
    expect(s.simpleString()).toBe('struct<user:struct<name:string,age:int>,tags:array<string>,attrs:map<string,bigint>>');
    expect(rows).toEqual([
      { user: { name: 'Ada', age: 36 }, tags: ['a', null, 'c'], attrs: { x: 1, y: 2 } },
      { user: null, tags: [], attrs: null },
    ]);
  });

  it('a given schema picks columns by name (a missing one is null), widens int to bigint, refuses what does not fit', async () => {
    const p = parquetFile('t.parquet', data, schema);
    const { rows } = await readAll('parquet', [p], {}, 'S STRING, i BIGINT, dec64 DECIMAL(14,3), nothere STRING');
    expect(rows[0]).toEqual({ S: 'héllo', i: 1, dec64: Decimal.parse('123.450'), nothere: null });
    expect((rows[0]!.dec64 as Decimal).toPlainString()).toBe('123.450');
    await expect(readAll('parquet', [p], {}, 's INT')).rejects.toThrow(/column "s" is string, but the schema says int/);
  });

  it('reads row groups CHUNK_ROWS rows at a time; several files in name order; mergeSchema', async () => {
    const total = CHUNK_ROWS + 2500;
    const p = parquetFile('big.parquet', [{ name: 'i', data: Array.from({ length: total }, (_, i) => i) }], [
      { name: 'root', num_children: 1 },
      { name: 'i', type: 'INT32', repetition_type: 'REQUIRED' },
    ], 7000);
    const { chunks, rows } = await readAll('parquet', [p]);
    expect(chunks.every((c) => c <= CHUNK_ROWS)).toBe(true);
    expect(rows.map((r) => r.i)).toEqual(Array.from({ length: total }, (_, i) => i));

    const d = join(dir, 'pq-folder');
    mkdirSync(d);
    const one = [{ name: 'root', num_children: 1 }, { name: 'a', type: 'INT32', repetition_type: 'OPTIONAL' }];
    writeFileSync(join(d, 'part-1.parquet'), Buffer.from(parquetWriteBuffer({ columnData: [{ name: 'a', data: [2] }], schema: one as never })));
    writeFileSync(
      join(d, 'part-0.parquet'),
      Buffer.from(
        parquetWriteBuffer({
          columnData: [{ name: 'a', data: [1] }, { name: 'b', data: ['x'] }],
          schema: [{ name: 'root', num_children: 2 }, one[1], { name: 'b', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' }] as never,
        }),
      ),
    );
    writeFileSync(join(d, '_SUCCESS'), '');
    expect((await readAll('parquet', [d])).rows).toEqual([
      { a: 1, b: 'x' },
      { a: 2, b: null },
    ]);
    const merged = await readAll('parquet', [d], { mergeSchema: 'true' });
    expect(merged.schema.fieldNames).toEqual(['a', 'b']);
  });

  it('a file that is not Parquet is named', async () => {
    const p = file('bad.parquet', 'not parquet at all');
    await expect(readAll('parquet', [p])).rejects.toThrow(/bad\.parquet is not a Parquet file Sluice can read/);
  });
});

describe('session.read', () => {
  it('load() checks the format, options and paths where it is written; reading waits for a run', () => {
    const s = session();
    expect(() => s.read.format('xml').load('x')).toThrow(/not a batch format Sluice reads. Known: csv, json, kafka, parquet/);
    expect(() => s.read.json(join(dir, 'missing.json'))).toThrow(/Path does not exist: .*missing\.json/);
    expect(() => s.read.option('multiline', 'maybe').json(dir)).toThrow(/multiLine of format 'json' must be true or false/);
    expect(() => s.read.format('csv').load()).toThrow(/needs a path/);
    expect(() => s.read.option('path', dir).json(dir)).toThrow(/both the "path" option and load/);
    expect(() => s.read.option('inferSchema', true).json(dir)).toThrow(/no option "inferSchema"/);
    expect(s.read.option('path', dir).format('json').load().plan.kind).toBe('batchSource');
    expect(() => s.read.option('mode', 'LENIENT').json(dir)).toThrow(/PERMISSIVE, DROPMALFORMED or FAILFAST/);
    expect(() => s.read.schema('a INT, _corrupt_record INT').json(dir)).toThrow(/"_corrupt_record" must be a nullable string/);
    const df = s.read.json(dir);
    expect(df.plan.kind).toBe('batchSource');
    expect(df.isStreaming).toBe(false);
  });

  it('collect, count and show run a static DataFrame end to end', async () => {
    const s = session();
    const out: string[] = [];
    s.out = (t) => out.push(t);
    const p = file('people.csv', 'name,age\nAda,36\nBob,17\nCy,51\n');
    const people = s.read.option('header', true).option('inferSchema', true).csv(p);
    expect(await people.filter(col('age').gt(18)).select('name').collect()).toEqual([{ name: 'Ada' }, { name: 'Cy' }]);
    expect(await people.count()).toBe(3);
    await people.show();
    expect(out.join('')).toContain('| Ada| 36|');
    expect((await s.read.json(file('a.json', lines({ x: 1 }))).collect())).toEqual([{ x: 1 }]);
    expect((await s.read.parquet(parquetFile('p.parquet', [{ name: 'x', data: [5] }], [{ name: 'root', num_children: 1 }, { name: 'x', type: 'INT32', repetition_type: 'OPTIONAL' }])).collect())).toEqual([{ x: 5 }]);
  });

  it('each run reads the files as they are then: a changed file is read anew (directly and through collect)', async () => {
    const p = file('users.json', lines({ id: 1, name: 'Ada' }));
    const r = createBatchReader({ format: 'json', options: {}, paths: [p] });
    const s = await r.schema();
    const collectOnce = async (): Promise<Row[]> => {
      const rows: Row[] = [];
      for await (const c of r.read(s)) rows.push(...c);
      return rows;
    };
    expect(await collectOnce()).toEqual([{ id: 1, name: 'Ada' }]);
    writeFileSync(p, lines({ id: 1, name: 'Ada' }, { id: 2, name: 'Bob' }));
    expect(await collectOnce()).toEqual([
      { id: 1, name: 'Ada' },
      { id: 2, name: 'Bob' },
    ]);

    const df = session().read.schema('id INT, name STRING').json(p);
    expect(await df.count()).toBe(2);
    writeFileSync(p, lines({ id: 3, name: 'Cy' }));
    expect(await df.collect()).toEqual([{ id: 3, name: 'Cy' }]);
  });

  it('cache() reads once and shares the rows with every DataFrame derived from it; unpersist() reads again', async () => {
    let reads = 0;
    registerBatchReader('counting', {
      create: (spec): BatchReader => ({
        schema: async () => parseSchema('i INT'),
        read: async function* () {
          reads++;
          yield [{ i: 1 }, { i: Number(spec.options.n ?? 2) }];
        },
      }),
    });
    const s = session();
    const cached = s.read.format('counting').load().cache();
    expect(cached.plan.kind).toBe('cache');
    expect(cached.cache()).toBe(cached);
    expect(await cached.collect()).toEqual([{ i: 1 }, { i: 2 }]);
    expect(await cached.filter(col('i').gt(1)).collect()).toEqual([{ i: 2 }]);
    expect(await cached.count()).toBe(2);
    expect(reads).toBe(1);

    const p = file('c.json', lines({ v: 'old' }));
    const df = s.read.json(p).persist();
    expect(await df.collect()).toEqual([{ v: 'old' }]);
    writeFileSync(p, lines({ v: 'new' }));
    expect(await df.select('v').collect()).toEqual([{ v: 'old' }]);
    const fresh = df.unpersist();
    expect(fresh.plan.kind).toBe('batchSource');
    expect(await fresh.collect()).toEqual([{ v: 'new' }]);
    writeFileSync(p, lines({ v: 'newer' }));
    expect(await fresh.collect()).toEqual([{ v: 'newer' }]);
    expect(fresh.unpersist()).toBe(fresh);
  });
});

describe('the static side of a stream-static join', () => {
  it('is read again each batch, so a changed file is seen by the next batch; cached, it is read once', async () => {
    for (const cached of [false, true]) {
      const s = session();
      const p = file('users.json', lines({ user_id: 'u1', name: 'Ann' }));
      let users = s.read.schema('user_id STRING, name STRING').json(p);
      if (cached) users = users.cache();
      const events = s.memoryStream('event STRING, user_id STRING');
      const q = await events
        .toDF()
        .join(users, 'user_id', 'left_outer')
        .writeStream.format('memory')
        .queryName('enriched')
        .option('checkpointLocation', mkdtempSync(join(tmpdir(), 'sluice-static-')))
        .start();
      events.addData([{ event: 'e1', user_id: 'u1' }, { event: 'e2', user_id: 'u2' }]);
      await q.processAllAvailable();
      writeFileSync(p, lines({ user_id: 'u1', name: 'Ann' }, { user_id: 'u2', name: 'Bob' }));
      events.addData([{ event: 'e3', user_id: 'u2' }]);
      await q.processAllAvailable();
      await q.stop();
      const batch = (b: number): string[] => (s.memoryTable('enriched').batches.get(b) ?? []).map((r) => `${String(r.event)}:${String(r.name)}`).sort();
      expect(batch(0), `cached=${cached}`).toEqual(['e1:Ann', 'e2:null']);
      expect(batch(1), `cached=${cached}`).toEqual([cached ? 'e3:null' : 'e3:Bob']);
    }
  });
});

describe('kafka (options only: reads need a broker and are in the integration tests)', () => {
  const base = { 'kafka.bootstrap.servers': '127.0.0.1:1', subscribe: 'orders' };
  const make = (options: Record<string, string>, userSchema?: string): BatchReader =>
    createBatchReader({ format: 'kafka', options, paths: [], ...(userSchema ? { userSchema: parseSchema(userSchema) } : {}) });

  it('has the streaming source\'s fixed columns, headers with includeHeaders', async () => {
    expect((await make(base).schema()).fieldNames).toEqual(['key', 'value', 'topic', 'partition', 'offset', 'timestamp', 'timestampType']);
    expect((await make({ ...base, includeheaders: 'true' }).schema()).fieldNames.at(-1)).toBe('headers');
  });

  it('refuses what a batch read cannot do, saying what to do instead', () => {
    expect(() => make({ ...base, startingOffsets: 'latest' })).toThrow(/startingOffsets cannot be "latest" for a batch read/);
    expect(() => make({ ...base, endingOffsets: 'earliest' })).toThrow(/endingOffsets cannot be "earliest"/);
    expect(() => make({ ...base, startingOffsets: '{"orders":{"0":-1}}' })).toThrow(/-1 \(latest\) is not allowed .*orders-0/);
    expect(() => make({ ...base, endingOffsets: '{"orders":{"0":-2}}' })).toThrow(/-2 \(earliest\) is not allowed/);
    expect(() => make({ ...base, endingOffsets: '{"orders":{"0":"x"}}' })).toThrow(/whole offsets/);
    expect(() => make({ ...base, maxOffsetsPerTrigger: '10' })).toThrow(/maxOffsetsPerTrigger applies to streaming reads/);
    expect(() => make({ ...base, startingTimestamp: '1' })).toThrow(/has no option "startingTimestamp". Its options: subscribe, .*and kafka\.\* settings/);
    expect(() => make({ 'kafka.bootstrap.servers': 'x:1' })).toThrow(/exactly one of the options "subscribe"/);
    expect(() => make({ subscribe: 'orders' })).toThrow(/kafka.bootstrap.servers" is required/);
    expect(() => make(base, 'a STRING')).toThrow(/fixed schema/);
    expect(() => session().read.format('kafka').options(base).load('some/path')).toThrow(/reads topics, not paths/);
    expect(() => make({ ...base, startingOffsets: 'earliest!' })).toThrow(/startingOffsets must be "earliest" or JSON/);
    expect(make({ ...base, startingoffsets: 'Earliest', ENDINGOFFSETS: 'LATEST' })).toBeDefined();
    expect(make({ ...base, startingOffsets: '{"orders":{"0":5}}', endingOffsets: '{"orders":{"0":-1}}' })).toBeDefined();
  });
});

it('BatchSourceError is what the readers throw', () => {
  expect(() => createBatchReader({ format: 'json', options: { nope: '1' }, paths: [dir] })).toThrow(BatchSourceError);
});
