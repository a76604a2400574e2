import type { KafkaTable } from '../../../shared/bus/table/table.ts';
import type { Bus } from '../../../shared/bus/types.ts';
import type { WorkspaceConnector } from '../../../shared/commands/state.ts';
import { VendorError } from '../../../shared/connectors/types.ts';
import { HubError } from '../../../shared/errors.ts';
import type { EventCodec } from '../../../shared/events/codec.ts';
import type { SecretStore } from '../../../shared/secrets/index.ts';
import { AccessTokenInvalid } from '../api/errors.ts';
import type { OAuthConfig } from '../api/oauth.ts';
import { CONNECTIONS_TOPIC, type Connection } from '../state/connections.ts';
import { markNeedsReauth, type MarkProducer } from './reauth.ts';
import { readTokens, type StoredTokens } from './vault.ts';

export interface TokenAccessDeps {
  /** Refresh requests (single records). */
  bus: Bus;
  /** The needs_reauthorization records go through the workspace's marking producer (tokens/reauth.ts), in one transaction. */
  markProducer: (ws: string) => MarkProducer;
  codec: EventCodec;
  store: SecretStore;
  connections: KafkaTable<Connection>;
  workspaceConnectors: KafkaTable<WorkspaceConnector>;
  connectUrl: (ws: string) => Promise<string>;
  waitMs: number;
  /** The app's credentials: without them nobody refreshes, so a command needing a refresh fails `not_configured` at once. */
  oauth?: () => OAuthConfig | null;
  /** Tests only (TIKTOK_TEST_REAUTH_GATE_URL): awaited right before a connection is marked needs_reauthorization. */
  beforeMark?: (ws: string) => Promise<void>;
}

/** A command's way to a usable user token. */
export interface TokenAccess {
  /**
   * Runs `fn` with the workspace's access token. When TikTok calls it invalid (or it has expired),
   * the connection's owner is asked to refresh it, once, and `fn` runs again with the new one; a
   * second refusal marks the connection `needs_reauthorization`.
   */
  withUserToken<T>(ws: string, by: string, fn: (token: string, openId: string) => Promise<T>, signal?: AbortSignal): Promise<T>;
  /**
   * Marks the workspace needs_reauthorization after a command's call was refused with a bare 401
   * (the command core's `vendor_unauthorized`; TikTok's own access_token_invalid is handled in
   * withUserToken), only while the refused tokens are still the stored ones (markNeedsReauth, a
   * compare-and-set): a reconnect racing the refusal stands. The connector's `markUnauthorized`.
   */
  markRefused(ws: string, detail: string, usedUpdatedAt: string | undefined): Promise<void>;
}

export async function needsReauthorization(ws: string, connectUrl: (ws: string) => Promise<string>, why: string): Promise<HubError> {
  return new HubError('needs_reauthorization', `${why}; re-authorize TikTok for ${ws}: ${await connectUrl(ws)}`);
}

export function createTokenAccess(d: TokenAccessDeps): TokenAccess {
  /** Per workspace, the newest token generation (issued_at) a command's call was refused (bare 401) with. */
  const refusedGen = new Map<string, number>();
  /** `fn` with `t`, noting the generation when the refusal is one the command core marks (vendor_unauthorized). */
  async function run<T>(ws: string, t: StoredTokens, fn: (token: string, openId: string) => Promise<T>): Promise<T> {
    try {
      return await fn(t.access_token, t.open_id);
    } catch (e) {
      if (e instanceof VendorError && e.status === 401) refusedGen.set(ws, Math.max(refusedGen.get(ws) ?? 0, t.issued_at));
      throw e;
    }
  }

  async function current(ws: string): Promise<StoredTokens> {
    const t = await readTokens(d.store, ws).catch((e: unknown) => {
      throw new HubError('secret_store_unavailable', 'TikTok tokens unavailable', { retryable: true, cause: e });
    });
    if (!t) throw new HubError('not_connected', `TikTok is not connected for ${ws}; connect it at ${await d.connectUrl(ws)}`);
    return t;
  }

  /** Asks the owner for a refresh of generation `used` (through the connection record) and waits for a newer one. */
  async function refreshed(ws: string, used: StoredTokens, by: string, signal?: AbortSignal): Promise<StoredTokens> {
    const again = await current(ws);
    if (again.issued_at > used.issued_at) return again;
    const c = d.connections.get(ws);
    if (!c || c.status === 'needs_reauthorization') throw await needsReauthorization(ws, d.connectUrl, c?.reason ?? 'TikTok refused the access token');
    if (d.oauth && !d.oauth()) throw new HubError('not_configured', `TikTok's access token for ${ws} has expired or was refused, and this hub cannot refresh it: set TIKTOK_CLIENT_KEY and TIKTOK_CLIENT_SECRET`);
    await d.bus.publish({ topic: CONNECTIONS_TOPIC, key: ws, value: Buffer.from(JSON.stringify({ ...c, refresh_requested: { at: Date.now(), by }, updated_at: Date.now() })) });
    const deadline = Date.now() + d.waitMs;
    while (Date.now() < deadline && !signal?.aborted) {
      const now = d.connections.get(ws);
      if (now?.status === 'needs_reauthorization') throw await needsReauthorization(ws, d.connectUrl, now.reason ?? 'TikTok refused to refresh the token');
      if (now && now.issued_at > used.issued_at) return current(ws);
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new HubError('token_refresh_pending', `TikTok's access token for ${ws} was refused and its refresh did not finish within ${Math.round(d.waitMs / 1000)} s`, { retryable: true });
  }

  return {
    async withUserToken(ws, by, fn, signal) {
      let t = await current(ws);
      if (t.access_expires_at > Date.now()) {
        try {
          return await run(ws, t, fn);
        } catch (e) {
          if (!(e instanceof AccessTokenInvalid)) throw e;
        }
      }
      t = await refreshed(ws, t, by, signal);
      for (let again = true; ; again = false) {
        try {
          return await run(ws, t, fn);
        } catch (e) {
          if (!(e instanceof AccessTokenInvalid)) throw e;
          const c = d.connections.get(ws);
          if (!c || c.status !== 'active') throw await needsReauthorization(ws, d.connectUrl, 'TikTok refused the refreshed access token too');
          // Only the generation refused is marked: a reconnect since then stands, and the command runs once more with its tokens.
          const r = await markNeedsReauth(d, () => current(ws).catch((x: unknown) => (x instanceof HubError && x.code === 'not_connected' ? null : Promise.reject(x))), c, t.issued_at, 'TikTok refused the refreshed access token', `command:${by}`);
          if ('gone' in r) await current(ws); // not_connected
          if ('superseded' in r && again) {
            t = r.superseded;
            continue;
          }
          throw await needsReauthorization(ws, d.connectUrl, 'TikTok refused the refreshed access token too');
        }
      }
    },
    async markRefused(ws, detail) {
      const c = d.connections.get(ws);
      if (!c || c.status !== 'active') return; // not connected, or marked already
      // A user token's refusal was noted by withUserToken; none noted: the refused call used the app's client token (research), which reconnecting the account does not mend.
      const refused = refusedGen.get(ws);
      if (refused === undefined) return;
      try {
        await markNeedsReauth(d, () => current(ws).catch((x: unknown) => (x instanceof HubError && x.code === 'not_connected' ? null : Promise.reject(x))), c, refused, detail, 'command');
      } finally {
        if (refusedGen.get(ws) === refused) refusedGen.delete(ws);
      }
    },
  };
}
