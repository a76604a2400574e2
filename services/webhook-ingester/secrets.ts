import { HubError } from '../../shared/errors.ts';
import { registerSecret } from '../../shared/redact.ts';
import type { SecretStore } from '../../shared/secrets/store.ts';
import type { IngesterEnv } from './env.ts';
import { vendors } from './vendors/index.ts';
import type { SecretSource, VendorSource } from './vendors/types.ts';

/**
 * Verification secrets per vendor, with rotation: the current secret, plus the previous one
 * until its `previous_valid_until` passes. From the environment when set there, else from the
 * secret store: `platform/<vendor>` ({ secret, previous_secret, previous_valid_until }); for
 * generic endpoints `webhooks/endpoints/<endpoint-id>`; for SendGrid accounts
 * (/webhooks/email/sendgrid/<account>) `webhooks/sendgrid/<account>`, the verification key of
 * that SendGrid account only: the platform key never verifies an account route, so a batch signed
 * for one account cannot be replayed into another account's workspace.
 */
export interface RotatingSecret {
  secret: string;
  previous_secret?: string;
  previous_valid_until?: string;
}

export { endpointSecretPath } from './vendors/generic.ts';
export { sendgridAccountKeyPath } from './vendors/sendgrid.ts';

/** The secrets valid at `now`: current first. A previous secret without a valid-until time is not one (never valid for good). */
export function validSecrets(s: RotatingSecret, now: Date): string[] {
  const out = [s.secret];
  if (s.previous_secret && s.previous_valid_until && Date.parse(s.previous_valid_until) > now.getTime()) out.push(s.previous_secret);
  return out.filter(Boolean);
}

export type SecretsFor = (vendor: VendorSource, account?: string) => Promise<RotatingSecret | null>;

/**
 * Environment first, then the store. Store answers (found or not) are cached for
 * `SECRET_CACHE_MS` in an LRU of at most `SECRET_CACHE_MAX_ENTRIES` paths, and concurrent lookups
 * of one path share one read: a burst of requests costs the store one read per path. Callers only
 * ask for paths of linked endpoints and accounts, so unsigned requests with made-up ids never
 * reach the store at all (ingest.ts answers them 404 from the link table).
 */
export function createSecretsFor(env: Pick<IngesterEnv, 'SECRET_CACHE_MS' | 'SECRET_CACHE_MAX_ENTRIES'> & Partial<IngesterEnv>, store: Pick<SecretStore, 'get'> | null): SecretsFor {
  const cache = new Map<string, { at: number; value: RotatingSecret | null }>();
  const reading = new Map<string, Promise<RotatingSecret | null>>();
  const sources = new Map<VendorSource, SecretSource>(Object.values(vendors).map((m) => [m.source, m.secret]));
  const fromEnv = (vendor: VendorSource): RotatingSecret | null => {
    const name = sources.get(vendor)?.env;
    const e = env as unknown as Record<string, string | undefined>;
    if (!name || !e[name]) return null;
    return { secret: e[name]!, previous_secret: e[`${name}_PREVIOUS`], previous_valid_until: e[`${name}_PREVIOUS_UNTIL`] };
  };
  for (const vendor of sources.keys()) {
    const s = fromEnv(vendor);
    registerSecret(s?.secret);
    registerSecret(s?.previous_secret);
  }
  const read = async (path: string): Promise<RotatingSecret | null> => {
    const record = await store!.get(path).catch((e: unknown) => {
      throw new HubError('secret_store_unavailable', 'cannot read verification secrets', { retryable: true, cause: e });
    });
    const v = record?.value;
    const value = v?.secret ? { secret: v.secret, previous_secret: v.previous_secret, previous_valid_until: v.previous_valid_until } : null;
    cache.delete(path);
    cache.set(path, { at: Date.now(), value });
    // Map iteration is insertion order: the first key is the least recently used.
    while (cache.size > env.SECRET_CACHE_MAX_ENTRIES) cache.delete(cache.keys().next().value!);
    return value;
  };
  return async (vendor, account) => {
    const source = sources.get(vendor);
    // An account's own secret only, never the platform one (see above).
    const ofAccount = account !== undefined && source?.accountPath;
    if (!ofAccount) {
      const s = fromEnv(vendor);
      if (s) return s;
    }
    const path = ofAccount ? source.accountPath!(account) : source?.platformPath;
    if (!store || !path) return null;
    const hit = cache.get(path);
    if (hit && Date.now() - hit.at < env.SECRET_CACHE_MS) {
      cache.delete(path);
      cache.set(path, hit);
      return hit.value;
    }
    let pending = reading.get(path);
    if (!pending) {
      pending = read(path).finally(() => reading.delete(path));
      reading.set(path, pending);
    }
    return pending;
  };
}
