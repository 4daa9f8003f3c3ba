/**
 * Avro ↔ Spark types that Sluice used to get wrong (issue 7, item 2.7): unions of several types, the
 * decimal logical type, timestamp-micros. Spark 3.5's spark-avro is the reference: SchemaConverters
 * (Avro → Spark types), AvroDeserializer (values in), AvroSerializer (values out). Payloads are built with
 * avsc directly; the registry case uses an in-process fake of the registry's REST API (no network).
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import avro from 'avsc';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { SluiceSession, col } from '../../src/index.js';
import { avroToSparkType, fromAvro, sparkToAvroSchema, toAvro } from '../../src/serde/avro.js';
import { frame } from '../../src/serde/wireformat.js';
import { showString } from '../../src/sinks/show.js';
import { Decimal, DecimalType, MicrosDate, Row, StructType, epochMicros, parseDataType } from '../../src/types/index.js';

const session = SluiceSession.builder().getOrCreate();
session.out = () => {};

type Schema = Record<string, unknown>;

/** Decodes plain Avro payloads (no registry header) with `schema` as the reader schema: the `from_avro(col, jsonSchema)` form. */
async function decode(schema: Schema, values: unknown[]): Promise<unknown[]> {
  const type = avro.Type.forSchema(schema as avro.Schema, { wrapUnions: 'auto' });
  const df = session.createDataFrame(values.map((v) => ({ value: type.toBuffer(v) })), 'value BINARY');
  const rows = await df.select(fromAvro(col('value'), { schema }).alias('r')).collect();
  return rows.map((r) => r.r);
}

/** Encodes rows of `ddl` with `toAvro(struct, { schema })` and returns the payloads. */
async function encode(schema: Schema, ddl: string, rows: Row[]): Promise<Buffer[]> {
  const df = session.createDataFrame(rows.map((r) => ({ s: r })), `s STRUCT<${ddl}>`);
  const out = await df.select(toAvro(col('s'), { schema }).alias('b')).collect();
  return out.map((r) => r.b as Buffer);
}

describe('Avro unions of several types (Spark: member0, member1, …)', () => {
  const schema = {
    type: 'record',
    name: 'Event',
    namespace: 'com.acme',
    fields: [
      { name: 'id', type: 'string' },
      { name: 'payload', type: ['null', 'int', 'string'] },
      { name: 'n', type: ['int', 'long'] },
      { name: 'x', type: ['null', 'float', 'double'] },
      {
        name: 'shape',
        type: [
          { type: 'record', name: 'Circle', fields: [{ name: 'r', type: 'double' }] },
          { type: 'record', name: 'Square', fields: [{ name: 'side', type: 'double' }] },
        ],
      },
    ],
  };

  it('maps them to types as SchemaConverters.toSqlType does', () => {
    // Spark: nulls are dropped from a union; one type left → that type, nullable; int+long → long;
    // float+double → double; otherwise struct<member0, member1, …> over the non-null branches, in order.
    const t = avroToSparkType(schema) as StructType;
    expect(t.simpleString()).toBe(
      'struct<id:string,payload:struct<member0:int,member1:string>,n:bigint,x:double,shape:struct<member0:struct<r:double>,member1:struct<side:double>>>',
    );
    expect(t.field('payload')!.nullable).toBe(true);
    expect(t.field('shape')!.nullable).toBe(false);
    expect((t.field('payload')!.dataType as StructType).fields.every((f) => f.nullable)).toBe(true);
  });

  it('decodes into the member that was written, the others null (AvroDeserializer: resolveUnion)', async () => {
    // Before the fix every member was null: the decoded value was never split into members.
    const rows = await decode(schema, [
      { id: 'a', payload: 5, n: { int: 7 }, x: null, shape: { 'com.acme.Circle': { r: 1.5 } } },
      { id: 'b', payload: 'five', n: { long: 2 ** 40 }, x: { double: 0.25 }, shape: { 'com.acme.Square': { side: 2 } } },
      { id: 'c', payload: null, n: { int: -1 }, x: { float: 0.5 }, shape: { 'com.acme.Circle': { r: 0 } } },
    ]);
    expect(rows).toEqual([
      { id: 'a', payload: { member0: 5, member1: null }, n: 7, x: null, shape: { member0: { r: 1.5 }, member1: null } },
      { id: 'b', payload: { member0: null, member1: 'five' }, n: 2 ** 40, x: 0.25, shape: { member0: null, member1: { side: 2 } } },
      { id: 'c', payload: null, n: -1, x: 0.5, shape: { member0: { r: 0 }, member1: null } },
    ]);
  });

  it('encodes the member struct back to the branch of its non-null member (AvroSerializer)', async () => {
    const ddl =
      'id STRING, payload STRUCT<member0: INT, member1: STRING>, n BIGINT, x DOUBLE, shape STRUCT<member0: STRUCT<r: DOUBLE>, member1: STRUCT<side: DOUBLE>>';
    const [a, b] = await encode(schema, ddl, [
      { id: 'a', payload: { member0: 5, member1: null }, n: 7, x: null, shape: { member0: { r: 1.5 }, member1: null } },
      { id: 'b', payload: { member0: null, member1: 'five' }, n: 2 ** 40, x: 0.25, shape: { member0: null, member1: { side: 2 } } },
    ]);
    const type = avro.Type.forSchema(schema as avro.Schema, { wrapUnions: 'auto' });
    // Spark writes int+long as the long branch and float+double as the double branch (getLong/getDouble).
    expect(a).toEqual(type.toBuffer({ id: 'a', payload: 5, n: { long: 7 }, x: null, shape: { 'com.acme.Circle': { r: 1.5 } } }));
    expect(b).toEqual(type.toBuffer({ id: 'b', payload: 'five', n: { long: 2 ** 40 }, x: { double: 0.25 }, shape: { 'com.acme.Square': { side: 2 } } }));
    // And back again.
    expect(await decode(schema, [type.fromBuffer(b!)])).toEqual([
      { id: 'b', payload: { member0: null, member1: 'five' }, n: 2 ** 40, x: 0.25, shape: { member0: null, member1: { side: 2 } } },
    ]);
  });
});

