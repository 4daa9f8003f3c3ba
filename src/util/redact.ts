/**
 * Redaction of secret-bearing settings wherever options are shown, logged or stored (explain(), the
 * checkpoint's `offsets/N`, error messages). Spark redacts by key name (`spark.redaction.regex`, default
 * `(?i)secret|password|token|access[.]key`) and prints `*********(redacted)`; Sluice does the same with a
 * wider pattern, because its options are Kafka client settings (librdkafka) and registry credentials.
 */

/** What a redacted value is replaced with: Spark's text, so logs read the same. */
export const REDACTED = '*********(redacted)';

/**
 * Key patterns that carry secrets. Keys are matched with or without a `kafka.` (or `deadLetter.kafka.` …)
 * prefix, case-insensitively.
 * - `password`, `passwd`, `secret`, `token`, `credential`: any setting named after a secret;
 * - `sasl.*`: every SASL setting (`sasl.jaas.config` holds a password; `sasl.oauthbearer.*` client secrets);
 * - `*.pem`, `*.key*`: inline PEM certificates and private keys, and key locations/passwords
 *   (`ssl.key.pem`, `ssl.key.location`, `ssl.key.password`, `ssl.keystore.*`);
 * - basic/bearer auth and authorization headers (`basic.auth.user.info`, `basicAuth`, `bearer.auth.*`);
 * - API keys and private keys named without a dot (`apiKey`, `privateKey`).
 */
const SECRET_KEY = /password|passwd|secret|token|credential|(?:^|\.)sasl\.|\.pem$|\.key|basic\.?auth|bearer|authorization|user\.info|api[._-]?key|private[._-]?key/i;

/** True when a setting with this name may hold a secret and must not be shown. */
export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key);
}

/** A copy of `options` with every secret-bearing value replaced by {@link REDACTED}. */
export function redactOptions<V>(options: Readonly<Record<string, V>>): Record<string, V | string> {
  const out: Record<string, V | string> = {};
  for (const [k, v] of Object.entries(options)) out[k] = isSecretKey(k) ? REDACTED : v;
  return out;
}

/** A URL without the password of its user info (`http://user:pw@host` → `http://user:*****@host`), for messages. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/@:]*):[^/@]*@/i, `$1:${REDACTED}@`);
}
