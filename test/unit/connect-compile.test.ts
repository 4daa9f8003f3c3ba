/**
 * The Spark Connect compiler without a server: what a DataFrame becomes as Spark Connect 3.5 messages
 * (relations.proto / expressions.proto field names), what is refused before submission, connection strings,
 * and the Arrow round trip of in-memory rows. The same plans run on a real Spark Connect server in
 * test/integration/connect-conformance.test.ts; here each message is checked against the form PySpark's
 * Connect client sends for the same call (pyspark/sql/connect/plan.py, column.py, functions.py in 3.5).
 */
import { describe, expect, it } from 'vitest';
import { SluiceSession } from '../../src/api/session.js';
import { GroupStateTimeout } from '../../src/index.js';
import { rowsFromArrow, localRelation } from '../../src/connect/arrow.js';
import { sluiceType } from '../../src/connect/backend.js';
import { parseConnectUrl, SparkConnectError, type Msg } from '../../src/connect/base.js';
import { ConnectUnsupportedError } from '../../src/connect/base.js';
import { Compiler, literal } from '../../src/connect/compile.js';
import { col, count, when, window } from '../../src/index.js';
import { MicrosDate, parseSchema } from '../../src/types/index.js';

const warnings: string[] = [];
const compile = (df: { plan: unknown }): Promise<Msg> => new Compiler({ warn: (l) => void warnings.push(l) }).relation(df.plan as never);

function events(s: SluiceSession) {
  return s.readStream.format('kafka').option('kafka.bootstrap.servers', '127.0.0.1:1').option('subscribe', 'events').load();
}
const fn = (name: string, ...args: Msg[]): Msg => ({ unresolved_function: { function_name: name, arguments: args } });
const attr = (n: string): Msg => ({ unresolved_attribute: { unparsed_identifier: n } });

