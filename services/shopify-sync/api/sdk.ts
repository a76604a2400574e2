import '@shopify/shopify-api/adapters/node';
import { AsyncLocalStorage } from 'node:async_hooks';
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

/** Per SDK request (withFetchFailure), the error its fetch rejected with: the SDK passes on only the message. */
const fetchFailures = new AsyncLocalStorage<{ error?: unknown }>();

/** Runs `fn` (SDK requests); when a fetch of theirs rejects, `failure.error` is that error itself. */
export function withFetchFailure<T>(failure: { error?: unknown }, fn: () => Promise<T>): Promise<T> {
  return fetchFailures.run(failure, fn);
}

/** Failures of the connection step: refused, unresolved, unreachable, or a destination the outbound policy refuses. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT', 'dns_no_answer', 'forbidden_destination']);

/**
 * Whether a fetch's error (or a cause of it) says no connection was made, so nothing of the
 * request reached the server. A reset, a closed socket or a timeout once connected is not that.
 */
export function neverSent(e: unknown): boolean {
  for (let x = e, i = 0; x instanceof Error && i < 5; x = x.cause, i++) if (NOT_SENT.has(String((x as { code?: unknown }).code))) return true;
  return false;
}

/**
 * Every request the SDK makes (OAuth code exchange, token refresh, GraphQL Admin) goes through
 * the hub's outbound policy, rewritten to SHOPIFY_ADMIN_BASE_URL when that is set; a fetch
 * that rejects also leaves its error with withFetchFailure's caller. The SDK's own runtime hook is
 * process-wide, so this is installed once, at start-up.
 */
export function installSdkFetch(adminBaseUrl: string | undefined): void {
  setAbstractFetchFunc(((input: RequestInfo | URL, init?: RequestInit) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    return outboundFetch(rewriteShopUrl(url, adminBaseUrl), init as never).catch((e: unknown) => {
      const failure = fetchFailures.getStore();
      if (failure) failure.error = e;
      throw e;
    });
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
