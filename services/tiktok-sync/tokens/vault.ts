import { registerSecret } from '../../../shared/redact.ts';
import { secretPaths, type SecretStore } from '../../../shared/secrets/index.ts';
import type { TokenSet } from '../api/oauth.ts';

/**
 * A workspace's TikTok tokens in the secret store, `workspaces/<ws>/connectors/tiktok`:
 * access_token and open_id (the connector's credential fields), refresh_token, scope and the
 * expiry times. `issued_at` is the generation (see state/connections.ts).
 */
export interface StoredTokens extends TokenSet {
  issued_at: number;
}

export const tokenPath = (ws: string) => secretPaths.workspace(ws, 'tiktok');

export async function readTokens(store: SecretStore, ws: string): Promise<StoredTokens | null> {
  const r = await store.get(tokenPath(ws));
  const v = r?.value;
  if (!v?.access_token || !v.refresh_token || !v.open_id) return null;
  registerSecret(v.access_token);
  registerSecret(v.refresh_token);
  return {
    access_token: v.access_token,
    refresh_token: v.refresh_token,
    open_id: v.open_id,
    scope: (v.scope ?? '').split(',').filter(Boolean),
    issued_at: Number(v.issued_at ?? 0),
    access_expires_at: Number(v.access_expires_at ?? 0),
    refresh_expires_at: Number(v.refresh_expires_at ?? 0),
  };
}

export async function writeTokens(store: SecretStore, ws: string, t: StoredTokens): Promise<void> {
  await store.put(
    tokenPath(ws),
    { access_token: t.access_token, refresh_token: t.refresh_token, open_id: t.open_id, scope: t.scope.join(','), issued_at: String(t.issued_at), access_expires_at: String(t.access_expires_at), refresh_expires_at: String(t.refresh_expires_at) },
    { expiresAt: new Date(t.refresh_expires_at).toISOString(), labels: { workspace: ws, connector: 'tiktok', open_id: t.open_id } },
  );
}
