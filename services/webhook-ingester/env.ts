import { z } from 'zod';
import { baseEnv, port } from '../../shared/config.ts';

const optionalTime = z.iso.datetime({ offset: true }).optional();

/** The ingester's environment; vendor secrets may instead live in the secret store (platform/<vendor>). */
export const ingesterEnv = baseEnv.extend({
  INGESTER_PORT: port(8080),
  INGESTER_HOST: z.string().default('127.0.0.1'),
  INGESTER_BODY_LIMIT: z.coerce.number().int().positive().default(2 * 1024 * 1024),
  /** Kafka must acknowledge within this; vendors time out at 5 s (Shopify). */
  INGESTER_PUBLISH_TIMEOUT_MS: z.coerce.number().int().positive().default(4000),
  /** Above this many deliveries in flight, answer 503 at once instead of queueing more. */
  INGESTER_MAX_IN_FLIGHT: z.coerce.number().int().positive().default(5000),
  /** Kafka transactions in flight at once (one transactional producer each; an entity's deliveries always share one). Measured: 1 is as fast as 3 on 2 cores (CPU-bound), and makes fewer transactions. */
  INGESTER_PRODUCERS: z.coerce.number().int().min(1).max(16).default(1),
  /** Stable per running instance: it names the Kafka transactional id. */
  INGESTER_INSTANCE_ID: z.string().regex(/^[a-z0-9_-]{1,40}$/).default('0'),
  INGESTER_PUBLIC_URL: z.url().optional(),
  WEBHOOK_DEDUPE_HOURS: z.coerce.number().positive().default(72),
  SECRET_CACHE_MS: z.coerce.number().int().nonnegative().default(30_000),
  SHOPIFY_API_SECRET: z.string().optional(),
  SHOPIFY_API_SECRET_PREVIOUS: z.string().optional(),
  SHOPIFY_API_SECRET_PREVIOUS_UNTIL: optionalTime,
  TIKTOK_CLIENT_SECRET: z.string().optional(),
  TIKTOK_CLIENT_SECRET_PREVIOUS: z.string().optional(),
  TIKTOK_CLIENT_SECRET_PREVIOUS_UNTIL: optionalTime,
  SENDGRID_WEBHOOK_PUBLIC_KEY: z.string().optional(),
  SENDGRID_WEBHOOK_PUBLIC_KEY_PREVIOUS: z.string().optional(),
  SENDGRID_WEBHOOK_PUBLIC_KEY_PREVIOUS_UNTIL: optionalTime,
  WHATSAPP_APP_SECRET: z.string().optional(),
  WHATSAPP_APP_SECRET_PREVIOUS: z.string().optional(),
  WHATSAPP_APP_SECRET_PREVIOUS_UNTIL: optionalTime,
  WHATSAPP_VERIFY_TOKEN: z.string().optional(),
});
export type IngesterEnv = z.infer<typeof ingesterEnv>;
