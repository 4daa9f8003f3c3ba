/**
 * Connection settings for the CLI, lessons and examples: environment variables first, then the running
 * local stack (`sluice up`), then the local defaults. Secrets come from the environment, or, for a local
 * stack started with `sluice up --secure`, from its credentials file (stack/secure.ts).
 *
 * | variable                        | meaning                                   |
 * |---------------------------------|-------------------------------------------|
 * | SLUICE_BOOTSTRAP_SERVERS        | Kafka bootstrap servers (host:port,…)     |
 * | SLUICE_KAFKA_SECURITY_PROTOCOL  | PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL  |
 * | SLUICE_KAFKA_SASL_MECHANISM     | PLAIN, SCRAM-SHA-256, SCRAM-SHA-512       |
 * | SLUICE_KAFKA_SASL_USERNAME / _PASSWORD | SASL credentials                   |
 * | SLUICE_KAFKA_SSL_CA_LOCATION    | CA certificate (PEM) for SSL              |
 * | SLUICE_REGISTRY_URL             | Schema Registry base URL                  |
 * | SLUICE_REGISTRY_BASIC_AUTH      | registry `user:password`                  |
 * | SLUICE_REGISTRY_BEARER_TOKEN    | registry bearer token                     |
 * | SLUICE_SPARK_CONNECT_URL        | Spark Connect server (`sc://host:15002`)  |
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KafkaConfig } from './kafka/client.js';
import type { RegistryConfig } from './serde/registry.js';
import { DEFAULT_PORTS, defaultStackDir, stackClientSecurity, stackRegistryAuth, type StackInfo } from './stack/stack.js';

export interface Connection {
  bootstrapServers: string;
  /** `kafka.`-prefixed options for readStream/writeStream (security settings included). */
  kafkaOptions: Record<string, string>;
  /** librdkafka settings for direct clients. */
  kafka: KafkaConfig;
  registry: RegistryConfig;
  /** True when these settings point at the local stack (not overridden by the environment). */
  local: boolean;
  /** The Spark Connect server for `SluiceSession.builder().remote(…)`: the environment's, the stack's (`sluice up --spark`), or sc://127.0.0.1:15002. */
  sparkConnectUrl: string;
}

export function connection(env: NodeJS.ProcessEnv = process.env): Connection {
  const stackFile = join(defaultStackDir(), 'stack.json');
  const stack = existsSync(stackFile) ? (JSON.parse(readFileSync(stackFile, 'utf8')) as StackInfo) : undefined;
  const bootstrapServers = env.SLUICE_BOOTSTRAP_SERVERS ?? stack?.bootstrapServers ?? `127.0.0.1:${DEFAULT_PORTS.kafka}`;
  // The secure local stack's SASL/TLS settings, unless the environment points elsewhere.
  const local = !env.SLUICE_BOOTSTRAP_SERVERS;
  const kafka: KafkaConfig = { 'bootstrap.servers': bootstrapServers, ...(local && stack ? stackClientSecurity(stack) : {}) };
  const map: Array<[string, string]> = [
    ['SLUICE_KAFKA_SECURITY_PROTOCOL', 'security.protocol'],
    ['SLUICE_KAFKA_SASL_MECHANISM', 'sasl.mechanisms'],
    ['SLUICE_KAFKA_SASL_USERNAME', 'sasl.username'],
    ['SLUICE_KAFKA_SASL_PASSWORD', 'sasl.password'],
    ['SLUICE_KAFKA_SSL_CA_LOCATION', 'ssl.ca.location'],
  ];
  for (const [v, k] of map) if (env[v]) kafka[k] = env[v]!;
  const registry: RegistryConfig = {
    url: env.SLUICE_REGISTRY_URL ?? stack?.registryUrl ?? `http://127.0.0.1:${DEFAULT_PORTS.registry}/apis/ccompat/v7`,
    ...(env.SLUICE_REGISTRY_BASIC_AUTH
      ? { basicAuth: env.SLUICE_REGISTRY_BASIC_AUTH }
      : !env.SLUICE_REGISTRY_URL && stack && stackRegistryAuth(stack)
        ? { basicAuth: stackRegistryAuth(stack)! }
        : {}),
    ...(env.SLUICE_REGISTRY_BEARER_TOKEN ? { bearerToken: env.SLUICE_REGISTRY_BEARER_TOKEN } : {}),
  };
  const kafkaOptions = Object.fromEntries(Object.entries(kafka).map(([k, v]) => [`kafka.${k}`, String(v)]));
  const sparkConnectUrl = env.SLUICE_SPARK_CONNECT_URL ?? stack?.sparkConnectUrl ?? 'sc://127.0.0.1:15002';
  return { bootstrapServers, kafka, kafkaOptions, registry, local, sparkConnectUrl };
}
