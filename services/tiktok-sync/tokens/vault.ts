import { registerSecret } from '../../../shared/redact.ts';
import { secretPaths, type SecretStore } from '../../../shared/secrets/index.ts';
import type { TokenSet } from '../api/oauth.ts';

/**
 * A workspace's TikTok tokens in the secret store, `workspaces/<ws>/connectors/tiktok`:
 * `access_token` (the connector's credential field), `refresh_token`, and `meta`, one JSON string
 * with open_id, scope, the expiry times and `issued_at` (the generation, see state/connections.ts).
 * One write keeps them together; and since the store masks every value it holds in logs, keeping
 * open_id and the times inside `meta` leaves them readable there.
 */
export interface StoredTokens extends TokenSet {
  issued_at: number;
}

export const tokenPath = (ws: string) => secretPaths.workspace(ws, 'tiktok');

export async function readTokens(store: SecretStore, ws: string): Promise<StoredTokens | null> {
  const r = await store.get(tokenPath(ws));
  const v = r?.value;
  if (!v?.access_token || !v.refresh_token || !v.meta) return null;
  registerSecret(v.access_token);
  registerSecret(v.refresh_token);
  const meta = JSON.parse(v.meta) as { open_id?: string; scope?: string[]; issued_at?: number; access_expires_at?: number; refresh_expires_at?: number };
  if (!meta.open_id) return null;
  return {
    access_token: v.access_token,
    refresh_token: v.refresh_token,
    open_id: meta.open_id,
    scope: meta.scope ?? [],
    issued_at: meta.issued_at ?? 0,
    access_expires_at: meta.access_expires_at ?? 0,
    refresh_expires_at: meta.refresh_expires_at ?? 0,
  };
}

export async function writeTokens(store: SecretStore, ws: string, t: StoredTokens): Promise<void> {
  await store.put(
    tokenPath(ws),
    { access_token: t.access_token, refresh_token: t.refresh_token, meta: JSON.stringify({ open_id: t.open_id, scope: t.scope, issued_at: t.issued_at, access_expires_at: t.access_expires_at, refresh_expires_at: t.refresh_expires_at }) },
    { expiresAt: new Date(t.refresh_expires_at).toISOString(), labels: { workspace: ws, connector: 'tiktok' } },
  );
}
