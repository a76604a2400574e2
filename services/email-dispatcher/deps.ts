import type { Logger } from '../../shared/logger.ts';
import type { AttachmentOptions } from './attachments.ts';
import type { Ledger } from './ledger.ts';
import type { UnitObservation } from './metrics.ts';
import type { ProviderEnv, ProviderOptions } from './providers/index.ts';
import type { Provider } from './providers/types.ts';
import type { Sealer } from './seal.ts';
import type { SuppressionList } from './suppressions.ts';
import type { Throttle } from './throttle.ts';
import type { UnsubscribeLinks } from './unsubscribe.ts';

/** Everything the email actions use; built once in main.ts (or in memory by unit tests). */
export interface EmailDeps {
  ledger: Ledger;
  suppressions: SuppressionList;
  sealer: Sealer;
  links: UnsubscribeLinks;
  providerThrottle: Throttle;
  workspaceThrottle: Throttle;
  providerEnv: ProviderEnv;
  /**
   * The platform account's credential as the secret store has it now (`platform/email`, else the
   * environment's), to tell platform sends from a workspace's own account.
   */
  platformCredential(): Promise<string | undefined>;
  attachments: Omit<AttachmentOptions, 'signal'>;
  sendgridBatchSize: number;
  concurrency: number;
  waitBudgetMs: number;
  /** How long a bulk's provider may take nothing, refusing every attempt, before the bulk stops (outage.ts). */
  outageMs: number;
  logger: Logger;
  /** Metrics of each provider call (metrics.ts). */
  observe?(o: UnitObservation): void;
  /** Called before a platform SendGrid send: delivery events of the workspace must reach it. */
  onPlatformSendgrid?(workspaceId: string): Promise<void>;
  /** Tests swap the provider factory; main uses providers/index.ts. */
  providerFor(credentials: Record<string, string>, o?: ProviderOptions): Provider;
}
