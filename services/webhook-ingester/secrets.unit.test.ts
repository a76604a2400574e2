import { describe, expect, it } from 'vitest';
import { ConfigError, parseEnv } from '../../shared/config.ts';
import { ingesterEnv } from './env.ts';
import { validSecrets } from './secrets.ts';

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
});