describe('Spark Connect: compiling plans and expressions', () => {
  const s = new SluiceSession('compile');

  it('a Kafka stream, a filter, a watermark and a windowed count become read / filter / with_watermark / aggregate', async () => {
    const df = events(s)
      .select(col('timestamp').alias('ts'), col('key'))
      .filter(col('key').isNotNull())
      .withWatermark('ts', '10 seconds')
      .groupBy(window(col('ts'), '1 minute'))
      .agg(count('*').alias('n'));
    const r = await compile(df);
    const agg = r.aggregate as Msg;
    expect(agg.group_type).toBe('GROUP_TYPE_GROUPBY');
    // window(ts, '1 minute'): Sluice keeps the durations in options; Spark takes window, slide and start as
    // arguments — in microseconds, since Spark's interval parser refuses short units Sluice accepts ('5s', '2 min')
    // and a fraction on any unit but seconds.
    expect(agg.grouping_expressions).toEqual([fn('window', attr('ts'), literal('60000000 microseconds'), literal('60000000 microseconds'), literal('0 microseconds'))]);
    // count('*') is count(1), as Spark names it.
    expect(agg.aggregate_expressions).toEqual([{ alias: { expr: fn('count', { literal: { integer: 1 } }), name: ['n'] } }]);
    const wm = (agg.input as Msg).with_watermark as Msg;
    expect(wm).toMatchObject({ event_time: 'ts', delay_threshold: '10000000 microseconds' });
    const filter = (wm.input as Msg).filter as Msg;
    expect(filter.condition).toEqual(fn('isnotnull', attr('key')));
    const read = ((((filter.input as Msg).project as Msg).input as Msg).read) as Msg;
    expect(read).toEqual({ is_streaming: true, data_source: { format: 'kafka', options: { 'kafka.bootstrap.servers': '127.0.0.1:1', subscribe: 'events' } } });
  });

  it('operators whose Spark form differs: != is not(==), when/otherwise is when(c, v, …, else), isin is in, - is negative, fields are extract_value', async () => {
    const c = new Compiler({ warn: () => {} });
    expect(await c.expr(col('a').neq(1).expr)).toEqual(fn('not', fn('==', attr('a'), literal(1))));
    expect(await c.expr(when(col('a').eq(1), 'one').when(col('a').eq(2), 'two').otherwise('many').expr)).toEqual(
      fn('when', fn('==', attr('a'), literal(1)), literal('one'), fn('==', attr('a'), literal(2)), literal('two'), literal('many')),
    );
    expect(await c.expr(col('a').isin('x', 'y').expr)).toEqual(fn('in', attr('a'), literal('x'), literal('y')));
    expect(await c.expr(col('a').negate().expr)).toEqual(fn('negative', attr('a')));
    expect(await c.expr(col('e').getField('n').expr)).toEqual({ unresolved_extract_value: { child: attr('e'), extraction: literal('n') } });
    expect(await c.expr(col('a').cast('bigint').expr)).toEqual({ cast: { expr: attr('a'), type_str: 'bigint' } });
    // Struct field names are quoted: Spark's parser refuses `user-id` or `a b` unquoted.
    expect(await c.expr(col('a').cast('struct<`user-id`: int, `a b`: string>').expr)).toEqual({ cast: { expr: attr('a'), type_str: 'struct<`user-id`:int,`a b`:string>' } });
    // A watermark delay with a fraction of a millisecond still parses on Spark: whole microseconds.
    const wm = (await compile(events(s).withWatermark('timestamp', '1.5 ms'))).with_watermark as Msg;
    expect(wm.delay_threshold).toBe('1500 microseconds');
  });

  it('literals are typed as Sluice types them: whole numbers int (long past 32 bits), other numbers double, dates as µs timestamps', () => {
    expect(literal(7)).toEqual({ literal: { integer: 7 } });
    expect(literal(5_000_000_000)).toEqual({ literal: { long: '5000000000' } });
    expect(literal(1.5)).toEqual({ literal: { double: 1.5 } });
    expect(literal(10n)).toEqual({ literal: { long: '10' } });
    expect(literal(null)).toEqual({ literal: { null: { null: {} } } });
    expect(literal(new MicrosDate(Date.parse('2026-01-01T00:00:00Z'), 7))).toEqual({ literal: { timestamp: String(Date.parse('2026-01-01T00:00:00Z') * 1000 + 7) } });
  });

  it('dedupe, joins and unions: within_watermark, using columns and join types, UNION ALL chained left-deep', async () => {
    const a = events(s).select(col('key'), col('timestamp'));
    const b = events(s).select(col('key'), col('timestamp'));
    expect(((await compile(a.withWatermark('timestamp', '1 minute').dropDuplicatesWithinWatermark(['key']))).deduplicate as Msg)).toMatchObject({
      column_names: ['key'],
      within_watermark: true,
    });
    expect(((await compile(a.dropDuplicates())).deduplicate as Msg)).toMatchObject({ all_columns_as_keys: true, within_watermark: false });
    expect(((await compile(a.join(b, 'key', 'left'))).join as Msg)).toMatchObject({ using_columns: ['key'], join_type: 'JOIN_TYPE_LEFT_OUTER' });
    const u = (await compile(a.union(b, a))).set_op as Msg;
    expect(u).toMatchObject({ set_op_type: 'SET_OP_TYPE_UNION', is_all: true, by_name: false });
    expect((u.left_input as Msg).set_op).toMatchObject({ set_op_type: 'SET_OP_TYPE_UNION', is_all: true });
  });

  it('JavaScript functions and in-process sources are refused with the reason and what to use instead', async () => {
    const mapped = events(s).map(function upperCase(r) {
      return r;
    }, 'key BINARY');
    await expect(compile(mapped)).rejects.toThrow(ConnectUnsupportedError);
    await expect(compile(mapped)).rejects.toThrow(/map\(upperCase\) \(a JavaScript function of each row\) cannot run on Spark Connect: Spark runs on the JVM.*column expressions/s);
    const counted = events(s).select(col('key').cast('string').alias('user')).groupByKey('user').mapGroupsWithState<{ n: number }>(
      GroupStateTimeout.NoTimeout,
      (user, rows) => ({ user, n: rows.length }),
      { outputSchema: 'user STRING, n LONG', stateSchema: 'n LONG' },
    );
    await expect(compile(counted)).rejects.toThrow(/mapGroupsWithState .*cannot run on Spark Connect.*groupBy\(\)\.agg\(\)/s);
    await expect(compile(s.memoryStream('x INT').toDF())).rejects.toThrow(/memoryStream\(\) cannot run on Spark Connect.*format\("kafka"\)/s);
    // foreachBatch is refused by the remote start, before any connection is made (nothing listens on port 1).
    const remote = new SluiceSession('remote', 'sc://127.0.0.1:1');
    remote.log = () => {};
    await expect(events(remote).writeStream.foreachBatch(() => {}).start()).rejects.toThrow(/foreachBatch\(\) with a JavaScript function cannot run on Spark Connect/);
    // Without the refusal it would have tried to connect: that error names the address and `sluice up --spark`.
    await expect(events(remote).select(col('value')).writeStream.format('console').start()).rejects.toThrow(/Cannot reach the Spark Connect server at 127\.0\.0\.1:1.*sluice up --spark/s);
    await remote.stop();
  });

  it('a kafka sink without a checkpoint, or asking for exactly-once, is refused with what to do, before connecting', async () => {
    const remote = new SluiceSession('remote', 'sc://127.0.0.1:1');
    await expect(
      events(remote).select(col('value')).writeStream.format('kafka').option('topic', 'x').option('checkpointLocation', '/cp').option('exactlyOnce', 'true').start(),
    ).rejects.toThrow(/exactly-once Kafka sink \(exactlyOnce=true\) cannot run on Spark Connect.*at-least-once.*run this query locally/s);
    await expect(events(remote).select(col('value')).writeStream.format('kafka').option('topic', 'x').start()).rejects.toThrow(/needs a checkpoint on Spark too.*absolute path/s);
    await remote.stop();
  });
});

