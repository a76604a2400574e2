import { VendorError, retryAfterMs } from '../../../shared/connectors/types.ts';
import { outboundFetch } from '../../../shared/net/outbound.ts';
import { registerSecret } from '../../../shared/redact.ts';
import { ENDPOINTS, ENDPOINT_SCOPES, type EndpointName } from './endpoints.ts';
import { DEFAULT_THROTTLE_MS, fromTikTok } from './errors.ts';
import { parseJsonKeepingInt64 } from './json.ts';
import type { EndpointLimiter } from './limiter.ts';

export interface CallOptions {
  /** User access token (act.) or client token (clt.). */
  token: string;
  query?: Record<string, string>;
  body?: unknown;
  signal?: AbortSignal;
  /** Scopes to name when TikTok says one is missing (default: the endpoint's). */
  scopes?: string[];
  /**
   * A command's call where the command core can defer it (ctx.deferrable): a wait of DEFER_MIN_MS
   * or more for the limiter (a full window, or the rest of a rest after TikTok's 429) is thrown as a
   * retryable VendorError 429 with that wait as retryAfterMs, before anything is sent or
   * `beforeSend` runs, so the command runs again from the start once its time comes. Elsewhere the
   * call waits in place (up to 65 s).
   */
  deferLongWaits?: boolean;
  /**
   * Runs once the limiter gave the call its slot (a wait of up to 65 s), right before it is sent;
   * throwing stops the call unsent. A publish checks for a handover and records its ledger here.
   */
  beforeSend?: () => Promise<void>;
}

/** A TikTok v2 API client: the envelope, its error codes, and the per-endpoint limits. */
export interface TikTokApi {
  baseUrl: string;
  call<T = Record<string, unknown>>(ep: EndpointName, o: CallOptions): Promise<T>;
  /** A chunk PUT to the upload_url of a FILE_UPLOAD post; resolves with the HTTP status (206 or 201). */
  upload(url: string, chunk: Buffer, range: { first: number; total: number; contentType: string }, signal?: AbortSignal): Promise<number>;
}

export function createTikTokApi(o: { baseUrl: string; clientKey: string; limiter: EndpointLimiter; throttleMs?: number; onCall?: (ep: EndpointName, outcome: string) => void }): TikTokApi {
  const base = o.baseUrl.replace(/\/$/, '');
  return {
    baseUrl: base,
    async call<T>(ep: EndpointName, c: CallOptions): Promise<T> {
      const spec = ENDPOINTS[ep];
      registerSecret(c.token);
      const slot = await o.limiter.acquire(ep, spec.per === 'app' ? o.clientKey : c.token, { signal: c.signal, deferLongWaits: c.deferLongWaits });
      try {
        await c.beforeSend?.();
      } catch (e) {
        slot.done();
        throw e;
      }
      const url = `${base}${spec.path}${c.query ? `?${new URLSearchParams(c.query)}` : ''}`;
      let res: Response;
      try {
        res = await outboundFetch(url, {
          method: spec.method,
          headers: { authorization: `Bearer ${c.token}`, ...(spec.method === 'POST' ? { 'content-type': 'application/json; charset=UTF-8' } : {}) },
          body: spec.method === 'POST' ? JSON.stringify(c.body ?? {}) : undefined,
          signal: c.signal,
        });
      } catch (e) {
        slot.done();
        if (c.signal?.aborted) throw e;
        o.onCall?.(ep, 'network_error');
        throw new VendorError(503, `TikTok ${spec.path} unreachable: ${(e as Error).message}`, { cause: e });
      }
      let text: string;
      try {
        text = await res.text();
      } catch (e) {
        // The connection broke while the answer was read (undici's "terminated"): like a network error.
        if (c.signal?.aborted) throw e;
        o.onCall?.(ep, 'network_error');
        throw new VendorError(503, `TikTok ${spec.path} broke off its answer: ${(e as Error).message}`, { cause: e });
      } finally {
        slot.done();
      }
      let env: { data?: unknown; error?: { code?: string; message?: string; log_id?: string } };
      try {
        env = parseJsonKeepingInt64(text) as typeof env;
      } catch {
        o.onCall?.(ep, `http_${res.status}`);
        throw new VendorError(res.status >= 400 ? res.status : 502, `TikTok ${spec.path} answered ${res.status} without its JSON envelope`);
      }
      const code = env.error?.code ?? (res.ok ? 'ok' : `http_${res.status}`);
      o.onCall?.(ep, code);
      if (res.ok && code === 'ok') return (env.data ?? {}) as T;
      const retryAfter = retryAfterMs(res.headers.get('retry-after')) ?? o.throttleMs ?? DEFAULT_THROTTLE_MS;
      if (code === 'rate_limit_exceeded' || res.status === 429) o.limiter.coolDown(ep, spec.per === 'app' ? o.clientKey : c.token, retryAfter);
      throw fromTikTok({ status: res.status, code, message: env.error?.message ?? '', logId: env.error?.log_id, path: spec.path, scopes: c.scopes ?? ENDPOINT_SCOPES[ep], retryAfterMs: retryAfter });
    },
    async upload(url, chunk, range, signal) {
      let res: Response;
      try {
        res = await outboundFetch(url, {
          method: 'PUT',
          headers: { 'content-type': range.contentType, 'content-length': String(chunk.length), 'content-range': `bytes ${range.first}-${range.first + chunk.length - 1}/${range.total}` },
          body: new Uint8Array(chunk),
          signal,
        });
      } catch (e) {
        if (signal?.aborted) throw e;
        throw new VendorError(503, `TikTok upload unreachable: ${(e as Error).message}`, { cause: e });
      }
      await res.body?.cancel();
      if (res.status === 201 || res.status === 206 || res.ok) return res.status;
      throw res.status >= 500 || res.status === 429 ? new VendorError(res.status, `TikTok upload answered ${res.status}`) : fromTikTok({ status: res.status, code: 'invalid_file_upload', message: `upload answered ${res.status}`, path: 'upload_url', scopes: ['video.publish'] });
    },
  };
}
