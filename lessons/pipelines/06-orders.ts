// Lesson 06's crash demo, run as its own process by `node bin/sluice.js run lessons/pipelines/06-orders.ts`:
// orders from Kafka (lesson06-orders, 10 per batch) copied to OUT, with the at-least-once Kafka sink or the
// exactly-once one. A process is needed because the crash is real: SLUICE_FAULT=<point>@1 kills it with
// SIGKILL at that point of batch 1. Settings from the environment:
//   OUT           the output topic
//   CHECKPOINT    the query's checkpoint folder
//   EXACTLY_ONCE  "true": one Kafka transaction per batch, with the batch's marker; "false": at-least-once
import { writeSync } from 'node:fs';
import { SluiceSession, col, connection } from 'sluice';

const env = (k: string): string => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const say = (line: string): void => void writeSync(1, line + '\n'); // synchronous: printed before a crash
const kafka = connection().kafkaOptions;
const sluice = SluiceSession.builder().appName('lesson06-orders').getOrCreate();

const query = await sluice.readStream.format('kafka').options(kafka)
  .option('subscribe', 'lesson06-orders').option('startingOffsets', 'earliest')
  .option('maxOffsetsPerTrigger', 10) // 10 orders per batch: batches 0, 1, 2
  .load()
  .select(col('key'), col('value'))
  .writeStream.format('kafka').options(kafka)
  .option('topic', env('OUT'))
  .option('exactlyOnce', env('EXACTLY_ONCE'))
  .option('checkpointLocation', env('CHECKPOINT'))
  .trigger({ availableNow: true }) // reads what is there, then stops
  .start();
sluice.streams.addListener({
  onQueryProgress: ({ progress: p }) => say(`batch ${p.batchId}: ${p.numInputRows} in, ${p.sink.numOutputRows} out`),
});
await query.awaitTermination();
