import { registerSecret } from '../../../shared/redact.ts';
import { secretPaths, type SecretStore } from '../../../shared/secrets/index.ts';

/**
 * A workspace's Shopify offline token in the secret store, `workspaces/<ws>/connectors/shopify`:
 * `access_token` (the connector's credential field), `refresh_token`, and `meta`, one JSON string
 * with the shop, scopes, expiry times and `issued_at` (the generation). One write keeps them
 * together; the store masks every value it holds in logs, so the shop and times stay in `meta`.
 */
export interface StoredToken {
  access_token: string;
  refresh_token: string;
  shop: string;
  scope: string[];
  issued_at: number;
  access_expires_at: number;
  refresh_expires_at: number;
}

export const tokenPath = (ws: string) => secretPaths.workspace(ws, 'shopify');

export async function readToken(store: SecretStore, ws: string): Promise<StoredToken | null> {
  const v = (await store.get(tokenPath(ws)))?.value;
  if (!v?.access_token || !v.meta) return null;
  registerSecret(v.access_token);
  if (v.refresh_token) registerSecret(v.refresh_token);
  const meta = JSON.parse(v.meta) as Partial<StoredToken>;
  if (!meta.shop) return null;
  return {
    access_token: v.access_token,
    refresh_token: v.refresh_token ?? '',
    shop: meta.shop,
    scope: meta.scope ?? [],
    issued_at: meta.issued_at ?? 0,
    access_expires_at: meta.access_expires_at ?? 0,
    refresh_expires_at: meta.refresh_expires_at ?? 0,
  };
}

export async function writeToken(store: SecretStore, ws: string, t: StoredToken): Promise<void> {
  registerSecret(t.access_token);
  if (t.refresh_token) registerSecret(t.refresh_token);
  const { access_token, refresh_token, ...meta } = t;
  await store.put(tokenPath(ws), { access_token, refresh_token, meta: JSON.stringify(meta) }, {
    ...(t.refresh_expires_at ? { expiresAt: new Date(t.refresh_expires_at).toISOString() } : {}),
    labels: { workspace: ws, connector: 'shopify' },
  });
}
