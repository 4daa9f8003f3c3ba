/**
 * `sluice up --secure`: the local stack as a secured cluster is — Kafka with SASL/SCRAM-SHA-256 over TLS, the
 * Schema Registry with HTTP basic auth — so that pipelines, lessons and tests can run against security
 * settings before they meet a real cluster's.
 *
 * What it makes, once per stack folder, in `<stack>/secure/` (mode 0700, secrets 0600):
 * - a certificate authority (`ca.pem`, its key `ca.key`) and the broker's certificate for 127.0.0.1 and
 *   localhost signed by it (`server-keystore.pem`: key and chain, as Kafka's PEM keystore reads it), made
 *   with the `openssl` command (Node cannot sign certificates);
 * - `credentials.json`: the client user and password, the broker's own SCRAM user (Kafka's inter-broker
 *   requests, transaction markers included, go through the same authenticated listener) and the
 *   registry's user. Passwords are random, [A-Za-z0-9_-] only (Kafka's `--add-scram` cannot take `,` or `]`).
 *
 * The broker: one SASL_SSL listener for clients and the broker itself, no PLAINTEXT listener (with no
 * authorizer, one would let any local process skip authentication); the KRaft controller listener stays
 * PLAINTEXT on 127.0.0.1 (its SCRAM users would live in the metadata it has to read first). SCRAM users are
 * written when the storage is formatted, so a secure stack has its own data folder (`kafka-data-secure`).
 *
 * The registry: Quarkus basic auth with embedded users (Apicurio 3.0.9 checks `quarkus.http.auth.basic`
 * before OIDC), from `<stack>/config/application.properties` (0600), read from the registry's working
 * folder, so the password is not on its command line; every `/apis/*` path needs a login (a few ccompat
 * reads have no check of their own in 3.0.9). Decisions and sources: docs/decisions.md ("Secure local stack").
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KafkaConfig } from '../kafka/client.js';

/** The SASL mechanism of the secure stack. */
export const SECURE_MECHANISM = 'SCRAM-SHA-256';

export interface SecureCredentials {
  /** The client user (what pipelines log in as). */
  username: string;
  password: string;
  /** The broker's own user, for its requests to itself (transaction markers, replication). */
  brokerUsername: string;
  brokerPassword: string;
  /** The registry's basic-auth user. */
  registryUsername: string;
  registryPassword: string;
}

/** Where a secure stack keeps its material (recorded in stack.json; the secrets stay in credentialsFile). */
export interface SecureInfo {
  /** The CA certificate (PEM) clients trust: `ssl.ca.location`. */
  caLocation: string;
  /** credentials.json (mode 0600). */
  credentialsFile: string;
  saslMechanism: string;
  /** The client user name (not secret); its password is in credentialsFile. */
  username: string;
}

const secret = (): string => randomBytes(24).toString('base64url');

function openssl(args: string[], what: string): void {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  if (r.error) throw new Error(`sluice up --secure needs the openssl command to make its certificates (${r.error.message}). Install it (apt-get install openssl).`);
  if (r.status !== 0) throw new Error(`openssl failed to ${what}: ${r.stderr.trim()}`);
}

/**
 * The secure material of the stack in `dir`: made on first use, then reused (the SCRAM users are fixed in the
 * broker's storage, the CA in clients' settings). Returns where it is and the credentials.
 */
