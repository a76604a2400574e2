import { secretPaths, type SecretStore } from '../../shared/secrets/index.ts';

/**
 * The secret store as the command worker sees it: when `platform/email` holds nothing, the
 * platform account configured in the environment stands in for it, so the worker's usual
 * resolution (workspace fields over platform fields) applies to both.
 */
export function withPlatformDefault(store: SecretStore, connector: string, fallback: Record<string, string> | null): SecretStore {
  const path = secretPaths.platform(connector);
  const now = new Date().toISOString();
  return {
    ...store,
    kind: store.kind,
    async get(p) {
      const found = await store.get(p);
      if (found || p !== path || !fallback) return found;
      return { value: fallback, metadata: { createdAt: now, updatedAt: now, labels: { source: 'environment' } } };
    },
    put: (p, v, o) => store.put(p, v, o),
    list: (p) => store.list(p),
    delete: (p) => store.delete(p),
    health: () => store.health(),
    close: () => store.close?.() ?? Promise.resolve(),
  };
}
