import { z } from 'zod';
import { KafkaTable, jsonValue, OWNERS_TABLE_FETCH, type TableHost, type TableOptions } from '../bus/table/table.ts';
import { topics } from '../bus/topics.ts';
import { platformEventSchema } from '../events/platform-event.ts';
import { commandSchema } from './envelope.ts';
import { defaultOutcomeTopic, OUTCOME_SCHEMA_VERSION } from './outcome.ts';

type Rt = TableHost;

/**
 * What happened to each command, keyed `<workspace>:<command_id>`, one compacted topic per
 * service. `started` is written (and acknowledged) before an action with an external side effect
 * calls the vendor; `done` carries the outcome event, written in the same transaction as the
 * outcome itself. A redelivered command therefore never calls the vendor twice.
 */
export const commandStateSchema = z.object({
  phase: z.enum(['started', 'awaiting_approval', 'done']),
  at: z.number(),
  /** commandDigest of what is awaiting approval: a command reusing the id with other content is refused. */
  digest: z.string().optional(),
  /**
   * dedupeDigest of the command (every phase): a re-send of its id with another digest is another
   * command and is refused, never answered with this one's outcome. States written before it have none.
   */
  content_digest: z.string().optional(),
  /**
   * `<topic>/<partition>/<offset>` of the record that asked for approval (awaiting), started it or
   * finished it: that same record read again (after a crash or a rebalance) publishes nothing.
   */
  record: z.string().optional(),
  /** The record that asked for approval, once its release has taken over `record`: read again, it too publishes nothing. */
  origin: z.string().optional(),
  outcome: z.object({ topic: z.string(), event: platformEventSchema }).optional(),
  /**
   * On a `started` command whose vendor asked it to wait (429/503 Retry-After, backoff): its last
   * call changed nothing, and it is called again from `at` (epoch ms), as attempt `attempts` + 1.
   * Its partition is paused until then; whichever worker owns the partition by then calls it.
   * `rate_limited`: how many of those calls were answered 429 (a budget of their own).
   */
  retry: z.object({ at: z.number(), attempts: z.number().int().positive(), rate_limited: z.number().int().nonnegative().optional() }).optional(),
});
export type CommandState = z.infer<typeof commandStateSchema>;

/**
 * Whether a command with `digest` is the one this state is about. A state written before states
 * carried the digest is taken as the same command: it is answered as before (its outcome again).
 */
export const sameCommand = (s: CommandState, digest: string) => s.content_digest === undefined || s.content_digest === digest;

export const commandKey = (workspaceId: string, commandId: string) => `${workspaceId}:${commandId}`;

/** The workspace and command id of a commandKey (a workspace id has no ':'; a command id may). */
function splitCommandKey(key: string): [workspaceId: string, commandId: string] {
  const cut = key.indexOf(':');
  return [key.slice(0, cut), key.slice(cut + 1)];
}

/**
 * An outcome as a state record stores it: what its key (`<workspace>:<command id>`) and the
 * service do not tell. The worker's outcome events all have their source, workspace,
 * correlation, causation and schema version given by those; the topic is left out when it is
 * the workspace's default outcome topic. A state record so written is about half the size of
 * one holding the whole event (a no-op command of make bench-commands: 612 bytes -> 336, before
 * the 63 of its content digest). An event that does not fit (or a state written before) is
 * stored whole, as `outcome`; both are read.
 */
const storedOutcomeSchema = z.object({ topic: z.string().optional(), id: z.string(), type: z.string(), ts: z.number(), payload_json: z.string() });

/** How a service's command states are written to and read from its state topic. */
export function commandStateFormat(service: string): Pick<TableOptions<CommandState>, 'parse' | 'serialize'> {
  const source = `${service}-worker`;
  return {
    serialize(s, key) {
      const e = s.outcome?.event;
      if (!e) return Buffer.from(JSON.stringify(s));
      const [ws, id] = splitCommandKey(key);
      const derivable = e.source_service_name === source && e.workspace_id === ws && e.correlation_id === id && e.causation_id === id && e.payload_schema_version === OUTCOME_SCHEMA_VERSION;
      if (!derivable) return Buffer.from(JSON.stringify(s));
      const { outcome, ...rest } = s;
      const own = JSON.stringify(rest);
      const topic = outcome!.topic === defaultOutcomeTopic(service, ws) ? '' : `"topic":${JSON.stringify(outcome!.topic)},`;
      // The stored outcome's JSON written out: as fast as stringifying the whole state, not slower.
      const o = `{${topic}"id":${JSON.stringify(e.event_id)},"type":${JSON.stringify(e.event_type)},"ts":${JSON.stringify(e.timestamp)},"payload_json":${JSON.stringify(e.payload_json)}}`;
      return Buffer.from(`${own === '{}' ? '{' : `${own.slice(0, -1)},`}"o":${o}}`);
    },
    parse(bytes, key) {
      const raw = JSON.parse(bytes.toString('utf8')) as Record<string, unknown> | null;
      if (!raw || typeof raw !== 'object' || raw.o === undefined) return commandStateSchema.parse(raw);
      const { o: stored, ...rest } = raw;
      const o = storedOutcomeSchema.parse(stored);
      const [ws, id] = splitCommandKey(key);
      const event = { event_id: o.id, event_type: o.type, timestamp: o.ts, source_service_name: source, workspace_id: ws, payload_schema_version: OUTCOME_SCHEMA_VERSION, payload_json: o.payload_json, correlation_id: id, causation_id: id };
      return commandStateSchema.parse({ ...rest, outcome: { topic: o.topic ?? defaultOutcomeTopic(service, ws), event } });
    },
  };
}

