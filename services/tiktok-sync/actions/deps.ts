import type { Bus } from '../../../shared/bus/types.ts';
import type { KafkaTable } from '../../../shared/bus/table/table.ts';
import type { ActionContext } from '../../../shared/connectors/types.ts';
import type { CallOptions, TikTokApi } from '../api/client.ts';
import type { LedgerEntry } from '../state/publishes.ts';
import type { TokenAccess } from '../tokens/access.ts';
import type { createClientTokens } from '../tokens/client-token.ts';

/** What the action handlers are built from (main.ts passes the real ones). */
export interface ActionDeps {
  api: TikTokApi;
  tokens: TokenAccess;
  clientTokens: ReturnType<typeof createClientTokens>;
  ledger: KafkaTable<LedgerEntry>;
  bus: Bus;
  publish: { pollMs: number; timeoutMs: number; maxBytes: number; chunkBytes: number };
}

/**
 * How a command's calls wait: stopped with the attempt, and a wait of a second or more for
 * TikTok's limits handed to the command core where it defers the command (its workspace's own
 * topic: CallOptions.deferLongWaits), so the worker's other workspaces' commands run meanwhile.
 * Every action may start over after such a wait: the limiter throws before anything is sent or
 * recorded, and videos.publish resumes from its ledger.
 */
export const commandCall = (ctx: Pick<ActionContext, 'signal' | 'deferrable'>): Pick<CallOptions, 'signal' | 'deferLongWaits'> => ({ signal: ctx.signal, deferLongWaits: ctx.deferrable === true });
