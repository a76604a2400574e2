import type { KafkaTable } from '../../../shared/bus/table/table.ts';
import type { WorkspaceConnector } from '../../../shared/commands/state.ts';
import { describeError } from '../../../shared/errors.ts';
import type { EventCodec } from '../../../shared/events/codec.ts';
import type { Logger } from '../../../shared/logger.ts';
import type { SecretStore } from '../../../shared/secrets/index.ts';
import { storeRefreshed } from '../../../shared/secrets/oauth-tokens.ts';
import { grantRefused, OAuthRefused, refreshTokens, type OAuthConfig } from '../api/oauth.ts';
import { CONNECTIONS_TOPIC, type Connection } from '../state/connections.ts';
import { needsReauthRecords } from '../tokens/reauth.ts';
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
}

/** What happened: the connection's next record, `retry` (TikTok unreachable, or refusing the app itself) or `gone` (disconnected). */
export type RefreshResult = { next: Connection } | { retry: true } | { gone: true };

export const connectionRecord = (c: Connection) => ({ record: { topic: CONNECTIONS_TOPIC, key: c.workspace_id, value: Buffer.from(JSON.stringify(c)) } });

export const fromTokens = (c: Pick<Connection, 'workspace_id'>, t: StoredTokens): Connection => ({
  workspace_id: c.workspace_id, open_id: t.open_id, scope: t.scope, status: 'active', issued_at: t.issued_at,
  access_expires_at: t.access_expires_at, refresh_expires_at: t.refresh_expires_at, updated_at: Date.now(),
});

/**
 * Refreshes one connection's tokens as its owner. The claim is written through the partition's
 * fenced writer first, so an instance that lost the partition cannot get as far as calling TikTok.
 * Tokens go to the secret store before the connection record, so a refresh whose record was
 * fenced is found there by the next owner instead of being done again.
 */
export async function refreshConnection(d: RefreshDeps, writer: FencedWriter, c: Connection): Promise<RefreshResult> {
  const cfg = d.oauth();
  if (!cfg) return { retry: true };
  await writer.send([connectionRecord({ ...c, refreshing: { by: d.instanceId, since: Date.now() }, refresh_requested: undefined, updated_at: Date.now() })]);
  const held = await readTokens(d.store, c.workspace_id);
  if (!held) {
    // Disconnected (its tokens deleted): the connection record goes too, nothing to refresh.
    d.logger.info({ workspace: c.workspace_id }, 'tiktok connection has no tokens any more; forgetting it');
    await writer.send([{ record: { topic: CONNECTIONS_TOPIC, key: c.workspace_id, value: null } }]);
    return { gone: true };
  }
  if (held.issued_at > c.issued_at) {
    // Newer tokens than the record says (a reconnect, or a refresh whose record was fenced): adopt them.
    const next = fromTokens(c, held);
    await writer.send([connectionRecord(next)]);
    d.onRefresh?.('adopted');
    return { next };
  }
  let fresh;
  try {
    fresh = await refreshTokens(cfg, held.refresh_token);
  } catch (e) {
    if (grantRefused(e)) return { next: (await reauth(d, writer, c, e.message)).next };
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
  const now = Date.now();
  const stored: StoredTokens = { ...fresh, issued_at: now };
  const current = await readTokens(d.store, c.workspace_id);
  if (current && current.issued_at !== held.issued_at) {
    // A reconnect replaced the tokens while we refreshed: theirs win.
    const next = fromTokens(c, current);
    await writer.send([connectionRecord(next)]);
    return { next };
  }
  await storeRefreshed(() => writeTokens(d.store, c.workspace_id, stored));
  const next = fromTokens(c, stored);
  await writer.send([connectionRecord(next)]);
  d.onRefresh?.('refreshed');
  d.logger.info({ workspace: c.workspace_id, open_id: c.open_id, access_expires_at: new Date(next.access_expires_at).toISOString() }, 'tiktok token refreshed');
  return { next };
}

async function reauth(d: RefreshDeps, writer: FencedWriter, c: Connection, reason: string): Promise<{ next: Connection }> {
  const r = await needsReauthRecords(d, c, reason, `tiktok-sync:${d.instanceId}`);
  await writer.send(r.records.map((record) => ({ record })));
  r.apply();
  d.onRefresh?.('needs_reauthorization');
  d.logger.warn({ workspace: c.workspace_id, open_id: c.open_id, reason }, 'tiktok connection needs re-authorization');
  return { next: { ...c, status: 'needs_reauthorization', reason, refreshing: undefined, refresh_requested: undefined, updated_at: Date.now() } };
}