describe('Spark Connect: schemas, durations and Kafka options as Spark reads them', () => {
  it('a read schema goes as Spark JSON (DataType.json), which Read.DataSource.schema accepts', async () => {
    // On a Spark Connect session the path is the cluster's: not checked here.
    const s = new SluiceSession('schema', 'sc://127.0.0.1:1');
    const df = s.read.schema('`user id` STRING, n BIGINT, tags ARRAY<STRING>, p DECIMAL(10,2)').json('/data/in');
    const ds = ((await compile(df)).read as Msg).data_source as Msg;
    expect(JSON.parse(ds.schema as string)).toEqual({
      type: 'struct',
      fields: [
        { name: 'user id', type: 'string', nullable: true, metadata: {} },
        { name: 'n', type: 'long', nullable: true, metadata: {} },
        { name: 'tags', type: { type: 'array', elementType: 'string', containsNull: true }, nullable: true, metadata: {} },
        { name: 'p', type: 'decimal(10,2)', nullable: true, metadata: {} },
      ],
    });
  });

  it("librdkafka security settings become the Java client's: SASL as a JAAS line, a PEM CA as a PEM truststore", async () => {
    const s = new SluiceSession('kafka');
    warnings.length = 0;
    const df = s.readStream.format('kafka').options({
      'kafka.bootstrap.servers': 'b:9093',
      'kafka.security.protocol': 'SASL_SSL',
      'kafka.sasl.mechanisms': 'SCRAM-SHA-256',
      'kafka.sasl.username': 'alice',
      'kafka.sasl.password': 'p"w',
      'kafka.ssl.ca.location': '/ca.pem',
      'kafka.statistics.interval.ms': '1000',
      subscribe: 't',
    }).load();
    const opts = (((await compile(df)).read as Msg).data_source as Msg).options;
    expect(opts).toEqual({
      'kafka.bootstrap.servers': 'b:9093',
      'kafka.security.protocol': 'SASL_SSL',
      'kafka.sasl.mechanism': 'SCRAM-SHA-256',
      'kafka.sasl.jaas.config': 'org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="p\\"w";',
      'kafka.ssl.truststore.type': 'PEM',
      'kafka.ssl.truststore.location': '/ca.pem',
      subscribe: 't',
    });
    expect(warnings.join('\n')).toMatch(/no setting kafka\.statistics\.interval\.ms/);
  });
});

describe('Spark Connect: connection strings', () => {
  it('sc://host[:port][/;param=value…], port 15002 by default; a malformed one says how to write it', () => {
    expect(parseConnectUrl('sc://127.0.0.1')).toEqual({ host: '127.0.0.1', port: 15002, params: {} });
    expect(parseConnectUrl('sc://spark.example:443/;use_ssl=true;token=abc')).toEqual({ host: 'spark.example', port: 443, params: { use_ssl: 'true', token: 'abc' } });
    expect(() => parseConnectUrl('http://127.0.0.1:15002')).toThrow(SparkConnectError);
    expect(() => parseConnectUrl('http://127.0.0.1:15002')).toThrow(/not a Spark Connect address.*sc:\/\/host:port/);
    expect(() => SluiceSession.builder().remote('localhost:15002')).toThrow(/not a Spark Connect address/);
  });
});

describe('Spark Connect: rows as Arrow', () => {
  it('in-memory rows go to Spark as an Arrow LocalRelation and read back unchanged (µs timestamps, dates, longs, nulls, binary)', () => {
    const schema = parseSchema('id INT, big BIGINT, name STRING, t TIMESTAMP, d DATE, x DOUBLE, ok BOOLEAN, b BINARY');
    const rows = [
      { id: 1, big: 5_000_000_000, name: 'a', t: new MicrosDate(Date.parse('2026-01-01T00:00:03.123Z'), 456), d: '2026-01-01', x: 1.5, ok: true, b: Buffer.from([1, 2]) },
      { id: null, big: null, name: null, t: null, d: null, x: null, ok: null, b: null },
    ];
    const rel = localRelation(rows, schema);
    // The schema as Spark's JSON (a column name with a space or a dash would not parse as `struct<…>`).
    expect(JSON.parse(rel.schema as string).fields.map((f: { name: string; type: string }) => `${f.name}:${f.type}`)).toEqual([
      'id:integer', 'big:long', 'name:string', 't:timestamp', 'd:date', 'x:double', 'ok:boolean', 'b:binary',
    ]);
    const back = rowsFromArrow([rel.data as Uint8Array]);
    expect(back).toEqual(rows);
    expect((back[0]!.t as MicrosDate).microsOfMilli).toBe(456);
  });

  it('Spark’s schema answers (types.proto) become Sluice types', () => {
    const t = sluiceType({
      struct: {
        fields: [
          { name: 'w', data_type: { struct: { fields: [{ name: 'start', data_type: { timestamp: {} }, nullable: true }] } }, nullable: false },
          { name: 'n', data_type: { long: {} }, nullable: false },
          { name: 'tags', data_type: { array: { element_type: { string: {} }, contains_null: true } }, nullable: true },
          { name: 'price', data_type: { decimal: { precision: 10, scale: 2 } }, nullable: true },
        ],
      },
    });
    expect(t.simpleString()).toBe('struct<w:struct<start:timestamp>,n:bigint,tags:array<string>,price:decimal(10,2)>');
  });
});

