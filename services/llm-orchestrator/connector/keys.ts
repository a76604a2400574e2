import { registerSecret } from '../../../shared/redact.ts';
import { secretPaths, type SecretStore } from '../../../shared/secrets/index.ts';
import type { ProviderConfig } from './config.ts';

export type KeySource = 'workspace' | 'platform' | 'none';
export type ResolvedKey = { ok: true; key: string; source: KeySource } | { ok: false; reason: string };

/** Local servers accept any key, but the SDK wants one. */
const NO_KEY = 'no-key';

/**
 * A provider's key for one workspace (seed 001 §1.2): the workspace's own
 * (`workspaces/<ws>/connectors/<provider>` field `api_key`) overrides the platform key, which comes
 * from the provider's usual environment variable or else from the store (`platform/<provider>`).
 * Store answers, including "none", are cached for `cacheMs` so the hot path does not wait on Vault.
 */
export function createKeyResolver(o: { store: SecretStore; cacheMs: number; now: () => number }) {
  const cache = new Map<string, { at: number; value: Promise<string | undefined> }>();

  function read(path: string): Promise<string | undefined> {
    const hit = cache.get(path);
    if (hit && o.now() - hit.at < o.cacheMs) return hit.value;
    const value = o.store.get(path).then((r) => {
      const key = r?.value.api_key || undefined;
      registerSecret(key);
      return key;
    });
    // A failed read is not remembered: the next command asks the store again.
    value.catch(() => cache.delete(path));
    cache.set(path, { at: o.now(), value });
    if (cache.size > 10_000) cache.delete(cache.keys().next().value!);
    return value;
  }

  return {
    async resolve(provider: ProviderConfig, workspaceId: string): Promise<ResolvedKey> {
      const [own, stored] = await Promise.all([read(secretPaths.workspace(workspaceId, provider.id)), provider.envKey ? undefined : read(secretPaths.platform(provider.id))]);
      if (own) return { ok: true, key: own, source: 'workspace' };
      const platform = provider.envKey ?? stored;
      if (platform) return { ok: true, key: platform, source: 'platform' };
      if (!provider.keyRequired) return { ok: true, key: NO_KEY, source: 'none' };
      const env = provider.envKeyName ? `${provider.envKeyName}, ` : '';
      return { ok: false, reason: `no API key for ${provider.id}: set ${env}api_key at ${secretPaths.platform(provider.id)}, or the workspace's own at workspaces/<ws>/connectors/${provider.id}` };
    },
    /** Forget cached store answers (after a key was rotated). */
    clear: () => cache.clear(),
  };
}
export type KeyResolver = ReturnType<typeof createKeyResolver>;