describe('Avro decimal logical type (Spark: DecimalType(precision, scale))', () => {
  const schema = {
    type: 'record',
    name: 'Price',
    fields: [
      { name: 'amount', type: { type: 'bytes', logicalType: 'decimal', precision: 10, scale: 2 } },
      { name: 'big', type: ['null', { type: 'fixed', name: 'Big', size: 9, logicalType: 'decimal', precision: 20, scale: 4 }] },
    ],
  };
  // Avro's decimal encoding: the unscaled value as big-endian two's complement (fixed: sign-extended).
  const payloads = [
    { amount: Buffer.from([0x04, 0xce]), big: Buffer.from('000000000000003039', 'hex') }, // 1230 → 12.30; 12345 → 1.2345
    { amount: Buffer.from([0xfb]), big: Buffer.from('fffffffffffffffffe', 'hex') }, // -5 → -0.05; -2 → -0.0002
    { amount: Buffer.from([0x00]), big: null },
  ];

  it('is decimal(p,s) in the schema, not binary', () => {
    // SchemaConverters: BYTES | FIXED with a Decimal logical type → DecimalType(precision, scale).
    expect(avroToSparkType(schema).simpleString()).toBe('struct<amount:decimal(10,2),big:decimal(20,4)>');
    // A decimal whose precision does not fit its fixed is not a valid logical type: Avro ignores it, Spark reads binary.
    expect(avroToSparkType({ type: 'fixed', name: 'Tiny', size: 1, logicalType: 'decimal', precision: 5 }).simpleString()).toBe('binary');
  });

  it('decodes to exact Decimals that keep their scale, and shows them as Spark does', async () => {
    // Before the fix the values were Buffers (the bytes of the unscaled value).
    const rows = (await decode(schema, payloads)) as Row[];
    expect(rows.map((r) => [String(r.amount), r.big === null ? null : String(r.big)])).toEqual([
      ['12.30', '1.2345'],
      ['-0.05', '-0.0002'],
      ['0.00', null],
    ]);
    expect(rows[0]!.amount).toBeInstanceOf(Decimal);
    expect((rows[0]!.amount as Decimal).scale).toBe(2);
    // Spark's show() prints a decimal(10,2) 12.3 as 12.30 (plain string, scale kept).
    const t = new StructType().add('amount', new DecimalType(10, 2)).add('big', new DecimalType(20, 4));
    expect(showString(rows, t)).toBe(
      ['+------+-------+', '|amount|    big|', '+------+-------+', '| 12.30| 1.2345|', '| -0.05|-0.0002|', '|  0.00|   null|', '+------+-------+', ''].join('\n'),
    );
  });

  it('encodes Decimals back to the same bytes', async () => {
    const type = avro.Type.forSchema(schema as avro.Schema, { wrapUnions: 'auto' });
    const decoded = (await decode(schema, payloads)) as Row[];
    const out = await encode(schema, 'amount DECIMAL(10,2), big DECIMAL(20,4)', decoded);
    expect(out).toEqual(payloads.map((p) => type.toBuffer(p)));
  });

  it('refuses to round a Decimal silently when encoding; numbers are cast HALF_UP', async () => {
    const bad = session.createDataFrame([{ s: { amount: Decimal.parse('1.234'), big: null } }], 's STRUCT<amount: DECIMAL(10,3), big: DECIMAL(20,4)>');
    await expect(bad.select(toAvro(col('s'), { schema }).alias('b')).collect()).rejects.toThrow(/1\.234 has more than 2 decimal places/);
    const [fromNumber] = await encode(schema, 'amount DOUBLE, big DOUBLE', [{ amount: 2.345, big: null }]);
    expect(((await decode(schema, [avro.Type.forSchema(schema as avro.Schema, { wrapUnions: 'auto' }).fromBuffer(fromNumber!)])) as Row[])[0]!.amount!.toString()).toBe('2.35');
  });

  it('derives a fixed decimal schema from decimal(p,s), as Spark toAvroType', () => {
    // Spark: fixed of minBytesForPrecision(p) bytes (decimal(10,2) → 5, decimal(38,18) → 16), logical type decimal.
    expect(sparkToAvroSchema(parseDataType('price DECIMAL(10,2) NOT NULL, total DECIMAL(38,18) NOT NULL'), 'R')).toEqual({
      type: 'record',
      name: 'R',
      fields: [
        { name: 'price', type: { type: 'fixed', name: 'R_price.fixed', size: 5, logicalType: 'decimal', precision: 10, scale: 2 } },
        { name: 'total', type: { type: 'fixed', name: 'R_total.fixed', size: 16, logicalType: 'decimal', precision: 38, scale: 18 } },
      ],
    });
  });
});

