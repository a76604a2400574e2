import { z } from 'zod';
import { commandEnvShape } from '../../shared/commands/service.ts';
import { baseEnv, csv, port } from '../../shared/config.ts';
import { PARTITIONS_AT_ONCE } from '../../shared/commands/worker.ts';

const ms = (fallback: number) => z.coerce.number().int().nonnegative().default(fallback);

/**
 * tiktok-sync's environment (docs/tiktok-sync.md). Without TIKTOK_CLIENT_KEY / TIKTOK_CLIENT_SECRET
 * the service still starts: connecting answers 503 naming them, commands fail `not_connected`.
 */
export const tiktokSyncEnv = baseEnv.extend({
  ...commandEnvShape,
  TIKTOK_SYNC_PORT: port(8094),
  TIKTOK_SYNC_HOST: z.string().default('127.0.0.1'),
  /** Stable per running instance: names its Kafka transactional id. */
  TIKTOK_SYNC_INSTANCE_ID: z.string().regex(/^[a-z0-9_-]{1,40}$/).default('0'),
  /** The command topic is ionflux.cmd.<TIKTOK_SERVICE> (another name keeps a bench off the real one). */
  TIKTOK_SERVICE: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/).default('tiktok'),
  /** Names the consumer groups and transactional ids every instance of one deployment shares. */
  TIKTOK_SYNC_GROUP: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,80}$/).default('ionflux-tiktok-sync'),
  TIKTOK_CLIENT_KEY: z.string().min(1).optional(),
  TIKTOK_CLIENT_SECRET: z.string().min(1).optional(),
  TIKTOK_SCOPES: csv.default(['user.info.basic', 'user.info.stats', 'video.list', 'video.publish']),
  TIKTOK_API_BASE_URL: z.url().default('https://open.tiktokapis.com'),
  TIKTOK_AUTHORIZE_URL: z.url().default('https://www.tiktok.com/v2/auth/authorize/'),
  /** Where browsers reach this service: the redirect URI is <PUBLIC_BASE_URL>/tiktok/callback. Default http://127.0.0.1:<TIKTOK_SYNC_PORT>. */
  PUBLIC_BASE_URL: z.url().optional(),
  /** How long a connect link (its signed state) stays valid. */
  TIKTOK_CONNECT_TTL_MS: ms(15 * 60_000),
  /** Refresh this long before the access token (2 h) expires. */
  TIKTOK_REFRESH_MARGIN_MS: ms(30 * 60_000),
  /** A command that met an invalid token waits this long for the connection's owner to refresh it. */
  TIKTOK_REFRESH_WAIT_MS: ms(15_000),
  /** A refresh claimed by an instance that went silent is taken over after this long. */
  TIKTOK_CLAIM_STALE_MS: ms(60_000),
  /** Polling of every linked account's videos; 0 turns it off. */
  TIKTOK_POLL_INTERVAL_MS: ms(5 * 60_000),
  /** Pages of 20 videos (newest first) read per account per poll. */
  TIKTOK_POLL_MAX_PAGES: z.coerce.number().int().min(1).max(1000).default(50),
  TIKTOK_PUBLISH_POLL_MS: ms(5000),
  TIKTOK_PUBLISH_TIMEOUT_MS: ms(10 * 60_000),
  TIKTOK_UPLOAD_MAX_BYTES: z.coerce.number().int().positive().default(256 * 1024 * 1024),
  TIKTOK_UPLOAD_CHUNK_BYTES: z.coerce.number().int().min(5 * 1024 * 1024).max(64 * 1024 * 1024).default(10 * 1024 * 1024),
  /** Per-endpoint limits as JSON, e.g. {"video.list": 600}; defaults are TikTok's documented ones. */
  TIKTOK_RATE_LIMITS: z.string().optional(),
  /** How long an endpoint rests after TikTok answered 429 without a Retry-After (TikTok sends none). */
  TIKTOK_THROTTLE_WAIT_MS: ms(10_000),
  TIKTOK_ACTION_TIMEOUT_MS: ms(15 * 60_000),
  TIKTOK_RETRY_MAX_ATTEMPTS: z.coerce.number().int().positive().default(4),
  TIKTOK_RETRY_MAX_WAIT_MS: ms(30_000),
  /** Per workspace: commands per second and burst before that workspace's commands wait. */
  TIKTOK_RATE_PER_SECOND: z.coerce.number().positive().default(10),
  TIKTOK_RATE_BURST: z.coerce.number().int().positive().default(20),
  TIKTOK_PARTITIONS_CONCURRENTLY: z.coerce.number().int().positive().default(PARTITIONS_AT_ONCE),
  /**
   * Tests only: right before a connection is marked needs_reauthorization (after its last check
   * for newer tokens), POST `{workspace}` here and wait for the answer, so a test can reconnect in
   * exactly that moment. Unset in every deployment.
   */
  TIKTOK_TEST_REAUTH_GATE_URL: z.url().optional(),
});
export type TikTokSyncEnv = z.infer<typeof tiktokSyncEnv>;

/** The public base URL, defaulting to this service's own address. */
export const publicBaseUrl = (env: TikTokSyncEnv) => (env.PUBLIC_BASE_URL ?? `http://127.0.0.1:${env.TIKTOK_SYNC_PORT}`).replace(/\/$/, '');
