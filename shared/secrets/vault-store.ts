import vault from 'node-vault';
import { registerSecret } from '../redact.ts';
import { assertSecretPath, safeCause, unavailable, type SecretRecord, type SecretStore } from './store.ts';

type KvRead = { data?: { data?: Record<string, string> | null; metadata?: { created_time?: string; custom_metadata?: Record<string, string> | null } } };

// Reserved custom_metadata keys; written after the labels so a label can never override them.
const CREATED = 'created_at';
const UPDATED = 'updated_at';
const EXPIRES = 'expires_at';

/**
 * Vault / OpenBao KV v2 through node-vault. Values live at `<mount>/data/<path>`; metadata
 * (created/updated/expires + labels) is KV v2 custom_metadata on `<mount>/metadata/<path>`, so it
 * never mixes with the secret's own fields and comes back with every data read.
 */
export function createVaultSecretStore(opts: { addr: string; token: string; mount: string; requestTimeoutMs?: number }): SecretStore {
  registerSecret(opts.token);
  // A short timeout: callers retry on secret_store_unavailable, so a stuck Vault must fail fast.
  const client = vault({ apiVersion: 'v1', endpoint: opts.addr, token: opts.token, requestOptions: { timeout: opts.requestTimeoutMs ?? 3000 } });
  const m = opts.mount;
  const status = (e: unknown) => (e as { response?: { statusCode?: number } } | null)?.response?.statusCode;

  /** Runs one Vault call; a 404 becomes `onMissing`, anything else `secret_store_unavailable`. */
  async function call<T>(what: string, fn: () => Promise<T>, onMissing?: () => T): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (status(e) === 404 && onMissing) return onMissing();
      throw unavailable(what, e);
    }
  }

  async function get(path: string): Promise<SecretRecord | null> {
    assertSecretPath(path);
    const res = await call<KvRead | null>(`read ${path}`, () => client.read(`${m}/data/${path}`), () => null);
    const data = res?.data?.data;
    if (!data) return null; // soft-deleted versions read back as data: null
    for (const v of Object.values(data)) registerSecret(v);
    const created = res.data?.metadata?.created_time ?? '';
    const { [CREATED]: createdAt, [UPDATED]: updatedAt, [EXPIRES]: expiresAt, ...labels } = res.data?.metadata?.custom_metadata ?? {};
    return {
      value: data,
      metadata: {
        // Entries written by other tools have no custom_metadata: fall back to the version time.
        createdAt: createdAt ?? created,
        updatedAt: updatedAt ?? created,
        ...(expiresAt ? { expiresAt } : {}),
        ...(Object.keys(labels).length ? { labels } : {}),
      },
    };
  }

  return {
    kind: 'vault',
    get,
    async put(path, value, o = {}) {
      assertSecretPath(path);
      for (const v of Object.values(value)) registerSecret(v);
      const now = new Date().toISOString();
      const existing = await get(path);
      // Data first: if the metadata write then fails, a fresh token keeps an old expiry (refreshed
      // early), never an old token a new expiry.
      await call(`write ${path}`, () => client.write(`${m}/data/${path}`, { data: value }));
      const custom: Record<string, string> = { ...(o.labels ?? {}), [CREATED]: existing?.metadata.createdAt || now, [UPDATED]: now };
      if (o.expiresAt) custom[EXPIRES] = o.expiresAt;
      // POST replaces custom_metadata as a whole, so dropped labels and expiry really go away.
      await call(`write metadata ${path}`, () => client.write(`${m}/metadata/${path}`, { custom_metadata: custom }));
    },
    async create(path, value) {
      assertSecretPath(path);
      for (const v of Object.values(value)) registerSecret(v);
      try {
        // KV v2 check-and-set: cas 0 writes only when the path has no version yet.
        await client.write(`${m}/data/${path}`, { options: { cas: 0 }, data: value });
        return true;
      } catch (e) {
        if (status(e) === 400 && /check-and-set/i.test(String((e as Error).message))) return false;
        throw unavailable(`create ${path}`, e);
      }
    },
    async list(prefix) {
      assertSecretPath(prefix, { prefix: true });
      const res = await call<{ data?: { keys?: string[] } }>(`list ${prefix || '/'}`, () => client.list(`${m}/metadata/${prefix}`), () => ({}));
      return [...(res.data?.keys ?? [])].sort();
    },
    async delete(path) {
      assertSecretPath(path);
      // The metadata endpoint removes every version and the metadata, not just the latest version.
      await call(`delete ${path}`, () => client.delete(`${m}/metadata/${path}`), () => undefined);
    },
    async health() {
      try {
        const h = (await client.health()) as { initialized?: boolean; sealed?: boolean };
        if (h.sealed) return { ok: false, detail: 'vault is sealed' };
        if (h.initialized === false) return { ok: false, detail: 'vault is not initialized' };
        // A reachable Vault is no use with a revoked or expired token; lookup-self is in the default policy.
        await client.tokenLookupSelf();
        return { ok: true };
      } catch (e) {
        const c = safeCause(e) as Error & { status?: number };
        return { ok: false, detail: c.status === 403 ? 'vault rejected the token' : `vault unreachable: ${c.message}` };
      }
    },
  };
}