describe('Avro timestamp-micros keeps its microseconds', () => {
  const schema = { type: 'record', name: 'T', fields: [{ name: 'ts', type: { type: 'long', logicalType: 'timestamp-micros' } }] };
  const micros = [1_700_000_000_123_456, -1, 1_700_000_000_000_000];

  it('decodes µs, prints them as Spark does and encodes the same long back', async () => {
    // Spark's TimestampType holds microseconds; before the fix decoding cut them to milliseconds (…123 instead of …123456).
    const rows = (await decode(schema, micros.map((ts) => ({ ts })))) as Row[];
    expect(rows.map((r) => epochMicros(r.ts as Date))).toEqual(micros);
    expect(rows[0]!.ts).toBeInstanceOf(MicrosDate);
    expect((rows[0]!.ts as Date).getTime()).toBe(1_700_000_000_123); // still a Date, to the millisecond, for every operator
    const t = new StructType().add('ts', 'timestamp');
    // Spark prints the fraction without trailing zeros, up to 6 digits; -1 µs is 23:59:59.999999 the day before the epoch.
    expect(showString(rows, t, 20, false)).toContain('|2023-11-14 22:13:20.123456|');
    expect(showString(rows, t, 20, false)).toContain('|1969-12-31 23:59:59.999999|');
    const out = await encode(schema, 'ts TIMESTAMP', rows);
    const type = avro.Type.forSchema(schema as avro.Schema);
    expect(out.map((b) => (type.fromBuffer(b) as { ts: number }).ts)).toEqual(micros);
  });
});

