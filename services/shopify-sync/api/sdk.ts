import '@shopify/shopify-api/adapters/node';
import { ApiVersion, LogSeverity, shopifyApi, type Shopify } from '@shopify/shopify-api';
import { setAbstractFetchFunc } from '@shopify/shopify-api/runtime';
import type { Logger } from '../../../shared/logger.ts';
import { outboundFetch } from '../../../shared/net/outbound.ts';

export interface SdkConfig {
  apiKey: string;
  apiSecret: string;
  scopes: string[];
  apiVersion: string;
  /** Where Shopify sends the browser back: the callback's host. */
  publicBaseUrl: string;
  /** SHOPIFY_ADMIN_BASE_URL: unset in production. */
  adminBaseUrl?: string;
}

/**
 * `https://<shop>/<path>` -> `<base>/<shop>/<path>` when a base is set (a simulator standing in
 * for Shopify; tests/simulators/shopify/README.md); any other URL is left alone.
 */
export function rewriteShopUrl(url: string, base: string | undefined): string {
  if (!base) return url;
  const m = /^https:\/\/([a-z0-9][a-z0-9-]{0,62}\.myshopify\.com)(\/.*)?$/.exec(url);
  return m ? `${base.replace(/\/$/, '')}/${m[1]}${m[2] ?? '/'}` : url;
}

/**
 * Every request the SDK makes (OAuth code exchange, token refresh, GraphQL Admin) goes through
 * the hub's outbound policy, rewritten to SHOPIFY_ADMIN_BASE_URL when that is set. The SDK's own
 * runtime hook is process-wide, so this is installed once, at start-up.
 */
export function installSdkFetch(adminBaseUrl: string | undefined): void {
  setAbstractFetchFunc(((input: RequestInfo | URL, init?: RequestInit) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    return outboundFetch(rewriteShopUrl(url, adminBaseUrl), init as never);
  }) as typeof fetch);
}

/** The SDK, configured for a non-embedded public app with expiring offline tokens. */
export function createShopify(c: SdkConfig, logger: Logger): Shopify {
  const host = new URL(c.publicBaseUrl);
  return shopifyApi({
    apiKey: c.apiKey,
    apiSecretKey: c.apiSecret,
    scopes: c.scopes,
    hostName: host.host,
    hostScheme: host.protocol === 'http:' ? 'http' : 'https',
    apiVersion: c.apiVersion as ApiVersion,
    isEmbeddedApp: false,
    // The SDK logs request parameters (tokens among them) at debug: only its warnings and errors reach ours.
    logger: { level: LogSeverity.Warning, httpRequests: false, timestamps: false, log: async (severity, message) => void logger[severity === LogSeverity.Error ? 'error' : 'warn']({ sdk: 'shopify-api' }, message) },
  });
}
