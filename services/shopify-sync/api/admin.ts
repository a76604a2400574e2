import { GraphqlQueryError, HttpResponseError, Session, type Shopify } from '@shopify/shopify-api';
import { DEFER_MIN_MS } from '../../../shared/commands/execute.ts';
import { VendorError } from '../../../shared/connectors/types.ts';
import { HubError } from '../../../shared/errors.ts';
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

/**
 * A query Shopify priced over its single-query limit (MAX_COST_EXCEEDED), refused before it ran:
 * the same query fits with smaller connections (`first`).
 */
export class QueryTooCostly extends HubError {
  constructor(message: string) {
    super('shopify_query_too_costly', message, { retryable: false });
  }
}

/** Shopify's single-query limit: the most a query's requested cost may be, on every plan. */
export const SINGLE_QUERY_MAX_COST = 1000;

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

export interface CallOptions {
  /**
   * A command's call: a wait of DEFER_MIN_MS or more for the shop's cost bucket (before sending,
   * or after a THROTTLED answer) is not slept here but thrown as a retryable VendorError 429 with
   * `retryAfterMs`, so the command core waits it without holding other workspaces' commands
   * (docs/commands.md). Nothing was run at Shopify, so the action starts over safely. Syncs and
   * polls (long runs that checkpoint their pages) wait in place.
   */
  deferLongWaits?: boolean;
}

export interface AdminApi {
  /** One GraphQL Admin request, paced by the shop's cost bucket; THROTTLED is waited out and retried (see CallOptions). */
  graphql<T>(shop: string, token: string, operation: string, query: string, variables?: Record<string, unknown>, signal?: AbortSignal, opts?: CallOptions): Promise<{ data: T; cost?: Cost }>;
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
 * - THROTTLED: wait (requested - available) / restoreRate seconds, then again (never hammers); a
 *   command's long wait goes to the command core instead (CallOptions.deferLongWaits);
 * - 401: TokenRefused (the caller refreshes the token once);
 * - 429 / 5xx, and INTERNAL_SERVER_ERROR (Shopify's answer, HTTP 200, in place of a 500 in most
 *   circumstances): retryable HubError for the command core's backoff;
 * - MAX_COST_EXCEEDED: QueryTooCostly (a page query goes on with smaller pages);
 * - no answer: `vendor_unreachable`, retryable;
 * - other GraphQL errors: not retryable, Shopify's message kept.
 * Retrying is safe for every call the hub makes: reads, writes that leave the shop as sent once,
 * and inventoryAdjustQuantities, whose idempotency key makes Shopify apply it once
 * (actions/writes.ts).
 */
export function createAdminApi(o: AdminApiOptions): AdminApi {
  const sleep = o.sleep ?? abortable;
  const costs = new Map<string, number>();
  return {
    throttle: o.throttle,
    async graphql<T>(shop: string, token: string, operation: string, query: string, variables?: Record<string, unknown>, signal?: AbortSignal, opts?: CallOptions) {
      /** A wait for the shop's bucket: slept, or handed to the command core when it is long. */
      const waitFor = async (ms: number, why: string) => {
        if (opts?.deferLongWaits && ms >= DEFER_MIN_MS) throw new VendorError(429, `Shopify's cost limit for ${shop}: ${operation} ${why}; ${Math.ceil(ms / 1000)} s until the bucket holds enough`, { retryAfterMs: ms });
        await sleep(ms, signal);
      };
      const shopify = o.shopify();
      if (!shopify) throw new HubError('not_configured', 'Shopify is not configured on this hub: set SHOPIFY_API_KEY and SHOPIFY_API_SECRET for shopify-sync');
      const session = new Session({ id: `offline_${shop}`, shop, state: '', isOnline: false, accessToken: token });
      const client = new shopify.clients.Graphql({ session });
      for (let attempt = 0; ; attempt++) {
        const wait = o.throttle.waitMs(shop, costs.get(operation) ?? o.defaultCost ?? 100);
        if (wait > 0) await waitFor(wait, 'would exceed what is left');
        signal?.throwIfAborted();
        try {
          const res = await client.request<T>(query, { variables, signal } as never);
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
            const has = (code: string) => Boolean(body?.errors?.graphQLErrors?.some((g) => g.extensions?.code === code));
            const throttled = has('THROTTLED');
            o.onCall?.(operation, throttled ? 'throttled' : 'graphql_error', cost);
            if (throttled && attempt < (o.maxThrottledRetries ?? 20)) {
              if (cost) costs.set(operation, cost.requestedQueryCost);
              const s = cost?.throttleStatus;
              const ms = s && s.restoreRate > 0 ? Math.ceil(((Math.min(cost.requestedQueryCost, s.maximumAvailable) - s.currentlyAvailable) / s.restoreRate) * 1000) : 1000;
              await waitFor(Math.max(ms, 50), 'was throttled');
              continue;
            }
            const message = `Shopify answered ${operation}: ${e.message}`;
            if (has('MAX_COST_EXCEEDED')) throw new QueryTooCostly(message);
            if (has('INTERNAL_SERVER_ERROR')) throw new HubError('shopify_internal_error', message, { retryable: true });
            throw new HubError(throttled ? 'shopify_throttled' : 'shopify_graphql_error', message, { retryable: throttled });
          }
          if (e instanceof HttpResponseError) {
            const status = e.response.code;
            o.onCall?.(operation, `http_${status}`);
            if (status === 401) throw new TokenRefused(shop);
            const message = `Shopify answered ${operation} with HTTP ${status} ${e.response.statusText ?? ''}`.trim();
            throw new HubError(`vendor_http_${status}`, message, { retryable: status === 429 || status >= 500 });
          }
          if (signal?.aborted) throw e;
          o.onCall?.(operation, 'network');
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