describe('fromAvro with a Schema Registry (Confluent framing)', () => {
  // An in-process stand-in for the registry's REST API: GET /schemas/ids/:id only.
  const url = 'http://fake-registry.avro-types.test';
  const writer = {
    type: 'record',
    name: 'Pay',
    fields: [
      { name: 'amount', type: { type: 'bytes', logicalType: 'decimal', precision: 10, scale: 2 } },
      { name: 'at', type: { type: 'long', logicalType: 'timestamp-micros' } },
      { name: 'ref', type: ['null', 'long', 'string'] },
    ],
  };
  /** Schema 43 appears in the registry only later (a replica catching up with the writer's registration). */
  let registered43 = false;
  beforeAll(() => {
    const real = globalThis.fetch;
    vi.stubGlobal('fetch', async (input: string | URL | Request, init?: RequestInit) => {
      const u = String(input);
      if (!u.startsWith(url)) return real(input, init);
      if (u === `${url}/schemas/ids/42` || (u === `${url}/schemas/ids/43` && registered43)) {
        return new Response(JSON.stringify({ schema: JSON.stringify(writer) }), { status: 200 });
      }
      return new Response(JSON.stringify({ error_code: 40403, message: 'Schema not found' }), { status: 404 });
    });
  });
  afterAll(() => {
    vi.unstubAllGlobals();
  });

  it('decodes unions, decimals and µs from framed records by writer schema id', async () => {
    const type = avro.Type.forSchema(writer as avro.Schema, { wrapUnions: 'auto' });
    const value = frame(42, type.toBuffer({ amount: Buffer.from([0x04, 0xce]), at: 1_700_000_000_123_456, ref: 'inv-7' }));
    const df = session.createDataFrame([{ value }], 'value BINARY');
    const [row] = await df.select(fromAvro(col('value'), { registry: { url }, schemaId: 42 }).alias('p')).select('p.*').collect();
    expect(String(row!.amount)).toBe('12.30');
    expect(epochMicros(row!.at as Date)).toBe(1_700_000_000_123_456);
    expect(row!.ref).toEqual({ member0: null, member1: 'inv-7' });
  });

  it('a null in a column other than the Kafka value decodes to null, as in Spark: only a null value is a tombstone', async () => {
    // Why (review): fromAvro(col('key')) on records without a key sent every row to the dead letters as a "tombstone".
    const s = new SluiceSession('nulls');
    const df = s.createDataFrame([{ k: null }], 'k BINARY');
    expect(await df.select(fromAvro(col('k'), { registry: { url }, schemaId: 42 }).alias('p')).collect()).toEqual([{ p: null }]);
  });

  it('never writes the password of a registry URL into a dead letter (issue 16 item 10)', async () => {
    // Before: "Schema id 99 is not in the registry at http://alice:s3cret@…" went to the dead-letter destination.
    const type = avro.Type.forSchema(writer as avro.Schema, { wrapUnions: 'auto' });
    const s = new SluiceSession('redact');
    s.out = () => {};
    s.log = () => {};
    const input = s.memoryStream('value BINARY');
    const registry = { url: url.replace('http://', 'http://alice:s3cret@'), retries: 0 };
    const checkpoint = mkdtempSync(join(tmpdir(), 'sluice-redact-'));
    const q = await input.toDF().select(fromAvro(col('value'), { registry, schemaId: 42 }).alias('p')).select('p.amount')
      .writeStream.format('memory').queryName('redact').option('checkpointLocation', checkpoint).start();
    input.addData({ value: frame(99, type.toBuffer({ amount: Buffer.from([0x01]), at: 1, ref: null })) });
    await q.processAllAvailable();
    await q.stop();
    const letter = JSON.parse(readFileSync(join(checkpoint, 'deadletter', '0.jsonl'), 'utf8')) as { reason: string; message: string };
    expect(letter.reason).toBe('avro.unknown-schema-id');
    expect(letter.message).toMatch(/Schema id 99 is not in the registry at http:\/\/alice:\*+\(redacted\)@fake-registry/);
    expect(letter.message).not.toContain('s3cret');
  });

  it('asks again for a schema id the registry did not know, after unknownIdRecheckMs (it was remembered as unknown for good)', async () => {
    const type = avro.Type.forSchema(writer as avro.Schema, { wrapUnions: 'auto' });
    const value = frame(43, type.toBuffer({ amount: Buffer.from([0x04, 0xce]), at: 1, ref: null }));
    const s = new SluiceSession('recheck');
    s.out = () => {};
    s.log = () => {};
    const input = s.memoryStream('value BINARY');
    const registry = { url, retries: 0, unknownIdRecheckMs: 50 };
    const q = await input.toDF().select(fromAvro(col('value'), { registry, schemaId: 42 }).alias('p')).select('p.amount')
      .writeStream.format('memory').queryName('recheck').option('checkpointLocation', mkdtempSync(join(tmpdir(), 'sluice-recheck-'))).start();
    input.addData({ value });
    await q.processAllAvailable();
    registered43 = true;
    await new Promise((r) => setTimeout(r, 80));
    input.addData({ value });
    await q.processAllAvailable();
    await q.stop();
    // Batch 0: id 43 unknown, the record is a dead letter. Batch 1, after the recheck time: the registry has it now.
    expect(q.recentProgress.map((p) => p.numDeadLetterRows)).toEqual([1, 0]);
    expect((await s.table('recheck').collect()).map((r) => String(r.amount))).toEqual(['12.30']);
  });
});
