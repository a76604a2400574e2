import { GraphqlQueryError, HttpResponseError, Session, type Shopify } from '@shopify/shopify-api';
import { HubError } from '../../../shared/errors.ts';
import { neverSent, withFetchFailure } from './sdk.ts';
import { CostThrottle, type ThrottleStatus } from './throttle.ts';

/** A Shopify access token refused (401): the caller refreshes once, then asks for re-authorization. */
export class TokenRefused extends HubError {
  constructor(shop: string) {
    super('vendor_unauthorized', `Shopify refused the access token of ${shop}`, { retryable: false });
  }
}

/** userErrors of a mutation: Shopify's own messages, as the failed outcome carries them. */
export class ShopifyUserErrors extends HubError {
  constructor(readonly errors: { field?: string[] | null; message: string; code?: string | null }[]) {
    super('shopify_user_error', errors.map((e) => (e.field?.length ? `${e.field.join('.')}: ${e.message}` : e.message)).join('; '), { retryable: false });
  }
}

export interface Cost {
  requestedQueryCost: number;
  actualQueryCost: number | null;
  throttleStatus: ThrottleStatus;
}

export interface AdminApiOptions {
  shopify: () => Shopify | null;
  throttle: CostThrottle;
  /** The cost assumed for a query before Shopify first priced it. */
  defaultCost?: number;
  maxThrottledRetries?: number;
  onCall?: (operation: string, outcome: string, cost?: Cost) => void;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

export interface GraphqlOptions {
  /**
   * false for a mutation that, applied twice, changes the shop twice (adjusting by a delta,
   * creating): a failure after the request may have reached Shopify is then `outcome_unknown`,
   * not retryable. Default true.
   */
  idempotent?: boolean;
}

export interface AdminApi {
  /** One GraphQL Admin request, paced by the shop's cost bucket; THROTTLED is waited out and retried. */
  graphql<T>(shop: string, token: string, operation: string, query: string, variables?: Record<string, unknown>, signal?: AbortSignal, opts?: GraphqlOptions): Promise<{ data: T; cost?: Cost }>;
  throttle: CostThrottle;
}

const abortable = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(t), reject(signal.reason)), { once: true });
  });

/**
 * The GraphQL Admin API through the SDK's own client (`shopify.clients.Graphql`). What each
 * answer means here:
 * - data: returned, and its `extensions.cost.throttleStatus` recorded for pacing the next query;
 * - THROTTLED: wait (requested - available) / restoreRate seconds, then again (never hammers);
 * - 401: TokenRefused (the caller refreshes the token once);
 * - 429 / 5xx: retryable VendorError-like HubError for the command core's backoff;
 * - no answer: `vendor_unreachable`, retryable;
 * - other GraphQL errors: not retryable, Shopify's message kept.
 * A request with `idempotent: false` that may have reached Shopify and failed without saying it
 * was not applied (5xx, INTERNAL_SERVER_ERROR, no answer once connected, the deadline) fails
 * `outcome_unknown`, not retryable: Shopify may have applied it, and it is not sent again.
 * THROTTLED, 429 and a connection never made stay retryable: nothing was applied.
 */
export function createAdminApi(o: AdminApiOptions): AdminApi {
  const sleep = o.sleep ?? abortable;
  const costs = new Map<string, number>();
  return {
    throttle: o.throttle,
    async graphql<T>(shop: string, token: string, operation: string, query: string, variables?: Record<string, unknown>, signal?: AbortSignal, opts?: GraphqlOptions) {
      const shopify = o.shopify();
      if (!shopify) throw new HubError('not_configured', 'Shopify is not configured on this hub: set SHOPIFY_API_KEY and SHOPIFY_API_SECRET for shopify-sync');
      const session = new Session({ id: `offline_${shop}`, shop, state: '', isOnline: false, accessToken: token });
      const client = new shopify.clients.Graphql({ session });
      const once = opts?.idempotent === false;
      const unknown = (what: string, cause?: unknown) =>
        new HubError('outcome_unknown', `${what}; the result is unknown (Shopify may have applied it): not sent again, check the shop before repeating it`, { retryable: false, cause });
      for (let attempt = 0; ; attempt++) {
        const wait = o.throttle.waitMs(shop, costs.get(operation) ?? o.defaultCost ?? 100);
        if (wait > 0) await sleep(wait, signal);
        signal?.throwIfAborted();
        const failure: { error?: unknown } = {};
        try {
          const request = () => client.request<T>(query, { variables, signal } as never);
          // Only a request sent at most once needs to know how its fetch failed.
          const res = await (once ? withFetchFailure(failure, request) : request());
          const cost = (res.extensions as { cost?: Cost } | undefined)?.cost;
          if (cost) {
            o.throttle.observe(shop, cost.throttleStatus);
            costs.set(operation, cost.requestedQueryCost);
          }
          o.onCall?.(operation, 'ok', cost);
          return { data: res.data as T, cost };
        } catch (e) {
          if (e instanceof GraphqlQueryError) {
            const body = e.body as { errors?: { graphQLErrors?: { message?: string; extensions?: { code?: string } }[] }; extensions?: { cost?: Cost } } | undefined;
            const cost = body?.extensions?.cost;
            if (cost) o.throttle.observe(shop, cost.throttleStatus);
            const throttled = body?.errors?.graphQLErrors?.some((g) => g.extensions?.code === 'THROTTLED');
            o.onCall?.(operation, throttled ? 'throttled' : 'graphql_error', cost);
            if (throttled && attempt < (o.maxThrottledRetries ?? 20)) {
              if (cost) costs.set(operation, cost.requestedQueryCost);
              const s = cost?.throttleStatus;
              const ms = s && s.restoreRate > 0 ? Math.ceil(((Math.min(cost.requestedQueryCost, s.maximumAvailable) - s.currentlyAvailable) / s.restoreRate) * 1000) : 1000;
              await sleep(Math.max(ms, 50), signal);
              continue;
            }
            if (once && body?.errors?.graphQLErrors?.some((g) => g.extensions?.code === 'INTERNAL_SERVER_ERROR')) throw unknown(`Shopify answered ${operation}: ${e.message}`, e);
            throw new HubError(throttled ? 'shopify_throttled' : 'shopify_graphql_error', `Shopify answered ${operation}: ${e.message}`, { retryable: Boolean(throttled) });
          }
          if (e instanceof HttpResponseError) {
            const status = e.response.code;
            o.onCall?.(operation, `http_${status}`);
            if (status === 401) throw new TokenRefused(shop);
            const message = `Shopify answered ${operation} with HTTP ${status} ${e.response.statusText ?? ''}`.trim();
            if (once && status >= 500) throw unknown(message, e);
            throw new HubError(`vendor_http_${status}`, message, { retryable: status === 429 || status >= 500 });
          }
          if (signal?.aborted) throw once ? unknown(`${operation} was cut short (${String(signal.reason)})`, e) : e;
          o.onCall?.(operation, 'network');
          if (once && !neverSent(failure.error)) throw unknown(`Shopify did not answer ${operation}: ${(e as Error).message}`, failure.error ?? e);
          throw new HubError('vendor_unreachable', `Shopify could not be reached for ${operation}: ${(e as Error).message}`, { retryable: true, cause: e });
        }
      }
    },
  };
}

/** Throws ShopifyUserErrors when a mutation's payload carries userErrors. */
export function checkUserErrors(payload: { userErrors?: { field?: string[] | null; message: string; code?: string | null }[] } | null | undefined): void {
  if (payload?.userErrors?.length) throw new ShopifyUserErrors(payload.userErrors);
}
