import type { KafkaTable } from '../../../shared/bus/table/table.ts';
import type { WorkspaceConnector } from '../../../shared/commands/state.ts';
import { describeError } from '../../../shared/errors.ts';
import type { EventCodec } from '../../../shared/events/codec.ts';
import type { Logger } from '../../../shared/logger.ts';
import { forgetSecret } from '../../../shared/redact.ts';
import type { SecretStore } from '../../../shared/secrets/index.ts';
import { storeRefreshed } from '../../../shared/secrets/oauth-tokens.ts';
import { grantRefused, OAuthRefused, refreshTokens, type OAuthConfig } from '../api/oauth.ts';
import { CONNECTIONS_TOPIC, type Connection } from '../state/connections.ts';
import { fenceMarks, markNeedsReauth, type MarkProducer } from '../tokens/reauth.ts';
import { readTokens, writeTokens, type StoredTokens } from '../tokens/vault.ts';
import type { FencedWriter } from '../../../shared/bus/types.ts';

export interface RefreshDeps {
  store: SecretStore;
  codec: EventCodec;
  logger: Logger;
  oauth: () => OAuthConfig | null;
  workspaceConnectors: KafkaTable<WorkspaceConnector>;
  connectUrl: (ws: string) => Promise<string>;
  instanceId: string;
  onRefresh?: (outcome: 'refreshed' | 'adopted' | 'needs_reauthorization' | 'retry') => void;
  /** How long a failing secret store is tried again before new tokens wait for the next attempt (60 s). */
  storeRetryMs?: number;
  /** The workspace's marking producer (tokens/reauth.ts): a refusal marks through it, new tokens fence it. */
  markProducer: (ws: string) => MarkProducer;
  /** Tests only (TIKTOK_TEST_REAUTH_GATE_URL): awaited right before a connection is marked needs_reauthorization. */
  beforeMark?: (ws: string) => Promise<void>;
}

/** Tokens TikTok issued that are not in the secret store yet, and the generation (`issued_at`) they replace. */
export interface Unstored {
  tokens: StoredTokens;
  replaces: number;
}

/**
 * What happened: the connection's next record, `retry` (TikTok unreachable or refusing the app
 * itself, or new tokens not stored yet: `unstored`, to be stored by the next attempt) or `gone`
 * (disconnected).
 */
export type RefreshResult = { next: Connection } | { retry: true; unstored?: Unstored } | { gone: true };

export const connectionRecord = (c: Connection) => ({ record: { topic: CONNECTIONS_TOPIC, key: c.workspace_id, value: Buffer.from(JSON.stringify(c)) } });

export const fromTokens = (c: Pick<Connection, 'workspace_id'>, t: StoredTokens): Connection => ({
  workspace_id: c.workspace_id, open_id: t.open_id, scope: t.scope, status: 'active', issued_at: t.issued_at,
  access_expires_at: t.access_expires_at, refresh_expires_at: t.refresh_expires_at, updated_at: Date.now(),
});

/**
 * Refreshes one connection's tokens as its owner. The claim is written through the partition's
 * fenced writer first, so an instance that lost the partition cannot get as far as calling TikTok.
 * Tokens go to the secret store before the connection record, so a refresh whose record was
 * fenced is found there by the next owner instead of being done again. TikTok rotates the refresh
 * token at every refresh (the one sent stops working), so tokens it issued are never dropped: a
 * store that cannot be read or written for a while gets them on the next attempt (`unstored`),
 * which stores them instead of refreshing again.
 */
export async function refreshConnection(d: RefreshDeps, writer: FencedWriter, c: Connection, unstored?: Unstored): Promise<RefreshResult> {
  const cfg = d.oauth();
  if (!cfg && !unstored) return { retry: true };
  await writer.send([connectionRecord({ ...c, refreshing: { by: d.instanceId, since: Date.now() }, refresh_requested: undefined, updated_at: Date.now() })]);
  if (unstored) return keep(d, writer, c, unstored);
  const held = await readTokens(d.store, c.workspace_id);
  if (!held) return forget(d, writer, c);
  if (held.issued_at > c.issued_at) return adopt(d, writer, c, held);
  let fresh;
  try {
    fresh = await refreshTokens(cfg!, held.refresh_token);
  } catch (e) {
    if (grantRefused(e)) return refused(d, writer, c, held, e.message);
    if (e instanceof OAuthRefused) {
      // The app's own problem (invalid_client after a secret rotation, a wrong base URL's 404...):
      // every connection would be refused alike, and marking them would make every user connect
      // again for what the operator fixes. Retried until it is fixed.
      d.logger.error({ workspace: c.workspace_id, error: e.error, detail: e.message }, 'TikTok refused the app, not the grant: check TIKTOK_CLIENT_KEY, TIKTOK_CLIENT_SECRET and TIKTOK_API_BASE_URL; will retry');
      d.onRefresh?.('retry');
      return { retry: true };
    }
    d.logger.warn({ workspace: c.workspace_id, error: describeError(e) }, 'token refresh failed; will retry');
    d.onRefresh?.('retry');
    return { retry: true };
  }
  return keep(d, writer, c, { tokens: { ...fresh, issued_at: Date.now() }, replaces: held.issued_at });
}

