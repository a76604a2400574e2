import { z } from 'zod';
import { commandEnvShape } from '../../shared/commands/service.ts';
import { baseEnv, csv, port } from '../../shared/config.ts';
import { PARTITIONS_AT_ONCE } from '../../shared/commands/worker.ts';

const ms = (fallback: number) => z.coerce.number().int().nonnegative().default(fallback);

/** The read and write scopes SPEC.md names for shopify-sync (orders, products, customers, inventory, themes, script tags). */
export const DEFAULT_SCOPES = ['read_orders', 'write_orders', 'read_products', 'write_products', 'read_customers', 'read_inventory', 'write_inventory', 'read_locations', 'read_themes', 'write_themes', 'read_script_tags', 'write_script_tags'];

/**
 * shopify-sync's environment (docs/shopify-sync.md). Without SHOPIFY_API_KEY / SHOPIFY_API_SECRET
 * the service still starts: installing answers 503 naming them, commands fail `not_connected`.
 */
export const shopifySyncEnv = baseEnv.extend({
  ...commandEnvShape,
  SHOPIFY_SYNC_PORT: port(8093),
  SHOPIFY_SYNC_HOST: z.string().default('127.0.0.1'),
  /** Stable per running instance: names its Kafka transactional id. */
  SHOPIFY_SYNC_INSTANCE_ID: z.string().regex(/^[a-z0-9_-]{1,40}$/).default('0'),
  /** The command topic is ionflux.cmd.<SHOPIFY_SERVICE> (another name keeps a bench off the real one). */
  SHOPIFY_SERVICE: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/).default('shopify'),
  /** Names the consumer groups and transactional ids every instance of one deployment shares. */
  SHOPIFY_SYNC_GROUP: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,80}$/).default('ionflux-shopify-sync'),
  SHOPIFY_API_KEY: z.string().min(1).optional(),
  SHOPIFY_API_SECRET: z.string().min(1).optional(),
  SHOPIFY_SCOPES: csv.default(DEFAULT_SCOPES),
  SHOPIFY_API_VERSION: z.string().regex(/^\d{4}-\d{2}$/).default('2026-07'),
  /** Unset in production. Set, every request the SDK makes to https://<shop>/<path> goes to <this>/<shop>/<path> (tests/simulators/shopify/README.md). */
  SHOPIFY_ADMIN_BASE_URL: z.url().optional(),
  /** Where browsers and Shopify reach this service: the redirect URI is <PUBLIC_BASE_URL>/shopify/callback. Default http://127.0.0.1:<SHOPIFY_SYNC_PORT>. */
  PUBLIC_BASE_URL: z.url().optional(),
  /** Where the webhook subscriptions registered on install point: the ingester's public route. Default <PUBLIC_BASE_URL>/webhooks/shopify. */
  SHOPIFY_WEBHOOK_URL: z.url().optional(),
  /** How long an install link (its sealed state) stays valid. */
  SHOPIFY_INSTALL_TTL_MS: ms(15 * 60_000),
  /** Refresh the offline token this long before it expires (Shopify's expiring offline tokens live 60 min). */
  SHOPIFY_REFRESH_MARGIN_MS: ms(5 * 60_000),
  /** Incremental polling of every linked shop (the fallback for missed webhooks); 0 turns it off. */
  SHOPIFY_POLL_INTERVAL_MS: ms(5 * 60_000),
  /** The full catalog sync per linked shop (nightly); 0 turns it off. */
  SHOPIFY_FULL_SYNC_INTERVAL_MS: ms(24 * 3600_000),
  /** Entities per GraphQL page, or fewer where a page would pass Shopify's single-query cost limit (sync/run.ts, pageFirst). */
  SHOPIFY_PAGE_SIZE: z.coerce.number().int().min(1).max(250).default(50),
  /** A bulk operation is polled this often until it finishes. */
  SHOPIFY_BULK_POLL_MS: ms(2000),
  SHOPIFY_BULK_TIMEOUT_MS: ms(60 * 60_000),
  SHOPIFY_ACTION_TIMEOUT_MS: ms(2 * 3600_000),
  SHOPIFY_RETRY_MAX_ATTEMPTS: z.coerce.number().int().positive().default(4),
  SHOPIFY_RETRY_MAX_WAIT_MS: ms(30_000),
  /** Per workspace: commands per second and burst before that workspace's commands wait. */
  SHOPIFY_RATE_PER_SECOND: z.coerce.number().positive().default(10),
  SHOPIFY_RATE_BURST: z.coerce.number().int().positive().default(20),
  SHOPIFY_PARTITIONS_CONCURRENTLY: z.coerce.number().int().positive().default(PARTITIONS_AT_ONCE),
  /**
   * Tests only: right before a connection is marked needs_reauthorization (after its last check
   * for a newer token), POST `{workspace}` here and wait for the answer, so a test can reinstall in
   * exactly that moment. Unset in every deployment.
   */
  SHOPIFY_TEST_REAUTH_GATE_URL: z.url().optional(),
});
export type ShopifySyncEnv = z.infer<typeof shopifySyncEnv>;

/** The public base URL, defaulting to this service's own address. */
export const publicBaseUrl = (env: ShopifySyncEnv) => (env.PUBLIC_BASE_URL ?? `http://127.0.0.1:${env.SHOPIFY_SYNC_PORT}`).replace(/\/$/, '');
