import { describe, expect, it } from 'vitest';
import { ConfigError, parseEnv } from '../../shared/config.ts';
import type { SecretRecord } from '../../shared/secrets/store.ts';
import { ingesterEnv } from './env.ts';
import { createSecretsFor, endpointSecretPath, sendgridAccountKeyPath, validSecrets } from './secrets.ts';

/** A secret store that counts reads, answering after a tick like a network store. */
function countingStore(values: Record<string, Record<string, string>> = {}, fail = false) {
  const reads: string[] = [];
  return {
    reads,
    async get(path: string): Promise<SecretRecord | null> {
      reads.push(path);
      await new Promise((r) => setImmediate(r));
      if (fail) throw new Error('connect ECONNREFUSED 127.0.0.1:8200 token=s.hunter2');
      const value = values[path];
      return value ? { value, metadata: { createdAt: '', updatedAt: '' } } : null;
    },
  };
}

const env = { SECRET_CACHE_MS: 60_000, SECRET_CACHE_MAX_ENTRIES: 3 };

describe('verification secret lookups', () => {
  it('concurrent lookups of one path share one read, and later ones hit the cache', async () => {
    const store = countingStore({ [endpointSecretPath('ep_0123456789')]: { secret: 'whsec_x' } });
    const secretsFor = createSecretsFor(env, store);
    const got = await Promise.all(Array.from({ length: 200 }, () => secretsFor('generic', 'ep_0123456789')));
    expect(got.every((g) => g?.secret === 'whsec_x')).toBe(true);
    await secretsFor('generic', 'ep_0123456789');
    expect(store.reads).toHaveLength(1);
  });

  it('keeps at most SECRET_CACHE_MAX_ENTRIES paths, dropping the least recently used', async () => {
    const store = countingStore();
    const secretsFor = createSecretsFor(env, store);
    for (const id of ['ep_a0000000', 'ep_b0000000', 'ep_c0000000']) await secretsFor('generic', id);
    await secretsFor('generic', 'ep_a0000000'); // a is now the most recent
    await secretsFor('generic', 'ep_d0000000'); // evicts b
    expect(store.reads).toHaveLength(4);
    await secretsFor('generic', 'ep_a0000000');
    await secretsFor('generic', 'ep_c0000000');
    expect(store.reads).toHaveLength(4);
    await secretsFor('generic', 'ep_b0000000');
    expect(store.reads).toHaveLength(5);
    // Thousands of distinct ids cost one read each and the cache stays at its bound.
    for (let i = 0; i < 2000; i++) await secretsFor('generic', `ep_x${String(i).padStart(8, '0')}`);
    expect(store.reads).toHaveLength(2005);
  });

  it('verifies a SendGrid account route with that account\'s key only, never the platform key', async () => {
    const store = countingStore({ [sendgridAccountKeyPath('shop-a')]: { secret: 'KEY_A' }, 'platform/sendgrid': { secret: 'PLATFORM_FROM_STORE' } });
    const secretsFor = createSecretsFor({ ...env, SENDGRID_WEBHOOK_PUBLIC_KEY: 'PLATFORM_FROM_ENV' }, store);
    expect(await secretsFor('email', 'shop-a')).toMatchObject({ secret: 'KEY_A' });
    expect(await secretsFor('email', 'shop-b')).toBeNull();
    expect(await secretsFor('email')).toMatchObject({ secret: 'PLATFORM_FROM_ENV' });
    expect(store.reads).toEqual(['webhooks/sendgrid/shop-a', 'webhooks/sendgrid/shop-b']);
  });

  it('reports an unreachable store without its error text (which may carry a token)', async () => {
    const secretsFor = createSecretsFor(env, countingStore({}, true));
    const e = await secretsFor('shopify').catch((x: unknown) => x as Error);
    expect(e).toMatchObject({ code: 'secret_store_unavailable', message: 'cannot read verification secrets' });
  });
});

describe('secret rotation: a previous secret verifies until a time, never for good', () => {
  const now = new Date('2026-11-29T12:00:00Z');

  it('accepts the previous secret only before its valid-until time', () => {
    expect(validSecrets({ secret: 'new', previous_secret: 'old', previous_valid_until: '2026-11-29T13:00:00Z' }, now)).toEqual(['new', 'old']);
    expect(validSecrets({ secret: 'new', previous_secret: 'old', previous_valid_until: '2026-11-29T11:00:00Z' }, now)).toEqual(['new']);
    // A store entry written by another tool with no time: the previous secret is not accepted.
    expect(validSecrets({ secret: 'new', previous_secret: 'old' }, now)).toEqual(['new']);
  });

  it('refuses <VAR>_PREVIOUS without <VAR>_PREVIOUS_UNTIL at start, naming the variable', () => {
    const error = (() => {
      try {
        parseEnv(ingesterEnv, { SHOPIFY_API_SECRET: 'shpss_new', SHOPIFY_API_SECRET_PREVIOUS: 'shpss_old' });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect(String((error as Error).message)).toContain('SHOPIFY_API_SECRET_PREVIOUS_UNTIL');
    expect(String((error as Error).message)).not.toContain('shpss_old');
    expect(parseEnv(ingesterEnv, { SHOPIFY_API_SECRET: 'shpss_new', SHOPIFY_API_SECRET_PREVIOUS: 'shpss_old', SHOPIFY_API_SECRET_PREVIOUS_UNTIL: '2026-12-01T00:00:00Z' }).SHOPIFY_API_SECRET_PREVIOUS).toBe('shpss_old');
  });

  it('refuses a dedupe window longer than the delivery markers are kept (7 days)', () => {
    expect(() => parseEnv(ingesterEnv, { WEBHOOK_DEDUPE_HOURS: '200' })).toThrow(/WEBHOOK_DEDUPE_HOURS.*168/);
    expect(parseEnv(ingesterEnv, { WEBHOOK_DEDUPE_HOURS: '168' }).WEBHOOK_DEDUPE_HOURS).toBe(168);
  });
});
