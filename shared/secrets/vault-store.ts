import vault from 'node-vault';
import { registerSecret } from '../redact.ts';
import { assertSecretPath, unavailable, type SecretRecord, type SecretStore } from './store.ts';

/**
 * Vault / OpenBao KV v2 through node-vault. Values live at `<mount>/data/<path>`; metadata
 * (created/updated/expires/labels) is KV v2's custom_metadata on `<mount>/metadata/<path>`, so
 * it never mixes with the secret's own fields.
 */
export function createVaultSecretStore(opts: { addr: string; token: string; mount: string; requestTimeoutMs?: number }): SecretStore {
  registerSecret(opts.token);
  const client = vault({ apiVersion: 'v1', endpoint: opts.addr, token: opts.token, requestOptions: { timeout: opts.requestTimeoutMs ?? 3000 } });
  const m = opts.mount;
  const status = (e: unknown) => (e as { response?: { statusCode?: number } }).response?.statusCode;

  async function call<T>(what: string, fn: () => Promise<T>, missing?: T): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (status(e) === 404 && missing !== undefined) return missing;
      throw unavailable(what, e);
    }
  }

  return {
    kind: 'vault',
    async get(path) {
      assertSecretPath(path);
      const res = await call<{ data?: { data?: Record<string, string>; metadata?: { created_time?: string; custom_metadata?: Record<string, string> | null } } } | null>(`read ${path}`, () => client.read(`${m}/data/${path}`), null);
      const data = res?.data?.data;
      if (!data) return null;
      for (const v of Object.values(data)) registerSecret(v);
      const custom = res.data?.metadata?.custom_metadata ?? {};
      const { created_at, updated_at, expires_at, ...labels } = custom;
      const record: SecretRecord = {
        value: data,
        metadata: {
          createdAt: created_at ?? res.data?.metadata?.created_time ?? '',
          updatedAt: updated_at ?? res.data?.metadata?.created_time ?? '',
          ...(expires_at ? { expiresAt: expires_at } : {}),
          ...(Object.keys(labels).length ? { labels } : {}),
        },
      };
      return record;
    },
    async put(path, value, o = {}) {
      assertSecretPath(path);
      for (const v of Object.values(value)) registerSecret(v);
      const now = new Date().toISOString();
      const existing = await this.get(path);
      await call(`write ${path}`, () => client.write(`${m}/data/${path}`, { data: value }));
      const custom: Record<string, string> = { created_at: existing?.metadata.createdAt || now, updated_at: now, ...(o.labels ?? {}) };
      if (o.expiresAt) custom.expires_at = o.expiresAt;
      await call(`write metadata ${path}`, () => client.write(`${m}/metadata/${path}`, { custom_metadata: custom }));
    },
    async list(prefix) {
      assertSecretPath(prefix, { prefix: true });
      const res = await call<{ data?: { keys?: string[] } }>(`list ${prefix}`, () => client.list(`${m}/metadata/${prefix}`), { data: { keys: [] } });
      return [...(res.data?.keys ?? [])].sort();
    },
    async delete(path) {
      assertSecretPath(path);
      await call(`delete ${path}`, () => client.delete(`${m}/metadata/${path}`), undefined as unknown as void).catch((e: unknown) => {
        if (status((e as { cause?: unknown }).cause) !== 404) throw e;
      });
    },
    async health() {
      try {
        const h = (await client.health()) as { sealed?: boolean };
        return h.sealed ? { ok: false, detail: 'vault is sealed' } : { ok: true };
      } catch (e) {
        return { ok: false, detail: `vault unreachable: ${(e as Error).message.replace(opts.token, '[REDACTED]')}` };
      }
    },
  };
}
