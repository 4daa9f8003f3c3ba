/**
 * Confluent's wire format: byte 0 = magic 0, bytes 1..4 = schema id (big-endian), then the payload
 * (Avro binary without any schema). A plain Avro decoder fails on it because of these 5 bytes, and it
 * could not know the writer's schema without the id.
 */
import { RecordError } from '../expr/values.js';

export const MAGIC_BYTE = 0;
export const HEADER_SIZE = 5;

export function frame(schemaId: number, payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(HEADER_SIZE + payload.length);
  out[0] = MAGIC_BYTE;
  out.writeUInt32BE(schemaId, 1);
  payload.copy(out, HEADER_SIZE);
  return out;
}

export function unframe(buf: Buffer | null | undefined): { schemaId: number; payload: Buffer } {
  if (buf == null) throw new RecordError('The record value is null: there is nothing to decode.', 'wire.null-value');
  if (buf.length < HEADER_SIZE) {
    throw new RecordError(
      `The record is ${buf.length} byte(s) long, shorter than the 5-byte Schema Registry header: it is truncated or not framed.`,
      'wire.truncated',
    );
  }
  if (buf[0] !== MAGIC_BYTE) {
    throw new RecordError(
      `Unknown magic byte ${buf[0]} (expected 0): this record was not written with a Schema Registry serializer ` +
        `(first bytes: ${buf.subarray(0, 8).toString('hex')}).`,
      'wire.bad-magic-byte',
    );
  }
  return { schemaId: buf.readUInt32BE(1), payload: buf.subarray(HEADER_SIZE) };
}
