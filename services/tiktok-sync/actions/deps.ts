import type { Bus } from '../../../shared/bus/types.ts';
import type { KafkaTable } from '../../../shared/bus/table/table.ts';
import type { TikTokApi } from '../api/client.ts';
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
