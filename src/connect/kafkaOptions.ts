/**
 * Kafka options for Spark's Kafka connector. Sluice's `kafka.*` options are librdkafka settings; Spark passes
 * its `kafka.*` options to the Java client, whose names differ for security. The settings Sluice users write
 * (and `connection()` gives for a secure stack) become their Java forms here; Java forms given directly pass
 * through; a librdkafka-only setting the Java client would ignore is named in a warning.
 */
import { AnalysisError } from '../expr/compile.js';

const SASL_MODULES: Record<string, string> = {
  PLAIN: 'org.apache.kafka.common.security.plain.PlainLoginModule',
  'SCRAM-SHA-256': 'org.apache.kafka.common.security.scram.ScramLoginModule',
  'SCRAM-SHA-512': 'org.apache.kafka.common.security.scram.ScramLoginModule',
};

/** librdkafka names with no Java client setting of that name (the Java client would ignore them). */
const LIBRDKAFKA_ONLY = /^kafka\.(ssl\.(ca|certificate|key)\.location|sasl\.(username|password|mechanisms)|enable\.ssl\.certificate\.verification|queue\.buffering\.max\.ms|statistics\.interval\.ms|socket\.keepalive\.enable)$/;

const jaasQuote = (s: string): string => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;

export function sparkKafkaOptions(options: Readonly<Record<string, string>>, warn: (line: string) => void): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(options)) if (!LIBRDKAFKA_ONLY.test(k)) out[k] = v;
  const mechanism = options['kafka.sasl.mechanism'] ?? options['kafka.sasl.mechanisms'];
  if (mechanism) out['kafka.sasl.mechanism'] = mechanism;
  const user = options['kafka.sasl.username'];
  const password = options['kafka.sasl.password'];
  if ((user !== undefined || password !== undefined) && !options['kafka.sasl.jaas.config']) {
    const module = SASL_MODULES[(mechanism ?? 'PLAIN').toUpperCase()];
    if (!module) throw new AnalysisError(`kafka.sasl.mechanism ${mechanism}: Sluice can write Spark's JAAS line for PLAIN and SCRAM-SHA-256/512 only; set kafka.sasl.jaas.config yourself.`);
    out['kafka.sasl.jaas.config'] = `${module} required username=${jaasQuote(user ?? '')} password=${jaasQuote(password ?? '')};`;
  }
  // librdkafka turns host name checking off with `none`; the Java client with an empty value.
  if (options['kafka.ssl.endpoint.identification.algorithm']?.toLowerCase() === 'none') out['kafka.ssl.endpoint.identification.algorithm'] = '';
  // librdkafka's producer batching delay is the Java producer's linger.ms.
  if (options['kafka.queue.buffering.max.ms'] && !options['kafka.linger.ms']) out['kafka.linger.ms'] = options['kafka.queue.buffering.max.ms'];
  const ca = options['kafka.ssl.ca.location'];
  if (ca && !options['kafka.ssl.truststore.location']) {
    // The Java client (Kafka 2.7+) reads a PEM CA file as a truststore.
    out['kafka.ssl.truststore.type'] = 'PEM';
    out['kafka.ssl.truststore.location'] = ca;
  }
  const translated = ['kafka.sasl.username', 'kafka.sasl.password', 'kafka.sasl.mechanisms', 'kafka.ssl.ca.location', 'kafka.queue.buffering.max.ms'];
  const ignored = Object.keys(options).filter((k) => LIBRDKAFKA_ONLY.test(k) && !translated.includes(k));
  if (ignored.length) {
    warn(`Spark's Kafka client (Java) has no setting ${ignored.join(', ')} (librdkafka names): not sent. Give the Java client's setting instead (e.g. kafka.ssl.keystore.* for a client certificate).`);
  }
  return out;
}
