import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Checkpoint, CheckpointError } from '../../src/checkpoint/checkpoint.js';
import { RecordError } from '../../src/expr/values.js';
import { avroToSparkType, sparkToAvroSchema } from '../../src/serde/avro.js';
import { frame, unframe } from '../../src/serde/wireformat.js';
import { ArrayType, LongType, StringType, StructType, parseDataType, parseSchema } from '../../src/types/index.js';
import { parseDuration } from '../../src/util/duration.js';

describe('schema model', () => {
  it('parses DDL and Spark type strings', () => {
    const s = parseSchema('user_id STRING, n BIGINT NOT NULL, tags ARRAY<STRING>, loc STRUCT<lat: DOUBLE, lon: DOUBLE>');
    expect(s.simpleString()).toBe('struct<user_id:string,n:bigint,tags:array<string>,loc:struct<lat:double,lon:double>>');
    expect(s.field('n')!.nullable).toBe(false);
    expect(parseDataType('map<string,int>').simpleString()).toBe('map<string,int>');
    expect(() => parseSchema('a STRIN')).toThrow(/unknown type "strin"/);
  });

  it('prints the tree exactly as Spark printSchema', () => {
    const s = new StructType().add('key', 'binary').add('e', new StructType().add('user_id', StringType).add('n', LongType, false)).add('tags', new ArrayType(StringType));
    expect(s.treeString()).toBe(
      [
        'root',
        ' |-- key: binary (nullable = true)',
        ' |-- e: struct (nullable = true)',
        ' |    |-- user_id: string (nullable = true)',
        ' |    |-- n: long (nullable = false)',
        ' |-- tags: array (nullable = true)',
        ' |    |-- element: string (containsNull = true)',
        '',
      ].join('\n'),
    );
  });

  it('maps Avro to Spark types and back', () => {
    const avsc = JSON.parse(readFileSync(new URL('../../data/user_event.avsc', import.meta.url), 'utf8'));
    const t = avroToSparkType(avsc) as StructType;
    expect(t.simpleString()).toBe(
      'struct<user_id:string,event_type:string,timestamp:timestamp,page_url:string,session_id:string,ip_address:string,user_agent:string,country:string,device_type:string>',
    );
    expect(t.field('user_id')!.nullable).toBe(false);
    expect(t.field('page_url')!.nullable).toBe(true);
    expect(sparkToAvroSchema(new StructType().add('a', 'timestamp').add('b', 'int', false), 'R')).toEqual({
      type: 'record',
      name: 'R',
      fields: [
        { name: 'a', type: ['null', { type: 'long', logicalType: 'timestamp-millis' }], default: null },
        { name: 'b', type: 'int' },
      ],
    });
  });

  it('reads Spark durations', () => {
    expect(parseDuration('10 minutes')).toBe(600_000);
    expect(parseDuration('interval 1 hour 30 minutes')).toBe(5_400_000);
    expect(() => parseDuration('ten minutes')).toThrow(/Write it as Spark does/);
  });
});

describe('Confluent wire format', () => {
  it('frames with magic byte 0 and a big-endian schema id', () => {
    const f = frame(258, Buffer.from([7, 8]));
    expect([...f]).toEqual([0, 0, 0, 1, 2, 7, 8]);
    expect(unframe(f)).toEqual({ schemaId: 258, payload: Buffer.from([7, 8]) });
  });
  it('names what is wrong with a bad frame', () => {
    const reason = (b: Buffer | null): string => {
      try {
        unframe(b);
        return 'ok';
      } catch (e) {
        return (e as RecordError).reason;
      }
    };
    expect(reason(Buffer.from('{"json": true}'))).toBe('wire.bad-magic-byte');
    expect(reason(Buffer.from([0, 0, 1]))).toBe('wire.truncated');
    expect(reason(null)).toBe('wire.null-value');
  });
});

describe('checkpoint logs', () => {
  const dir = (): string => mkdtempSync(join(tmpdir(), 'sluice-cp-'));

  it("writes offsets and commits in Spark's layout", () => {
    const root = dir();
    const cp = new Checkpoint(root);
    const id = cp.queryId();
    expect(new Checkpoint(root).queryId()).toBe(id); // the id survives restarts
    cp.offsets.add(0, { metadata: { batchWatermarkMs: 0, batchTimestampMs: 1700000000000, conf: { a: 'b' } }, offsets: [{ t: { '0': 5 } }] });
    cp.commits.add(0, { nextBatchWatermarkMs: 0 });
    expect(readFileSync(join(root, 'offsets', '0'), 'utf8')).toBe('v1\n{"batchWatermarkMs":0,"batchTimestampMs":1700000000000,"conf":{"a":"b"}}\n{"t":{"0":5}}\n');
    expect(readFileSync(join(root, 'commits', '0'), 'utf8')).toBe('v1\n{"nextBatchWatermarkMs":0}\n');
    expect(cp.offsets.get(0)!.offsets).toEqual([{ t: { '0': 5 } }]);
    expect(readdirSync(join(root, 'offsets'))).toEqual(['0']); // no temp files left behind
  });

  it('refuses to overwrite a batch, and explains damage', () => {
    const cp = new Checkpoint(dir());
    cp.commits.add(3, { nextBatchWatermarkMs: 0 });
    expect(() => cp.commits.add(3, { nextBatchWatermarkMs: 0 })).toThrow(/another query may be writing to the same checkpoint/);
    const other = new Checkpoint(dir());
    other.commits.add(0, { nextBatchWatermarkMs: 0 });
    writeFileSync(join(other.root, 'commits', '1'), 'garbage');
    expect(() => other.commits.get(1)).toThrow(CheckpointError);
  });
});
