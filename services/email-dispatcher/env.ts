import { z } from 'zod';
import { commandEnvShape } from '../../shared/commands/service.ts';
import { baseEnv, port } from '../../shared/config.ts';
import { PARTITIONS_AT_ONCE } from '../../shared/commands/worker.ts';

const flag = z.enum(['true', 'false']).transform((v) => v === 'true');

/** How providers are reached: also parsed alone by the healthcheck `ionflux connect email` runs. */
export const providerEnvShape = {
  /** The platform account's provider; a workspace's own credentials override it. */
  EMAIL_PROVIDER: z.enum(['smtp', 'sendgrid']).default('smtp'),
  /** e.g. smtp://127.0.0.1:2525, smtp://user:pass@host:587 (STARTTLS), smtps://user:pass@host:465 (TLS). */
  EMAIL_SMTP_URL: z.string().regex(/^smtps?:\/\//, 'an smtp:// or smtps:// URL').optional(),
  /** Refuse an smtp:// server that does not offer STARTTLS. */
  EMAIL_SMTP_REQUIRE_TLS: flag.default(false),
  EMAIL_SMTP_TLS_REJECT_UNAUTHORIZED: flag.default(true),
  /** Pooled connections per SMTP account. */
  EMAIL_SMTP_MAX_CONNECTIONS: z.coerce.number().int().min(1).max(50).default(5),
  EMAIL_SMTP_TIMEOUT_MS: z.coerce.number().int().positive().default(30_000),
  SENDGRID_API_KEY: z.string().min(1).optional(),
  SENDGRID_BASE_URL: z.url().default('https://api.sendgrid.com'),
  SENDGRID_TIMEOUT_MS: z.coerce.number().int().positive().default(30_000),
};

/** The dispatcher's environment (docs/email.md lists each variable). */
export const emailDispatcherEnv = baseEnv.extend({
  ...providerEnvShape,
  ...commandEnvShape,
  /** The platform account's sender, e.g. "IONFLUX <noreply@example.com>" or noreply@example.com. */
  EMAIL_FROM: z.string().min(3).optional(),
  /** The command topic is ionflux.cmd.<this>; only benchmarks change it, to run beside a live hub. */
  EMAIL_WORKER_SERVICE: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/).default('email'),
  EMAIL_INSTANCE_ID: z.string().regex(/^[a-z0-9_-]{1,40}$/).default('0'),
  EMAIL_PORT: port(8092),
  EMAIL_HOST: z.string().default('127.0.0.1'),
  /** Where recipients reach the unsubscribe endpoint (the public address of EMAIL_PORT). */
  EMAIL_PUBLIC_URL: z.url().optional(),
  /** Bearer token of the platform on POST /v1/emails/send: its sends are platform notifications. */
  EMAIL_API_TOKEN: z.string().min(16).optional(),
  /** Messages per second per provider account, and burst. */
  EMAIL_RATE_PER_SECOND: z.coerce.number().positive().default(20),
  EMAIL_RATE_BURST: z.coerce.number().int().positive().default(20),
  /** Messages per second per workspace, and burst (on top of the provider's). */
  EMAIL_WORKSPACE_RATE_PER_SECOND: z.coerce.number().positive().default(10),
  EMAIL_WORKSPACE_RATE_BURST: z.coerce.number().int().positive().default(20),
  /** Recipients per SendGrid request (personalizations; SendGrid takes at most 1000). */
  EMAIL_SENDGRID_BATCH_SIZE: z.coerce.number().int().min(1).max(1000).default(500),
  /** Units of one bulk command in flight at once. */
  EMAIL_SEND_CONCURRENCY: z.coerce.number().int().min(1).max(50).default(5),
  /** How long one message may wait on a throttling or unavailable provider before it is listed failed. */
  EMAIL_PROVIDER_WAIT_MAX_MS: z.coerce.number().int().positive().default(120_000),
  /**
   * How long a bulk's provider may take nothing while refusing every attempt (of two units or
   * more) before the bulk stops, listing those not sent; at most EMAIL_PROVIDER_WAIT_MAX_MS.
   */
  EMAIL_PROVIDER_OUTAGE_MS: z.coerce.number().int().positive().default(30_000),
  /** One command, bulk included. */
  EMAIL_ACTION_TIMEOUT_MS: z.coerce.number().int().positive().default(30 * 60_000),
  EMAIL_RETRY_MAX_ATTEMPTS: z.coerce.number().int().positive().default(3),
  EMAIL_PARTITIONS_CONCURRENTLY: z.coerce.number().int().positive().default(PARTITIONS_AT_ONCE),
  /** Attachments fetched by URL: largest size, and URL prefixes trusted even on private addresses (stored artifacts). */
  EMAIL_ATTACHMENT_MAX_BYTES: z.coerce.number().int().positive().default(10 * 1024 * 1024),
  EMAIL_TRUSTED_ATTACHMENT_PREFIXES: z.string().default('http://127.0.0.1:8091/artifacts/'),
  /** Lets workspace SMTP servers and attachment URLs be loopback or private addresses (local tests). */
  EMAIL_ALLOW_PRIVATE_HOSTS: flag.default(false),
});
export type EmailDispatcherEnv = z.infer<typeof emailDispatcherEnv>;
