/**
 * Schema evolution through the registry: each record is decoded with its writer schema (by the id in its
 * header) and projected onto the reader schema, following Avro's resolution rules: a field the writer did
 * not have takes the reader's default; a field the reader does not have is skipped.
 */
import avro from 'avsc';
import { describe, expect, it } from 'vitest';
import { SluiceSession, col, fromAvro, frame } from '../../src/index.js';
import { AckedProducer } from '../../src/kafka/client.js';
import { registryClient } from '../../src/serde/registry.js';
import { bootstrapServers, freshTopics, kafka, registry } from './helpers.js';

const v1 = { type: 'record', name: 'Evt', namespace: 'it', fields: [{ name: 'id', type: 'string' }, { name: 'legacy', type: ['null', 'string'], default: null }] };
// v2 adds `channel` with a default and removes `legacy`.
const v2 = { type: 'record', name: 'Evt', namespace: 'it', fields: [{ name: 'id', type: 'string' }, { name: 'channel', type: 'string', default: 'web' }] };

async function readWith(topic: string, name: string, opts: { subject?: string; schemaId?: number }) {
  const s = new SluiceSession('evo');
  s.log = () => {};
  const q = await s.readStream.format('kafka').option('kafka.bootstrap.servers', bootstrapServers()).option('subscribe', topic).option('startingOffsets', 'earliest')
    .load()
    .select(fromAvro(col('value'), { registry: registry(), ...opts }).alias('e'))
    .select('e.*')
    .writeStream.format('memory').queryName(name).trigger({ availableNow: true }).start();
  await q.awaitTermination();
  return { rows: await s.table(name).collect(), schema: (await s.table(name).schema()).fieldNames };
}

describe('schema evolution with the registry', () => {
  it('decodes v1 and v2 records with the latest (v2) reader schema, and with a pinned v1 reader', async () => {
    const t = await freshTopics('evo', 1);
    const subject = `${t.input}-value`;
    const client = registryClient(registry());
    const id1 = await client.register(subject, JSON.stringify(v1));
    const id2 = await client.register(subject, JSON.stringify(v2));
    expect(id2).not.toBe(id1);
    const p = new AckedProducer(kafka());
    await p.send([
      { topic: t.input, value: frame(id1, avro.Type.forSchema(v1 as avro.Schema).toBuffer({ id: 'a', legacy: 'old' })) },
      { topic: t.input, value: frame(id2, avro.Type.forSchema(v2 as avro.Schema).toBuffer({ id: 'b', channel: 'app' })) },
    ]);
    await p.flush();
    await p.close();

    // Reader = latest version of the subject (v2): the v1 record gets channel's default, legacy is dropped.
    const latest = await readWith(t.input, 'latest', { subject });
    expect(latest.schema).toEqual(['id', 'channel']);
    expect(latest.rows).toEqual([{ id: 'a', channel: 'web' }, { id: 'b', channel: 'app' }]);

    // Reader pinned to v1: the v2 record's channel is skipped, legacy takes its default (null).
    const pinned = await readWith(t.input, 'pinned', { schemaId: id1 });
    expect(pinned.rows).toEqual([{ id: 'a', legacy: 'old' }, { id: 'b', legacy: null }]);
  });
});
