import { HubError } from '../../../shared/errors.ts';
import { AccessTokenInvalid } from '../api/errors.ts';
import { clientToken, type OAuthConfig } from '../api/oauth.ts';

/**
 * The app's client access token (client credentials, 2 hours) for the Research API: fetched on
 * first use, renewed five minutes before it expires or once when TikTok refuses it.
 */
export function createClientTokens(oauth: () => OAuthConfig | null) {
  let cached: { token: string; expiresAt: number } | null = null;
  let pending: Promise<{ token: string; expiresAt: number }> | null = null;
  const get = async (): Promise<string> => {
    const cfg = oauth();
    if (!cfg) throw new HubError('not_configured', 'TikTok is not configured: set TIKTOK_CLIENT_KEY and TIKTOK_CLIENT_SECRET');
    if (cached && cached.expiresAt - Date.now() > 5 * 60_000) return cached.token;
    pending ??= clientToken(cfg).finally(() => (pending = null));
    cached = await pending;
    return cached.token;
  };
  return {
    async withClientToken<T>(fn: (token: string) => Promise<T>): Promise<T> {
      try {
        return await fn(await get());
      } catch (e) {
        if (!(e instanceof AccessTokenInvalid)) throw e;
        cached = null;
        return fn(await get());
      }
    },
  };
}
