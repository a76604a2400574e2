import { z } from 'zod';
import type { KafkaTable } from '../bus/table/table.ts';
import type { Subscription } from '../bus/types.ts';
import { topics } from '../bus/topics.ts';
import { registerContracts } from '../connectors/contracts.ts';
import type { TokenBuckets } from '../connectors/rate-limit.ts';
import type { Connector } from '../connectors/types.ts';
import type { Runtime } from '../runtime.ts';
import type { SecretStore } from '../secrets/index.ts';
import { openApprovals, openCommandStates, openWorkspaceConnectors, type Approval, type WorkspaceConnector } from './state.ts';
import { startCommandWorker, type WorkerOptions } from './worker.ts';

/** Settings every command service shares; each service's env.ts extends its schema with these. */
export const commandEnvShape = {
  /** How long a finished command is remembered, and the age past which a command record is refused as expired. */
  COMMAND_DEDUPE_WINDOW_HOURS: z.coerce.number().positive().default(168),
  /** Consumer groups are `<prefix>-<service>-worker`: another prefix reads the command topics anew (benches, replays). */
  COMMAND_GROUP_PREFIX: z.string().regex(/^[A-Za-z0-9._-]{1,100}$/).default('ionflux'),
  /** How often the worker looks for new workspaces' command topics (`ionflux.cmd.<service>.ws_<ws>`, created by `ionflux principals create agent`). */
  COMMAND_TOPIC_RESCAN_MS: z.coerce.number().int().min(100).default(5000),
  /**
   * How long a rebalance waits for a worker still running a batch before giving its partitions to
   * another (kafkajs's default). A resumable command (send_bulk, videos.publish, syncs) hands over
   * at its next safe point as soon as a rebalance starts; another command runs to its end, and one
   * running longer than this could then run on the new owner too.
   */
  COMMAND_REBALANCE_TIMEOUT_MS: z.coerce.number().int().min(1000).default(60_000),
};

/** The tables every command worker of a process shares: open them once. */
export async function openSharedTables(rt: Runtime): Promise<{ approvals: KafkaTable<Approval>; workspaceConnectors: KafkaTable<WorkspaceConnector> }> {
  const [approvals, workspaceConnectors] = await Promise.all([openApprovals(rt), openWorkspaceConnectors(rt)]);
  rt.onClose(() => approvals.close());
  rt.onClose(() => workspaceConnectors.close());
  return { approvals, workspaceConnectors };
}

export interface CommandServiceOptions extends Omit<WorkerOptions, 'rt' | 'states' | 'approvals' | 'workspaceConnectors' | 'dedupeWindowMs' | 'groupId'> {
  connector: Connector;
  store: SecretStore;
  buckets: TokenBuckets;
  shared: Awaited<ReturnType<typeof openSharedTables>>;
  dedupeWindowHours: number;
  groupPrefix: string;
}

/**
 * Runs one connector on `ionflux.cmd.<service>`: its state table, its contracts in the schema
 * registry, and the command worker. Every worker service (connector-worker, llm-orchestrator,
 * and each vendor's own) starts its connector through this. Closing the runtime stops the worker
 * first (in-flight commands finish, resumable ones hand over; offsets commit), then its table.
 */
export async function runCommandService(rt: Runtime, o: CommandServiceOptions): Promise<Subscription> {
  const dedupeWindowMs = o.dedupeWindowHours * 3600_000;
  const states = await openCommandStates(rt, o.service, dedupeWindowMs);
  rt.onClose(() => states.close());
  await rt.bus.ensureTopics([topics.command(o.service)]);
  // The actions' input and output contracts, as JSON Schema subjects any client can read.
  let began = Date.now();
  const subjects = await registerContracts(rt.registry, [o.connector]);
  rt.logger.info({ service: o.service, subjects: subjects.length, ms: Date.now() - began }, 'action contracts registered');
  const { shared, dedupeWindowHours: _, groupPrefix, ...worker } = o;
  began = Date.now();
  const runner = await startCommandWorker({ ...worker, rt, states, ...shared, dedupeWindowMs, groupId: `${groupPrefix}-${o.service}-worker` });
  // Start-up phases are logged: a start that stalls shows where (a shopify-sync start stalled here or later, twice in CI).
  rt.logger.info({ service: o.service, group: `${groupPrefix}-${o.service}-worker`, ms: Date.now() - began }, 'command worker joined its group');
  // Registered after the tables, so it stops first: in-flight commands finish (resumable ones hand over), commit, leave.
  rt.onClose(() => runner.stop());
  return runner;
}
