import type { KafkaTable } from '../../../shared/bus/table/table.ts';
import type { ActionContext } from '../../../shared/connectors/types.ts';
import type { AdminApi } from '../api/admin.ts';
import type { BulkOptions } from '../sync/bulk.ts';
import type { SyncDeps } from '../sync/run.ts';
import type { Connection } from '../state/connections.ts';
import type { TokenAccess } from '../tokens/access.ts';

/** What the action handlers are built from (main.ts passes the real ones). */
export interface ActionDeps {
  api: AdminApi;
  tokens: TokenAccess;
  connections: KafkaTable<Connection>;
  sync: SyncDeps;
  bulk: BulkOptions;
}

/**
 * One GraphQL request of a command with the workspace's token. A long wait for the shop's cost
 * bucket is handed to the command core (a retryable 429 with its Retry-After) where the core can
 * defer the command (its workspace's own topic): these actions make one call, or a read then one
 * write, so a call that was never run at Shopify starts over safely. Elsewhere it is waited here.
 */
export function call<T>(d: ActionDeps, ctx: Pick<ActionContext, 'workspaceId' | 'signal' | 'deferrable'>, operation: string, query: string, variables: Record<string, unknown>): Promise<T> {
  return d.tokens.withToken(ctx.workspaceId, async (shop, token) => (await d.api.graphql<T>(shop, token, operation, query, variables, ctx.signal, { deferLongWaits: ctx.deferrable === true })).data);
}

export const gid = (type: string, id: string) => `gid://shopify/${type}/${id}`;