export function secureMaterial(dir: string, log: (l: string) => void): { info: SecureInfo; credentials: SecureCredentials; keystore: string } {
  const d = join(dir, 'secure');
  const info: SecureInfo = { caLocation: join(d, 'ca.pem'), credentialsFile: join(d, 'credentials.json'), saslMechanism: SECURE_MECHANISM, username: 'sluice' };
  const keystore = join(d, 'server-keystore.pem');
  if (existsSync(info.credentialsFile) && existsSync(keystore) && existsSync(info.caLocation)) {
    return { info, credentials: JSON.parse(readFileSync(info.credentialsFile, 'utf8')) as SecureCredentials, keystore };
  }
  log(`Making a certificate authority, the broker's certificate and credentials in ${d} …`);
  rmSync(d, { recursive: true, force: true });
  mkdirSync(d, { recursive: true, mode: 0o700 });
  // x509 -req with -extfile, not req -x509 -addext: independent of the system's openssl.cnf, works on 1.1.1 and 3.x.
  writeFileSync(join(d, 'ca.ext'), 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n');
  writeFileSync(
    join(d, 'server.ext'),
    'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n' +
      // The IP is what clients connect to: librdkafka and Java check it against the SAN, not the CN.
      'subjectAltName=IP:127.0.0.1,DNS:localhost\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n',
  );
  const f = (n: string): string => join(d, n);
  const serial = (): string => `0x${randomBytes(16).toString('hex')}`;
  // genpkey writes PKCS#8 ("BEGIN PRIVATE KEY"): Kafka's PEM keystore cannot load a PKCS#1 RSA key.
  openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', f('ca.key')], 'make the CA key');
  openssl(['req', '-new', '-key', f('ca.key'), '-subj', '/CN=Sluice local CA', '-out', f('ca.csr')], 'make the CA request');
  openssl(['x509', '-req', '-in', f('ca.csr'), '-signkey', f('ca.key'), '-extfile', f('ca.ext'), '-days', '3650', '-sha256', '-set_serial', serial(), '-out', info.caLocation], 'sign the CA');
  openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', f('server.key')], "make the broker's key");
  openssl(['req', '-new', '-key', f('server.key'), '-subj', '/CN=localhost', '-out', f('server.csr')], "make the broker's request");
  openssl(
    ['x509', '-req', '-in', f('server.csr'), '-CA', info.caLocation, '-CAkey', f('ca.key'), '-extfile', f('server.ext'), '-days', '825', '-sha256', '-set_serial', serial(), '-out', f('server.pem')],
    "sign the broker's certificate",
  );
  writeFileSync(keystore, [f('server.key'), f('server.pem'), info.caLocation].map((p) => readFileSync(p, 'utf8')).join(''), { mode: 0o600 });
  for (const k of ['ca.key', 'server.key']) chmodSync(f(k), 0o600);
  const credentials: SecureCredentials = {
    username: info.username,
    password: secret(),
    brokerUsername: 'sluice-broker',
    brokerPassword: secret(),
    registryUsername: 'sluice',
    registryPassword: secret(),
  };
  writeFileSync(info.credentialsFile, JSON.stringify(credentials, null, 2) + '\n', { mode: 0o600 });
  return { info, credentials, keystore };
}

/** The broker's listener and security lines of server.properties, for ports `kafka` and `controller`. */
export function brokerSecurityProperties(kafkaPort: number, controllerPort: number, c: SecureCredentials, keystore: string, caLocation: string): string[] {
  return [
    `listeners=SASL_SSL://127.0.0.1:${kafkaPort},CONTROLLER://127.0.0.1:${controllerPort}`,
    `advertised.listeners=SASL_SSL://127.0.0.1:${kafkaPort}`,
    'controller.listener.names=CONTROLLER',
    'inter.broker.listener.name=SASL_SSL',
    'listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT',
    `sasl.enabled.mechanisms=${SECURE_MECHANISM}`,
    `sasl.mechanism.inter.broker.protocol=${SECURE_MECHANISM}`,
    `listener.name.sasl_ssl.${SECURE_MECHANISM.toLowerCase()}.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="${c.brokerUsername}" password="${c.brokerPassword}";`,
    'ssl.keystore.type=PEM',
    `ssl.keystore.location=${keystore}`,
    'ssl.truststore.type=PEM',
    `ssl.truststore.location=${caLocation}`,
    'ssl.client.auth=none',
  ];
}

/** `kafka.tools.StorageTool format` arguments that create the SCRAM users. */
export function scramUserArgs(c: SecureCredentials): string[] {
  return [c.brokerUsername, c.username].flatMap((name) => [
    '--add-scram',
    `${SECURE_MECHANISM}=[name=${name},password=${name === c.username ? c.password : c.brokerPassword}]`,
  ]);
}

/**
 * Writes (secure) or removes (plain) `<dir>/config/application.properties`, which Apicurio reads from its
 * working folder: basic auth with one embedded user, every /apis/* path authenticated.
 */
export function writeRegistryAuth(dir: string, c: SecureCredentials | undefined): void {
  const file = join(dir, 'config', 'application.properties');
  if (!c) {
    rmSync(file, { force: true });
    return;
  }
  mkdirSync(join(dir, 'config'), { recursive: true, mode: 0o700 });
  writeFileSync(
    file,
    [
      'quarkus.oidc.tenant-enabled=false',
      'quarkus.http.auth.basic=true',
      'quarkus.security.users.embedded.enabled=true',
      'quarkus.security.users.embedded.plain-text=true',
      `quarkus.security.users.embedded.users.${c.registryUsername}=${c.registryPassword}`,
      `quarkus.security.users.embedded.roles.${c.registryUsername}=sr-admin`,
      'quarkus.http.auth.permission.sluice-apis.paths=/apis/*',
      'quarkus.http.auth.permission.sluice-apis.policy=authenticated',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
}

/** librdkafka settings for a client of the secure stack. */
export function secureClientConfig(info: SecureInfo, c: SecureCredentials): KafkaConfig {
  return {
    'security.protocol': 'SASL_SSL',
    'sasl.mechanisms': info.saslMechanism,
    'sasl.username': c.username,
    'sasl.password': c.password,
    'ssl.ca.location': info.caLocation,
  };
}

/** The credentials of a secure stack, read from its credentials file. */
export function readCredentials(info: SecureInfo): SecureCredentials {
  return JSON.parse(readFileSync(info.credentialsFile, 'utf8')) as SecureCredentials;
}