/**
 * The dedupe window: a finished command is remembered this long after it finished, and a command
 * record older than this (by its broker timestamp) is refused as `expired_command`, so no replay
 * or offset reset can run a command whose state was forgotten. Seven days, the command topics'
 * retention: every command still on its topic is inside the window.
 */
export const DEFAULT_DEDUPE_WINDOW_MS = 7 * 24 * 3600_000;

/** Started and awaiting commands are never forgotten; finished ones after `windowMs`. */
export async function openCommandStates(rt: Rt, service: string, windowMs = DEFAULT_DEDUPE_WINDOW_MS): Promise<KafkaTable<CommandState>> {
  const t = new KafkaTable<CommandState>({
    ...rt,
    topic: topics.state(`commands-${service}`),
    ...commandStateFormat(service),
    // Each command's state is written by its partition's owner, which applies it locally.
    fetch: OWNERS_TABLE_FETCH,
    expire: { afterMs: windowMs, at: (s) => (s.phase === 'done' ? s.at : Number.POSITIVE_INFINITY) },
  });
  await t.start(120_000);
  return t;
}

/** An external write waiting for a human: the original command, kept until approved or denied. */
export const approvalSchema = z.object({
  approval_id: z.string(),
  status: z.enum(['pending', 'approved', 'denied']),
  service: z.string(),
  connector: z.string(),
  action: z.string(),
  /** commandDigest of the kept command: the release runs only a command with this digest. */
  digest: z.string().optional(),
  command: commandSchema.extend({ deadline: z.number().nullish() }),
  /**
   * The topic the command came on. Its release is sent there when that is the workspace's own
   * command topic (so a long wait of the released command pauses that topic alone, and it runs in
   * order with the workspace's other commands); else, and for approvals asked before, on the
   * service's topic.
   */
  topic: z.string().optional(),
  requested_at: z.string(),
  decided_at: z.string().optional(),
  decided_by: z.string().optional(),
  /**
   * The platform command that decided it: that command run again (its outcome's transaction
   * aborted) stages the same decision again instead of being told `already_decided`.
   */
  decided_command: z.string().optional(),
  reason: z.string().optional(),
});
export type Approval = z.infer<typeof approvalSchema>;

export async function openApprovals(rt: Rt): Promise<KafkaTable<Approval>> {
  const t = new KafkaTable<Approval>({ ...rt, topic: topics.state('approvals'), parse: jsonValue((v) => approvalSchema.parse(v)) });
  await t.start(120_000);
  return t;
}

/**
 * Per workspace and connector: connection state (connected / needs_reauth / disconnected) and
 * settings (e.g. the webhook connector's registered and pre-approved URLs). Keyed `<ws>:<connector>`.
 * The key `<ws>:*` holds workspace-wide policy such as enabling financial actions.
 */
export const workspaceConnectorSchema = z.object({
  connection: z.enum(['connected', 'needs_reauth', 'disconnected']).optional(),
  connection_detail: z.string().optional(),
  settings: z.record(z.string(), z.unknown()).default({}),
  financial_actions_enabled: z.boolean().optional(),
  updated_at: z.string(),
});
export type WorkspaceConnector = z.infer<typeof workspaceConnectorSchema>;

export async function openWorkspaceConnectors(rt: Rt): Promise<KafkaTable<WorkspaceConnector>> {
  const t = new KafkaTable<WorkspaceConnector>({ ...rt, topic: topics.state('workspace-connectors'), parse: jsonValue((v) => workspaceConnectorSchema.parse(v)) });
  await t.start(120_000);
  return t;
}

export const wsConnectorKey = (workspaceId: string, connector: string) => `${workspaceId}:${connector}`;
export const WORKSPACE_POLICY = '*';
