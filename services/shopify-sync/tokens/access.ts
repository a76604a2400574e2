import type { Session, Shopify } from '@shopify/shopify-api';
import type { KafkaTable } from '../../../shared/bus/table/table.ts';
import type { Bus } from '../../../shared/bus/types.ts';
import { wsConnectorKey, type WorkspaceConnector } from '../../../shared/commands/state.ts';
import { HubError } from '../../../shared/errors.ts';
import type { SecretStore } from '../../../shared/secrets/index.ts';
import { storeRefreshed } from '../../../shared/secrets/oauth-tokens.ts';
import { TokenRefused } from '../api/admin.ts';
import { connectionRecord, type Connection } from '../state/connections.ts';
import { fenceMarks, markNeedsReauth, type MarkProducers } from './reauth.ts';
import { readToken, writeToken, type StoredToken } from './vault.ts';

export interface TokenAccessDeps {
  shopify: () => Shopify | null;
  store: SecretStore;
  bus: Bus;
  connections: KafkaTable<Connection>;
  /** The workspace's marking producer (tokens/reauth.ts): a refusal marks through it, a new token fences it. */
  markProducer: MarkProducers;
  /** The command core's connection state, marked needs_reauth beside the connection record when a command's token is refused. */
  workspaceConnectors: KafkaTable<WorkspaceConnector>;
  /** Tests only (SHOPIFY_TEST_REAUTH_GATE_URL): awaited right before a mark is published. */
  beforeMark?: (ws: string) => Promise<void>;
  installUrl: (ws: string, shop?: string) => Promise<string>;
  marginMs: number;
  onRefresh?: (outcome: string) => void;
  /** Longest wait for one Retry-After of a rate-limited refresh (default 30 s). */
  maxRetryAfterMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

/** Refresh attempts Shopify rate-limits (429) before the refresh fails as retryable. */
const REFRESH_ATTEMPTS = 3;
const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** Retry-After (seconds, as the SDK parsed it) in ms: 1 s when absent, at most `max`. */
export const retryAfterMs = (seconds: number | undefined, max = 30_000) => Math.min(max, Math.max(0, Number.isFinite(seconds) ? seconds! * 1000 : 1000));

export interface TokenAccess {
  /**
   * Runs `fn` with the workspace's shop and a usable offline token: refreshed first when it is
   * within the margin of expiry, and once more if Shopify refuses it.
   */
  withToken<T>(ws: string, fn: (shop: string, token: string) => Promise<T>): Promise<T>;
  /** Refreshes now if the token is within the margin of expiry (the owner's timer calls this). */
  refreshIfDue(ws: string): Promise<StoredToken | null>;
  /**
   * Marks the workspace needs_reauthorization (its connection record and the command core's
   * state, one transaction) after Shopify refused a command's token even once refreshed, only
   * while the refused token is still the stored one (markNeedsReauth, a compare-and-set): a
   * reinstall racing the refusal stands. The connector's `markUnauthorized`.
   */
  markRefused(ws: string, detail: string, usedUpdatedAt: string | undefined): Promise<void>;
}

/** The stored token after a refresh through the SDK (`shopify.auth.refreshToken`). */
export function storedFromSession(s: Session, issuedAt: number): StoredToken {
  return {
    access_token: s.accessToken!,
    refresh_token: s.refreshToken ?? '',
    shop: s.shop,
    scope: (s.scope ?? '').split(',').filter(Boolean),
    issued_at: issuedAt,
    access_expires_at: s.expires?.getTime() ?? 0,
    refresh_expires_at: s.refreshTokenExpires?.getTime() ?? 0,
  };
}

/**
 * Shopify's expiring offline tokens (60 min, with a refresh token that rotates on use). A
 * refresh is single-flight per workspace in this process, and the store is read again first, so
 * a token another instance refreshed meanwhile is used rather than refreshed twice.
 */
export function createTokenAccess(d: TokenAccessDeps): TokenAccess {
  const inflight = new Map<string, Promise<StoredToken>>();
  /** Per workspace, the newest token generation (issued_at) a command's call was refused with after its refresh. */
  const refusedGen = new Map<string, number>();

  async function current(ws: string): Promise<StoredToken> {
    const t = await readToken(d.store, ws).catch((e: unknown) => {
      throw new HubError('secret_store_unavailable', 'the Shopify token could not be read', { retryable: true, cause: e });
    });
    if (!t) throw new HubError('not_connected', `Shopify is not installed for ${ws}; install the app at ${await d.installUrl(ws)}`);
    return t;
  }

  /**
   * Shopify refused the grant itself (revoked, expired, rotated away): only an admin's reinstall
   * helps. Unless a newer token was stored meanwhile (a reinstall, another instance's refresh):
   * that one is used and nothing is marked (markNeedsReauth, a compare-and-set).
   */
  async function refusedGrant(ws: string, used: StoredToken, status: number): Promise<StoredToken> {
    const r = await markNeedsReauth(d, () => current(ws).catch((e: unknown) => (e instanceof HubError && e.code === 'not_connected' ? null : Promise.reject(e))), ws, used.issued_at, `Shopify refused the refresh (HTTP ${status})`);
    if ('superseded' in r) return r.superseded;
    if ('gone' in r) return current(ws); // not_connected
    throw new HubError('needs_reauthorization', `Shopify refused to refresh the token of ${used.shop}; reinstall at ${await d.installUrl(ws, used.shop)}`);
  }

  /**
   * The refresh grant through the SDK. What each answer means:
   * - 400 (invalid_grant) / 401 (invalid_client): the grant is refused, the connection needs reauthorization;
   * - 429: Shopify asks to wait (Retry-After): waited out and tried again, at most REFRESH_ATTEMPTS
   *   times, then a retryable error (the command core backs off; the owner's timer tries again);
   *   the grant is fine, so the admin is not asked to reconnect;
   * - 408, 5xx, no answer: retryable, nothing marked;
   * - any other status: failed, nothing marked.
   */
  async function refreshSession(shopify: Shopify, ws: string, used: StoredToken): Promise<Session | { refused: number }> {
    for (let attempt = 1; ; attempt++) {
      try {
        return (await shopify.auth.refreshToken({ shop: used.shop, refreshToken: used.refresh_token })).session;
      } catch (e) {
        const response = (e as { response?: { code?: number; retryAfter?: number } }).response;
        const status = response?.code;
        d.onRefresh?.(status ? `http_${status}` : 'error');
        if (status === 400 || status === 401) return { refused: status };
        if (status === 429) {
          if (attempt >= REFRESH_ATTEMPTS) throw new HubError('vendor_rate_limited', `Shopify rate-limited refreshing the token of ${used.shop}; trying again later`, { retryable: true, cause: e });
          await (d.sleep ?? delay)(retryAfterMs(response?.retryAfter, d.maxRetryAfterMs));
          continue;
        }
        const retryable = !status || status === 408 || status >= 500;
        throw new HubError(retryable ? 'vendor_unreachable' : `vendor_http_${status}`, `refreshing the Shopify token of ${used.shop} failed${status ? ` (HTTP ${status})` : ''}`, { retryable, cause: e });
      }
    }
  }

  async function doRefresh(ws: string, used: StoredToken): Promise<StoredToken> {
    const again = await current(ws);
    if (again.issued_at > used.issued_at) return again;
    const shopify = d.shopify();
    if (!shopify) throw new HubError('not_configured', 'Shopify is not configured on this hub');
    if (!used.refresh_token) throw new HubError('needs_reauthorization', `the Shopify token of ${used.shop} expired and has no refresh token; reinstall at ${await d.installUrl(ws, used.shop)}`);
    const session = await refreshSession(shopify, ws, used);
    if ('refused' in session) return refusedGrant(ws, used, session.refused);
    const next = storedFromSession(session, Date.now());
    await storeRefreshed(() => writeToken(d.store, ws, next));
    // A refusal of the token this replaces, marking right now on another instance, must not commit after it.
    await fenceMarks(d.markProducer, ws);
    const c = d.connections.get(ws);
    if (c) {
      const rec: Connection = { ...c, status: 'active', reason: undefined, issued_at: next.issued_at, access_expires_at: next.access_expires_at, updated_at: Date.now() };
      await d.bus.publish(connectionRecord(rec));
      d.connections.applyLocal(ws, rec);
    }
    d.onRefresh?.('ok');
    return next;
  }

  function refresh(ws: string, used: StoredToken): Promise<StoredToken> {
    let p = inflight.get(ws);
    if (!p) {
      p = doRefresh(ws, used).finally(() => inflight.delete(ws));
      inflight.set(ws, p);
    }
    return p;
  }

  const due = (t: StoredToken) => t.access_expires_at > 0 && t.access_expires_at - d.marginMs <= Date.now();

  return {
    async withToken(ws, fn) {
      let t = await current(ws);
      if (due(t)) t = await refresh(ws, t);
      try {
        return await fn(t.shop, t.access_token);
      } catch (e) {
        if (!(e instanceof TokenRefused)) throw e;
        t = await refresh(ws, t);
      }
      try {
        return await fn(t.shop, t.access_token);
      } catch (e) {
        // Refused again: the command fails vendor_unauthorized and the command core calls markRefused, which marks only this generation.
        if (e instanceof TokenRefused) refusedGen.set(ws, Math.max(refusedGen.get(ws) ?? 0, t.issued_at));
        throw e;
      }
    },
    async markRefused(ws, detail, usedUpdatedAt) {
      // Every call of a command goes through withToken; else, conservatively, the generation of the row the command read.
      const refused = refusedGen.get(ws) ?? (usedUpdatedAt ? Date.parse(usedUpdatedAt) : 0);
      const wsKey = wsConnectorKey(ws, 'shopify');
      let wsState: WorkspaceConnector | undefined;
      const also = () => {
        wsState = { ...(d.workspaceConnectors.get(wsKey) ?? { settings: {} }), connection: 'needs_reauth', connection_detail: detail, updated_at: new Date().toISOString() };
        return { records: [d.workspaceConnectors.record(wsKey, wsState)], apply: () => d.workspaceConnectors.applyLocal(wsKey, wsState) };
      };
      try {
        await markNeedsReauth(d, () => readToken(d.store, ws), ws, refused, detail, also);
      } finally {
        if (refusedGen.get(ws) === refused) refusedGen.delete(ws);
      }
    },
    async refreshIfDue(ws) {
      const t = await readToken(d.store, ws);
      if (!t) return null;
      return due(t) ? refresh(ws, t) : t;
    },
  };
}
