import { HubError } from '../../shared/errors.ts';
import { registerSecret } from '../../shared/redact.ts';
import type { SecretStore } from '../../shared/secrets/store.ts';
import type { IngesterEnv } from './env.ts';
import type { VendorSource } from './vendors/types.ts';

/**
 * Verification secrets per vendor, with rotation: the current secret, plus the previous one
 * until its `previous_valid_until` passes. From the environment when set there, else from the
 * secret store: `platform/<vendor>` ({ secret, previous_secret, previous_valid_until }) and,
 * for generic endpoints, `webhooks/endpoints/<endpoint-id>` (same fields).
 */
export interface RotatingSecret {
  secret: string;
  previous_secret?: string;
  previous_valid_until?: string;
}

const ENV_NAMES: Record<Exclude<VendorSource, 'generic'>, string> = {
  shopify: 'SHOPIFY_API_SECRET',
  tiktok: 'TIKTOK_CLIENT_SECRET',
  email: 'SENDGRID_WEBHOOK_PUBLIC_KEY',
  whatsapp: 'WHATSAPP_APP_SECRET',
};
const STORE_NAMES: Record<Exclude<VendorSource, 'generic'>, string> = { shopify: 'shopify', tiktok: 'tiktok', email: 'sendgrid', whatsapp: 'whatsapp' };

export const endpointSecretPath = (endpointId: string) => `webhooks/endpoints/${endpointId.replace(/_/g, '-')}`;

/** The secrets valid at `now`: current first. */
export function validSecrets(s: RotatingSecret, now: Date): string[] {
  const out = [s.secret];
  if (s.previous_secret && (!s.previous_valid_until || Date.parse(s.previous_valid_until) > now.getTime())) out.push(s.previous_secret);
  return out.filter(Boolean);
}

export type SecretsFor = (vendor: VendorSource, endpointId?: string) => Promise<RotatingSecret | null>;

/** Environment first, then the store; store answers are cached briefly (verification is per request). */
export function createSecretsFor(env: IngesterEnv, store: SecretStore | null): SecretsFor {
  const cache = new Map<string, { at: number; value: RotatingSecret | null }>();
  const fromEnv = (vendor: Exclude<VendorSource, 'generic'>): RotatingSecret | null => {
    const name = ENV_NAMES[vendor];
    const e = env as unknown as Record<string, string | undefined>;
    if (!e[name]) return null;
    return { secret: e[name]!, previous_secret: e[`${name}_PREVIOUS`], previous_valid_until: e[`${name}_PREVIOUS_UNTIL`] };
  };
  for (const vendor of Object.keys(ENV_NAMES) as (keyof typeof ENV_NAMES)[]) {
    const s = fromEnv(vendor);
    registerSecret(s?.secret);
    registerSecret(s?.previous_secret);
  }
  return async (vendor, endpointId) => {
    if (vendor !== 'generic') {
      const s = fromEnv(vendor);
      if (s) return s;
    }
    if (!store) return null;
    const path = vendor === 'generic' ? endpointSecretPath(endpointId ?? '') : `platform/${STORE_NAMES[vendor]}`;
    const hit = cache.get(path);
    if (hit && Date.now() - hit.at < env.SECRET_CACHE_MS) return hit.value;
    const record = await store.get(path).catch((e: unknown) => {
      throw new HubError('secret_store_unavailable', 'cannot read verification secrets', { retryable: true, cause: e });
    });
    const v = record?.value;
    const value = v?.secret ? { secret: v.secret, previous_secret: v.previous_secret, previous_valid_until: v.previous_valid_until } : null;
    cache.set(path, { at: Date.now(), value });
    return value;
  };
}
