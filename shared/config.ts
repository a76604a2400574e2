import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { registerSecret } from './redact.ts';
import { parseAllowlist, type AllowRule } from './net/allowlist.ts';

/** Thrown at start-up when the environment is wrong; names every bad variable at once. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/**
 * Parses the environment once through one zod object whose keys are variable names.
 * Empty strings count as unset, so `FOO=` falls back to the default.
 */
export function parseEnv<S extends z.ZodObject>(schema: S, env: NodeJS.ProcessEnv = process.env): z.infer<S> {
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = schema.safeParse(cleaned);
  if (parsed.success) return parsed.data;
  throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join('.') || '(env)'}: ${i.message}`));
}

const port = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback);
const csv = z.string().transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean));
const flag = z.enum(['true', 'false', '1', '0', 'yes', 'no']).transform((v) => v === 'true' || v === '1' || v === 'yes');
const allowlist = z.string().transform((s, ctx): AllowRule[] => {
  try {
    return parseAllowlist(s);
  } catch (e) {
    ctx.issues.push({ code: 'custom', message: (e as Error).message, input: s });
    return z.NEVER;
  }
});

/** Variables every service shares: where Kafka, the registry and secrets are, and logging. */
export const baseEnv = z.object({
  KAFKA_BROKERS: csv.default(['127.0.0.1:9092']),
  KAFKA_CLIENT_ID: z.string().default('ionflux'),
  KAFKA_TOPIC_PARTITIONS: z.coerce.number().int().min(1).default(3),
  KAFKA_REPLICATION_FACTOR: z.coerce.number().int().min(1).default(1),
  /** SASL: the principal this process is (one per service, the admin for the CLI; see docs/security.md). */
  KAFKA_SASL_MECHANISM: z.string().toLowerCase().pipe(z.enum(['scram-sha-256', 'scram-sha-512', 'plain'])).optional(),
  KAFKA_SASL_USERNAME: z.string().optional(),
  KAFKA_SASL_PASSWORD: z.string().optional(),
  /** The password in a file instead (Docker/Kubernetes secrets); read once at start. */
  KAFKA_SASL_PASSWORD_FILE: z.string().optional(),
  /** TLS to the brokers, verified against the system CAs or KAFKA_SSL_CA_FILE (PEM). */
  KAFKA_SSL: flag.default(false),
  KAFKA_SSL_CA_FILE: z.string().optional(),
  SCHEMA_REGISTRY_URL: z.url().default('http://127.0.0.1:8081/apis/ccompat/v7'),
  VAULT_ADDR: z.url().default('http://127.0.0.1:8200'),
  VAULT_TOKEN: z.string().optional(),
  /** The token in a file instead (Docker secrets); read once at start. */
  VAULT_TOKEN_FILE: z.string().optional(),
  VAULT_KV_MOUNT: z.string().default('secret'),
  SECRETS_FILE: z.string().default('.ionflux/secrets.enc'),
  SECRETS_KEY_FILE: z.string().default('.ionflux/secrets.key'),
  /** Where services keep table state on disk; default `.ionflux/state/<service>-<instance>`. */
  IONFLUX_STATE_DIR: z.string().optional(),
  /** The ingest inbox (shared/ingest/inbox.ts); another name gives a separate hub on the same brokers (tests). */
  IONFLUX_INBOX_TOPIC: z.string().regex(/^ionflux\.inbox\.[a-z0-9._-]{1,100}$/).default('ionflux.inbox.webhooks'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /**
   * Exceptions to the outbound policy (shared/net/outbound.ts): hosts, host:port, IPs or CIDRs that
   * connectors may reach although they are loopback, private or reserved. Empty: none.
   */
  OUTBOUND_ALLOWLIST: allowlist.default([]),
});
export type BaseEnv = z.infer<typeof baseEnv>;

export { port, csv, flag };

/** How a Kafka client proves who it is: SASL credentials, and TLS when the cluster needs it. */
export interface KafkaAuth {
  sasl?: { mechanism: 'scram-sha-256' | 'scram-sha-512' | 'plain'; username: string; password: string };
  ssl?: { ca?: string };
}

type KafkaAuthEnv = Pick<BaseEnv, 'KAFKA_SASL_MECHANISM' | 'KAFKA_SASL_USERNAME' | 'KAFKA_SASL_PASSWORD' | 'KAFKA_SASL_PASSWORD_FILE' | 'KAFKA_SSL' | 'KAFKA_SSL_CA_FILE'>;

/**
 * The client settings the KAFKA_SASL_* and KAFKA_SSL* variables describe (no SASL when no user is
 * set). The password is registered for redaction; a half-configured SASL is a ConfigError.
 */
export function kafkaAuth(env: KafkaAuthEnv): KafkaAuth {
  const problems: string[] = [];
  let sasl: KafkaAuth['sasl'];
  if (env.KAFKA_SASL_USERNAME) {
    let password = env.KAFKA_SASL_PASSWORD;
    if (!password && env.KAFKA_SASL_PASSWORD_FILE) {
      try {
        password = readFileSync(env.KAFKA_SASL_PASSWORD_FILE, 'utf8').trim();
      } catch (e) {
        problems.push(`KAFKA_SASL_PASSWORD_FILE: cannot read ${env.KAFKA_SASL_PASSWORD_FILE} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
      }
    }
    if (!password && problems.length === 0) problems.push('KAFKA_SASL_PASSWORD: required with KAFKA_SASL_USERNAME (or KAFKA_SASL_PASSWORD_FILE)');
    registerSecret(password);
    if (password) sasl = { mechanism: env.KAFKA_SASL_MECHANISM ?? 'scram-sha-256', username: env.KAFKA_SASL_USERNAME, password };
  } else if (env.KAFKA_SASL_PASSWORD || env.KAFKA_SASL_PASSWORD_FILE) {
    problems.push('KAFKA_SASL_USERNAME: required with KAFKA_SASL_PASSWORD');
  }
  let ssl: KafkaAuth['ssl'];
  if (env.KAFKA_SSL) {
    ssl = {};
    if (env.KAFKA_SSL_CA_FILE) {
      try {
        ssl.ca = readFileSync(env.KAFKA_SSL_CA_FILE, 'utf8');
      } catch (e) {
        problems.push(`KAFKA_SSL_CA_FILE: cannot read ${env.KAFKA_SSL_CA_FILE} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
      }
    }
  } else if (env.KAFKA_SSL_CA_FILE) problems.push('KAFKA_SSL: set KAFKA_SSL=true to use KAFKA_SSL_CA_FILE');
  if (problems.length) throw new ConfigError(problems);
  return { ...(sasl ? { sasl } : {}), ...(ssl ? { ssl } : {}) };
}

/** Where `make up` writes the settings of the hub it started (IONFLUX_ENV_DIR, default `.ionflux`). */
export const envDir = (env: NodeJS.ProcessEnv = process.env) => env.IONFLUX_ENV_DIR ?? '.ionflux';

/** KEY=value lines (blank lines and # comments skipped; no quoting, no expansion). */
export function readEnvFile(file: string): Record<string, string> {
  if (!existsSync(file)) return {};
  const out: Record<string, string> = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^\s*([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!.trim();
  }
  return out;
}

// Each group is taken from the file only when the environment sets none of its variables, so a
// broker, a secret store or a registry is never half from the environment, half from the file.
const GROUPS: { file: string; keys: string[] }[] = [
  { file: 'kafka.env', keys: ['KAFKA_BROKERS', 'KAFKA_SASL_MECHANISM', 'KAFKA_SASL_USERNAME', 'KAFKA_SASL_PASSWORD', 'KAFKA_SASL_PASSWORD_FILE', 'KAFKA_SSL', 'KAFKA_SSL_CA_FILE'] },
  { file: 'hub.env', keys: ['VAULT_ADDR', 'VAULT_TOKEN', 'VAULT_TOKEN_FILE'] },
  { file: 'hub.env', keys: ['SCHEMA_REGISTRY_URL'] },
];

/**
 * The environment completed from the files `make up` writes (`.ionflux/kafka.env`: the broker and
 * the admin's credentials; `.ionflux/hub.env`: the secret store and registry the running hub
 * uses), so the CLI or a client in a second terminal needs nothing exported. A variable set to an
 * empty string counts as set (e.g. `VAULT_TOKEN=` picks the local file store).
 */
export function withLocalHubEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const merged: NodeJS.ProcessEnv = { ...env };
  for (const g of GROUPS) {
    if (g.keys.some((k) => env[k] !== undefined)) continue;
    const values = readEnvFile(join(envDir(env), g.file));
    for (const k of g.keys) if (values[k] !== undefined) merged[k] = values[k];
  }
  return merged;
}
