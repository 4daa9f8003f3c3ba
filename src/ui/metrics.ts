/**
 * Prometheus metrics of a session's streaming queries (prom-client), named after Spark's Dropwizard
 * streaming metrics (`spark.streaming.<query>.inputRate-total`, … — MetricsReporter in Spark) where Spark has
 * one: Prometheus names cannot hold `.` or `-`, so `inputRate-total` is `sluice_streaming_inputRate_total`,
 * and the query is a label instead of a part of the name. The figures are the last progress's.
 *
 * | Spark (Dropwizard)               | here                                         |
 * |----------------------------------|----------------------------------------------|
 * | inputRate-total                  | sluice_streaming_inputRate_total             |
 * | processingRate-total             | sluice_streaming_processingRate_total        |
 * | latency                          | sluice_streaming_latency (batch duration ms) |
 * | eventTime-watermark              | sluice_streaming_eventTime_watermark (ms)    |
 * | states-rowsTotal                 | sluice_streaming_states_rowsTotal            |
 * | states-usedBytes                 | sluice_streaming_states_usedBytes            |
 * | (none)                           | sluice_streaming_batchId, _numInputRows_total, _numOutputRows_total, _numDeadLetterRows_total, _numRowsDroppedByWatermark_total |
 */
import { Counter, Gauge, Registry } from 'prom-client';
import type { StreamingQueryProgress } from '../exec/progress.js';

export class StreamingMetrics {
  readonly registry = new Registry();
  private readonly gauges: Record<string, Gauge>;
  private readonly counters: Record<string, Counter>;
  constructor() {
    const gauge = (name: string, help: string): Gauge => new Gauge({ name: `sluice_streaming_${name}`, help, labelNames: ['query'], registers: [this.registry] });
    const counter = (name: string, help: string): Counter => new Counter({ name: `sluice_streaming_${name}`, help, labelNames: ['query'], registers: [this.registry] });
    this.gauges = {
      inputRate: gauge('inputRate_total', "Rows per second arriving, over the last batch (Spark's inputRate-total)"),
      processingRate: gauge('processingRate_total', "Rows per second processed, over the last batch (Spark's processingRate-total)"),
      latency: gauge('latency', "The last batch's duration in milliseconds (Spark's latency)"),
      watermark: gauge('eventTime_watermark', "The watermark the last batch ran with, epoch milliseconds (Spark's eventTime-watermark)"),
      stateRows: gauge('states_rowsTotal', "Rows in state, all operators (Spark's states-rowsTotal)"),
      stateBytes: gauge('states_usedBytes', "Memory used by state, all operators (Spark's states-usedBytes)"),
      batchId: gauge('batchId', 'The id of the last batch'),
    };
    this.counters = {
      input: counter('numInputRows_total', 'Rows read'),
      output: counter('numOutputRows_total', 'Rows written to the sink'),
      dead: counter('numDeadLetterRows_total', 'Rows sent to the dead-letter destination'),
      late: counter('numRowsDroppedByWatermark_total', 'Rows dropped as late by the watermark'),
    };
  }

  /** Records a progress report (a StreamingQueryListener's onQueryProgress). */
  record(p: StreamingQueryProgress): void {
    const query = p.name ?? p.id;
    const g = this.gauges;
    g.inputRate!.set({ query }, p.inputRowsPerSecond);
    g.processingRate!.set({ query }, p.processedRowsPerSecond);
    g.latency!.set({ query }, p.batchDuration);
    if (p.eventTime.watermark) g.watermark!.set({ query }, Date.parse(p.eventTime.watermark));
    g.stateRows!.set({ query }, p.stateOperators.reduce((n, o) => n + o.numRowsTotal, 0));
    g.stateBytes!.set({ query }, p.stateOperators.reduce((n, o) => n + o.memoryUsedBytes, 0));
    g.batchId!.set({ query }, p.batchId);
    this.counters.input!.inc({ query }, p.numInputRows);
    this.counters.output!.inc({ query }, p.sink.numOutputRows);
    this.counters.dead!.inc({ query }, p.numDeadLetterRows);
    this.counters.late!.inc({ query }, p.stateOperators.reduce((n, o) => n + o.numRowsDroppedByWatermark, 0));
  }

  /** The metrics in Prometheus's text format. */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}
