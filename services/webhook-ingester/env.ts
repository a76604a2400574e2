import { z } from 'zod';
import { baseEnv, port } from '../../shared/config.ts';

const optionalTime = z.iso.datetime({ offset: true }).optional();

/** The ingester's environment; vendor secrets may instead live in the secret store (platform/<vendor>). */
const int = (fallback: number) => z.coerce.number().int().positive().default(fallback);

export const ingesterEnv = baseEnv.extend({
  /** The public port: webhook routes only. */
  INGESTER_PORT: port(8080),
  INGESTER_HOST: z.string().default('127.0.0.1'),
  /** /healthz, /readyz, /metrics: never on the public port (8081 is the schema registry's). */
  INGESTER_OPS_PORT: port(8089),
  INGESTER_OPS_HOST: z.string().default('127.0.0.1'),
  INGESTER_BODY_LIMIT: int(2 * 1024 * 1024),
  /** Kafka must acknowledge within this; vendors time out at 5 s (Shopify). */
  INGESTER_PUBLISH_TIMEOUT_MS: int(4000),
  /** Requests counted from arrival (before the body is read) until answered; above it, 503 at once. */
  INGESTER_MAX_IN_FLIGHT: int(5000),
  /** Body bytes held at once across all requests being read or worked on; a request that would pass it gets 503. */
  INGESTER_MAX_BUFFERED_BYTES: int(64 * 1024 * 1024),
  /** Open connections; more are closed at once by the server. */
  INGESTER_MAX_CONNECTIONS: int(4096),
  /** The request line and headers must arrive within this. */
  INGESTER_HEADERS_TIMEOUT_MS: int(10_000),
  /** The whole request (headers and body) must arrive within this; vendors wait 5-10 s for an answer anyway. */
  INGESTER_REQUEST_TIMEOUT_MS: int(15_000),
  /**
   * What this process runs: `edge` (the HTTP side: verify, append to the inbox, answer), `processor`
   * (the inbox consumer group that publishes events exactly once), or `all` (both, the default).
   */
  INGESTER_ROLE: z.enum(['all', 'edge', 'processor']).default('all'),
  /**
   * Idempotent producers the edge appends through side by side (an entity's appends always share
   * one, so they stay in order): while one waits for its acknowledgement the next sends.
   */
  INGESTER_EDGE_PRODUCERS: z.coerce.number().int().min(1).max(16).default(1),
  /**
   * The processor's inbox fetches wait for this many bytes or INGESTER_PROCESSOR_FETCH_MAX_WAIT_MS,
   * whichever comes first: under load a transaction then covers more deliveries (fewer commit
   * markers for the broker to write); when idle an event is readable at most that much later.
   */
  INGESTER_PROCESSOR_FETCH_MIN_BYTES: z.coerce.number().int().min(1).default(1_048_576),
  INGESTER_PROCESSOR_FETCH_MAX_WAIT_MS: z.coerce.number().int().min(0).max(1000).default(50),
  /**
   * INGESTER_ROLE=all, Linux: the processor thread's nice value (0-19; 0, the default, is the
   * process's own). Higher lets the edge's answers go first when the cores are busy: in one
   * make bench-ingest pair, nice 10 answered 6,711 deliveries/s against 5,132 at nice 0, while
   * its processor committed 4,521/s against 4,980, so a burst waits in the inbox instead of at
   * the vendor. It is relative to every process on the machine, not only this one's edge.
   */
  INGESTER_PROCESSOR_NICE: z.coerce.number().int().min(0).max(19).default(0),
  /** Deliveries whose answer this process remembers, so its own retries answer `duplicate` (the processor dedupes regardless). */
  INGESTER_RECENT_ANSWERS: int(20_000),
  /** Stable per running instance: it names the state directory. */
  INGESTER_INSTANCE_ID: z.string().regex(/^[a-z0-9_-]{1,40}$/).default('0'),
  /** At most the 7 days the delivery markers' topic keeps them: a longer window would hold only until a processor rebuilt its store from the topic. */
  WEBHOOK_DEDUPE_HOURS: z.coerce.number().positive().max(168, 'at most 168 (the 7 days ionflux.state.webhook-deliveries keeps its markers)').default(72),
  SECRET_CACHE_MS: z.coerce.number().int().nonnegative().default(30_000),
  /** Secret store paths (vendor secrets, endpoint and account keys) kept in the cache at most. */
  SECRET_CACHE_MAX_ENTRIES: int(10_000),
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
})
  .refine((e) => e.INGESTER_HEADERS_TIMEOUT_MS <= e.INGESTER_REQUEST_TIMEOUT_MS, { path: ['INGESTER_HEADERS_TIMEOUT_MS'], message: 'must not exceed INGESTER_REQUEST_TIMEOUT_MS' })
  // A replaced secret verifies until a time, never for good: <VAR>_PREVIOUS needs <VAR>_PREVIOUS_UNTIL.
  .superRefine((e, ctx) => {
    for (const name of ['SHOPIFY_API_SECRET', 'TIKTOK_CLIENT_SECRET', 'SENDGRID_WEBHOOK_PUBLIC_KEY', 'WHATSAPP_APP_SECRET'] as const) {
      if (e[`${name}_PREVIOUS`] && !e[`${name}_PREVIOUS_UNTIL`]) ctx.addIssue({ code: 'custom', path: [`${name}_PREVIOUS_UNTIL`], message: `required with ${name}_PREVIOUS (until when the previous secret still verifies)` });
    }
  });
export type IngesterEnv = z.infer<typeof ingesterEnv>;
