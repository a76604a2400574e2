import { secretPaths, type SecretRecord, type SecretStore } from '../../shared/secrets/index.ts';

/**
 * The secret store as the command worker and HTTP API see it:
 * - when `platform/email` holds nothing, the platform account configured in the environment
 *   stands in for it, so the worker's usual resolution (workspace fields over platform fields)
 *   applies to both;
 * - reads are kept `cacheMs` (a connect, disconnect or token change shows within that time):
 *   every command resolves two paths, and at hundreds of sends a second those reads were a tenth
 *   of the dispatcher's CPU (bench/email profile).
 */
export function withPlatformDefault(store: SecretStore, connector: string, fallback: Record<string, string> | null, cacheMs = 2000): SecretStore {
  const path = secretPaths.platform(connector);
  const now = new Date().toISOString();
  const cache = new Map<string, { at: number; value: Promise<SecretRecord | null> }>();
  const read = async (p: string): Promise<SecretRecord | null> => {
    const found = await store.get(p);
    if (found || p !== path || !fallback) return found;
    return { value: fallback, metadata: { createdAt: now, updatedAt: now, labels: { source: 'environment' } } };
  };
  return {
    kind: store.kind,
    get(p) {
      const hit = cache.get(p);
      if (hit && Date.now() - hit.at < cacheMs) return hit.value;
      if (cache.size > 10_000) cache.clear();
      const value = read(p);
      cache.set(p, { at: Date.now(), value });
      value.catch(() => cache.delete(p)); // a failed read is not remembered
      return value;
    },
    async put(p, v, o) {
      cache.delete(p);
      await store.put(p, v, o);
    },
    async create(p, v) {
      cache.delete(p);
      return store.create(p, v);
    },
    list: (p) => store.list(p),
    async delete(p) {
      cache.delete(p);
      await store.delete(p);
    },
    health: () => store.health(),
    close: () => store.close?.() ?? Promise.resolve(),
  };
}

/**
 * The platform account's credential as `store` (withPlatformDefault's) has it now: the one kept at
 * `platform/<connector>`, else the environment's. A send through it is a platform send.
 */
export const platformCredentialOf = (store: SecretStore, connector: string) => async (): Promise<string | undefined> =>
  (await store.get(secretPaths.platform(connector)))?.value.credential;