/** Stores tokens TikTok just issued (unless a reconnect replaced the generation they refresh), then the record. */
async function keep(d: RefreshDeps, writer: FencedWriter, c: Connection, u: Unstored): Promise<RefreshResult> {
  let current: StoredTokens | null;
  try {
    current = await readRetried(d, c.workspace_id);
    if (current?.issued_at === u.replaces) await storeRefreshed(() => writeTokens(d.store, c.workspace_id, u.tokens), { forMs: d.storeRetryMs });
  } catch (e) {
    d.logger.error({ workspace: c.workspace_id, error: describeError(e) }, 'tokens TikTok just issued could not be stored yet; kept in memory, the next attempt stores them');
    d.onRefresh?.('retry');
    return { retry: true, unstored: u };
  }
  // Disconnected while we refreshed (its tokens deleted): nothing to keep.
  if (!current) return forget(d, writer, c);
  // A reconnect replaced the tokens while we refreshed: theirs win.
  if (current.issued_at !== u.replaces) return adopt(d, writer, c, current);
  // TikTok retired the refresh token these replace: it no longer needs masking (shared/redact.ts).
  if (current.refresh_token !== u.tokens.refresh_token) forgetSecret(current.refresh_token);
  // A command's refusal of the tokens these replace, marking right now, must not commit after them.
  await fenceMarks(d.markProducer, c.workspace_id);
  const next = fromTokens(c, u.tokens);
  await writer.send([connectionRecord(next)]);
  d.onRefresh?.('refreshed');
  d.logger.info({ workspace: c.workspace_id, open_id: c.open_id, access_expires_at: new Date(next.access_expires_at).toISOString() }, 'tiktok token refreshed');
  return { next };
}

/**
 * TikTok refused the grant. Tokens stored meanwhile (a reconnect, or the previous owner's refresh
 * finishing after a handover) are the reason more often than not: those are adopted. Only the
 * generation refused is marked, as a compare-and-set (markNeedsReauth): tokens stored after the
 * last check fence the marking, so a reconnect finishing at that moment is never overwritten.
 */
async function refused(d: RefreshDeps, writer: FencedWriter, c: Connection, held: StoredTokens, reason: string): Promise<RefreshResult> {
  // This instance lost the partition meanwhile: its next owner decides.
  if (writer.dead) return { retry: true };
  const r = await markNeedsReauth(d, () => readRetried(d, c.workspace_id), c, held.issued_at, reason, `tiktok-sync:${d.instanceId}`);
  if ('gone' in r) return forget(d, writer, c);
  if ('superseded' in r) {
    d.logger.info({ workspace: c.workspace_id, open_id: c.open_id }, 'TikTok refused tokens the workspace has replaced since (connected again); the new ones are kept, nothing is marked');
    return adopt(d, writer, c, r.superseded);
  }
  d.onRefresh?.('needs_reauthorization');
  d.logger.warn({ workspace: c.workspace_id, open_id: c.open_id, reason }, 'tiktok connection needs re-authorization');
  return { next: r.marked };
}

/** Newer tokens than the record says (a reconnect, or a refresh whose record was fenced). */
async function adopt(d: RefreshDeps, writer: FencedWriter, c: Connection, t: StoredTokens): Promise<RefreshResult> {
  const next = fromTokens(c, t);
  await writer.send([connectionRecord(next)]);
  d.onRefresh?.('adopted');
  return { next };
}

/** Disconnected (its tokens deleted): the connection record goes too, nothing to refresh. */
async function forget(d: RefreshDeps, writer: FencedWriter, c: Connection): Promise<RefreshResult> {
  d.logger.info({ workspace: c.workspace_id }, 'tiktok connection has no tokens any more; forgetting it');
  await writer.send([{ record: { topic: CONNECTIONS_TOPIC, key: c.workspace_id, value: null } }]);
  return { gone: true };
}

/** A read of the stored tokens, tried again like the write (a leader change must not cost a refreshed grant). */
async function readRetried(d: RefreshDeps, ws: string): Promise<StoredTokens | null> {
  let t: StoredTokens | null = null;
  await storeRefreshed(async () => void (t = await readTokens(d.store, ws)), { forMs: d.storeRetryMs });
  return t as StoredTokens | null;
}
