import { z } from 'zod';
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
  SCHEMA_REGISTRY_URL: z.url().default('http://127.0.0.1:8081/apis/ccompat/v7'),
  VAULT_ADDR: z.url().default('http://127.0.0.1:8200'),
  VAULT_TOKEN: z.string().optional(),
  VAULT_KV_MOUNT: z.string().default('secret'),
  SECRETS_FILE: z.string().default('.ionflux/secrets.enc'),
  SECRETS_KEY_FILE: z.string().default('.ionflux/secrets.key'),
  /** Where services keep table state on disk; default `.ionflux/state/<service>-<instance>`. */
  IONFLUX_STATE_DIR: z.string().optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  METRICS_PORT: port(0),
  /**
   * Exceptions to the outbound policy (shared/net/outbound.ts): hosts, host:port, IPs or CIDRs that
   * connectors may reach although they are loopback, private or reserved. Empty: none.
   */
  OUTBOUND_ALLOWLIST: allowlist.default([]),
});
export type BaseEnv = z.infer<typeof baseEnv>;

export { port, csv };
