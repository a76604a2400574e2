import type { z } from 'zod';
import type { Bus, IncomingRecord, OutgoingRecord } from '../bus/types.ts';
import type { KafkaTable } from '../bus/table/table.ts';
import { resolveCredentials } from '../connectors/credentials.ts';
import type { ActionManifest } from '../connectors/manifest.ts';
import type { TokenBuckets } from '../connectors/rate-limit.ts';
import type { Connector } from '../connectors/types.ts';
import type { PlatformEvent } from '../events/platform-event.ts';
import type { Logger } from '../logger.ts';
import { Deferred, HandedOver } from '../errors.ts';
import type { SecretStore } from '../secrets/index.ts';
import { approvalIdFor } from './digest.ts';
import type { Command } from './envelope.ts';
import { DEFER_MIN_MS, execute, type Retry } from './execute.ts';
import { outcomeTopic } from './outcome.ts';
import type { FailureCode } from './policy.ts';
import type { Release } from './release.ts';
import { sameCommand, WORKSPACE_POLICY, wsConnectorKey, type Approval, type CommandState, type WorkspaceConnector } from './state.ts';

/**
 * Who sent a command. The broker lets only the admin and the services write
 * `ionflux.cmd.<service>`, and only a workspace's agents (and the admin) write
 * `ionflux.cmd.<service>.ws_<workspace>` (docs/security.md): the topic tells.
 */
export type Principal = 'agent' | 'admin';

export interface Failure {
  code: FailureCode | (string & {});
  message: string;
  auth_help?: string;
  retryable?: boolean;
  attempts?: number;
  /** False when the command is not finished by this failure (it still awaits its approval). */
  finishes?: boolean;
}

/** What a step decided; `undefined` lets the command go on to the next step. */
export type Verdict =
  // `kept`: records of what a vendor already did and bills for (staged `evenOnFailure`), published
  // with the outcome whatever it says; a succeeded verdict also has them in `extra`.
  | { kind: 'fail'; failure: Failure; kept?: OutgoingRecord[] }
  | { kind: 'replay'; state: CommandState } // a duplicate: its stored outcome again, same event id
  | { kind: 'redelivered' } // a record this command already answered (or is answering), read again: nothing to publish
  | { kind: 'await'; approval: Approval; requested: boolean }
  | { kind: 'succeed'; result: unknown; attempts: number; extra: OutgoingRecord[]; kept?: OutgoingRecord[] };

/** One command on its way through the steps. Steps fill in what later ones need. */
export interface Job {
  record: IncomingRecord;
  c: Command;
  /** `<workspace>:<command_id>` in the state table. */
  key: string;
  /** commandDigest: what an approval binds to. */
  digest: string;
  /** dedupeDigest: what the command id stands for; kept in every state the command writes. */
  dedupeDigest: string;
  principal: Principal;
  /**
   * Set when the command came on a workspace's own topic but names another workspace: `c` then
   * carries the topic's workspace (where the refusal is told and audited) and this the one claimed.
   */
  claimedWorkspace?: string;
  /** The action's name in the connector (`post` for `post` and `webhook.post`). */
  name: string;
  action?: ActionManifest;
  state?: CommandState;
  params?: Record<string, unknown>;
  credentials?: Record<string, string>;
  connection?: WorkspaceConnector;
  resumed: boolean;
  /**
   * True when the command's partition holds this workspace's commands only (its own topic): a
   * long wait (Retry-After, the workspace's rate limit) pauses the partition instead of holding
   * the worker's batch (see DEFER_MIN_MS).
   */
  deferrable?: boolean;
  /** Calls made before the vendor asked the command to wait (its state's `retry`): the next is attempt this + 1. */
  attemptsBefore?: number;
  /** Of those, the ones answered 429 while deferrable (RATE_LIMITED_CALLS_MAX, not the attempts budget). */
  rateLimitedBefore?: number;
  /** Handler calls made for this command so far, by this run and those before (its emitted events' ids). */
  calls?: number;
  /**
   * Aborts when the command's partition is being handed over (the consumer's `handover`). A
   * command not started yet is then left to the next owner; a resumable one running stops at its
   * next safe point (its signal aborts) and resumes there. Others run to their end.
   */
  handover?: AbortSignal;
}

export interface PipelineDeps {
  service: string;
  connector: Connector;
  bus: Bus;
  logger: Logger;
  store: SecretStore;
  states: KafkaTable<CommandState>;
  workspaceConnectors: KafkaTable<WorkspaceConnector>;
  buckets: TokenBuckets;
  retry: Retry;
  actionTimeoutMs: number;
  dedupeWindowMs: number;
  verifyRelease: (header: string | undefined) => Promise<Release | null>;
  /** A PlatformEvent as the record that publishes it (Avro, keyed by workspace). */
  eventRecord: (topic: string, event: PlatformEvent) => Promise<OutgoingRecord>;
  /** Writes the `started` marker and waits for Kafka's acknowledgement. */
  markStarted: (job: Job) => Promise<void>;
  now: () => number;
}

type Step = (job: Job, deps: PipelineDeps) => Promise<Verdict | undefined> | Verdict | undefined;
const fail = (code: Failure['code'], message: string, more: Partial<Failure> = {}): Verdict => ({ kind: 'fail', failure: { code, message, ...more } });

/** A command from a workspace's own topic acts in that workspace only. */
const scope: Step = (job) => {
  if (job.claimedWorkspace === undefined) return undefined;
  // Not a finished command of this workspace: nothing is remembered under its id.
  return fail('forbidden_workspace', `a command on ${job.record.topic} acts in workspace ${job.c.workspace_id} only; it named ${job.claimedWorkspace} and does not run`, { finishes: false });
};

/** A command seen before: its outcome again, or why it cannot run again. */
const dedupe: Step = (job, d) => {
  const s = job.state;
  if (!s) return undefined;
  // The record that asked for approval, started or finished it (or the asking one after its
  // release), read again after a crash or a rebalance: its answer is out, or on its way.
  const id = recordId(job.record);
  if (s.phase === 'done' && (s.record === id || s.origin === id)) return { kind: 'redelivered' };
  if (s.phase === 'awaiting_approval' && s.record === id) return { kind: 'redelivered' };
  // Another record with this id. Only the same command shares its outcome: with other content
  // (or from another sender) it is told so and does not run, and the first one's state stands.
  const same = sameCommand(s, job.dedupeDigest);
  if (s.phase === 'awaiting_approval') {
    if (!same || (s.digest && s.digest !== job.digest)) {
      return fail('approval_mismatch', 'a command with this id is awaiting approval with other content; it still waits, and this one does not run', { finishes: false });
    }
    return job.c.approval_id ? undefined : { kind: 'replay', state: s };
  }
  if (!same) return fail('idempotency_key_reused', reusedMessage(job, s), { finishes: false });
  if (s.phase === 'done') return { kind: 'replay', state: s };
  // Started by another record (its release while the asking record is read again, or a re-send):
  // that record carries the outcome (it is redelivered itself until it has one); this one adds nothing.
  if (s.record !== undefined && s.record !== id) return { kind: 'redelivered' };
  // Its vendor asked it to wait (its partition was paused): called again once the time has come.
  if (s.retry) {
    const left = s.retry.at - d.now();
    if (left > 0) throw new Deferred(left);
    job.attemptsBefore = s.retry.attempts;
    job.rateLimitedBefore = s.retry.rate_limited ?? 0;
    job.resumed = d.connector.resumable?.has(job.name) ?? false;
    return undefined;
  }
  if (d.connector.resumable?.has(job.name)) return void (job.resumed = true);
  return fail('outcome_unknown', 'the worker stopped after calling the vendor and before recording the result; the call is not repeated, check the vendor');
};

/** Says what was refused without repeating the first command's content (the sender may not be its author). */
function reusedMessage(job: Job, s: CommandState): string {
  const first = s.phase === 'done' ? 'a finished command' : 'a command still running';
  return `command id ${job.c.command_id} belongs to ${first} with other content (action, params, reply_to or sender); this one does not run and is not answered with that one's outcome: send it under a new id`;
}

/** Envelope checks that need no secret: age, deadline, reply_to, action and params. */
const validate: Step = (job, d) => {
  const age = d.now() - Number(job.record.timestamp);
  if (age > d.dedupeWindowMs) return fail('expired_command', `the command was written ${Math.round(age / 3600_000)} h ago, beyond the ${Math.round(d.dedupeWindowMs / 3600_000)} h dedupe window; it is not run`);
  if (job.c.deadline && job.c.deadline < d.now()) return fail('deadline_exceeded', `deadline ${new Date(job.c.deadline).toISOString()} passed before the command ran`);
  if (job.c.service !== d.service) return fail('unknown_action', `the command names service ${job.c.service} but was sent to ${d.service}'s topic`);
  try {
    outcomeTopic(job.c);
  } catch (e) {
    return fail('invalid_reply_to', (e as Error).message);
  }
  if (!job.action) return fail('unknown_action', `service ${d.service} has no action ${job.c.action} (actions: ${Object.keys(d.connector.manifest.actions).join(', ')})`);
  const params = job.action.input.safeParse(job.c.params);
  if (!params.success) return fail('invalid_params', prettify(params.error));
  job.params = params.data as Record<string, unknown>;
  return undefined;
};

/**
 * Commands that write outside the hub, or move money, are decided on the workspace's settings as
 * they stand when the command is taken: whatever an admin wrote before (a pre-approval or URL
 * withdrawn, financial actions turned off, a reconnect) is read here first, one shared read of
 * the table's end offsets at a time. Other commands take the table as it is (a few ms behind).
 */
const current: Step = (job, d) => {
  const a = job.action!;
  if (a.approvalGate !== 'external_write' && a.permission !== 'financial_action') return undefined;
  return d.workspaceConnectors.fresh().then(
    () => undefined,
    (e: unknown) => fail('settings_unavailable', `the workspace's settings could not be read to their end: ${(e as Error).message}`, { retryable: true }),
  );
};

/** Who may send it, and what the workspace allows. */
const authorize: Step = (job, d) => {
  const action = job.action!;
  if (!(action.invokedBy ?? ['agent', 'admin']).includes(job.principal)) return fail('forbidden_principal', `${d.service}.${job.name} may only be sent by an admin`);
  const policy = d.workspaceConnectors.get(wsConnectorKey(job.c.workspace_id, WORKSPACE_POLICY));
  if (action.permission === 'financial_action' && !policy?.financial_actions_enabled) return fail('financial_actions_disabled', 'financial actions are refused unless the workspace enables them');
  if (action.approvalGate === 'blocked_by_default') return fail('blocked', `${d.service}.${job.name} is blocked by default`);
  return undefined;
};

/** The workspace's credentials and connection. A connector without credential fields reads no secret (and awaits nothing). */
const credentials: Step = (job, d) => {
  const m = d.connector.manifest;
  if (m.credentialFields.length === 0) return connection(job, d, {});
  return resolveCredentials(d.store, m, job.c.workspace_id).then(
    (creds) => (creds.ok ? connection(job, d, creds.values) : fail('not_connected', `missing credentials: ${creds.missing.join(', ')}`, { auth_help: m.authHelp })),
    (e: unknown) => fail('secret_store_unavailable', `credentials could not be read: ${(e as Error).message}`, { retryable: true }),
  );
};

function connection(job: Job, d: PipelineDeps, values: Record<string, string>): Verdict | undefined {
  const m = d.connector.manifest;
  job.connection = d.workspaceConnectors.get(wsConnectorKey(job.c.workspace_id, m.id));
  if (job.connection?.connection === 'needs_reauth') return fail('needs_reauthorization', `${m.id} must be re-authorized for this workspace${job.connection.connection_detail ? `: ${job.connection.connection_detail}` : ''}`, { auth_help: m.authHelp });
  job.credentials = values;
  return undefined;
}

/**
 * External writes run only with an admin's signed release of exactly this command, or when the
 * workspace pre-approved them; otherwise they wait, kept with their digest.
 */
const gate: Step = (job, d) => {
  if (job.action!.approvalGate !== 'external_write' || job.resumed) return undefined;
  if (d.connector.preapproved?.(job.name, job.params!, job.connection?.settings ?? {})) return undefined;
  const id = approvalIdFor(d.service, job.c, job.digest);
  if (job.c.approval_id) return released(job, d, id);
  const approval: Approval = { approval_id: id, status: 'pending', service: d.service, connector: d.connector.manifest.id, action: job.name, digest: job.digest, command: job.c, topic: job.record.topic, requested_at: new Date(d.now()).toISOString() };
  return { kind: 'await', approval, requested: true };
};

const run: Step = async (job, d) => {
  const bucket = `${job.c.workspace_id}:${d.connector.manifest.id}`;
  const wait = d.buckets.take(bucket);
  // Only this workspace's commands wait (records run per key); a long wait pauses its own topic.
  if (wait >= DEFER_MIN_MS && job.deferrable) {
    d.buckets.giveBack(bucket);
    throw new Deferred(wait, `the workspace's ${d.connector.manifest.id} rate limit is used up for ${wait} ms`);
  }
  if (wait > 0) await sleep(wait);
  if (job.handover?.aborted) throw new HandedOver(); // not started: the next owner runs it
  const gateKind = job.action!.approvalGate;
  if (gateKind === 'external_write' || gateKind === 'workspace_write') await d.markStarted(job);
  return execute(job, d);
};

/** A release of a kept command: runs only with an admin's signed decision for exactly this content. */
async function released(job: Job, d: PipelineDeps, id: string): Promise<Verdict | undefined> {
  const awaiting = job.state?.phase === 'awaiting_approval';
  let release: Release | null;
  try {
    release = await d.verifyRelease(job.record.headers['ionflux.approval']);
  } catch (e) {
    return fail('secret_store_unavailable', `the approval could not be checked: ${(e as Error).message}`, { retryable: true });
  }
  if (!release) return fail('forbidden_principal', 'only an admin can approve (ionflux approvals approve); this release carries no valid decision and does not run', { finishes: !awaiting });
  if (release.approval_id !== job.c.approval_id || release.approval_id !== id || release.digest !== job.digest) {
    return fail('approval_mismatch', 'the approval was given for other content; only the command the admin saw runs', { finishes: !awaiting });
  }
  if (release.decision === 'denied') return fail('approval_denied', 'an admin denied this action');
  return undefined;
}

/** The steps, in order; each either decides the command's outcome or lets it go on. */
export const STEPS: readonly (readonly [string, Step])[] = [
  ['scope', scope],
  ['dedupe', dedupe],
  ['validate', validate],
  ['current', current],
  ['authorize', authorize],
  ['credentials', credentials],
  ['gate', gate],
  ['execute', run],
];

/** Runs the steps until one decides. A step that answers at once is not awaited (a microtask each). */
export async function decide(job: Job, deps: PipelineDeps): Promise<Verdict> {
  for (const [, step] of STEPS) {
    const answer = step(job, deps);
    const verdict = answer instanceof Promise ? await answer : answer;
    if (verdict) return verdict;
  }
  throw new Error('the execute step always decides');
}

/** Where a record sits, as command states remember it. */
export const recordId = (r: IncomingRecord) => `${r.topic}/${r.partition}/${r.offset}`;

export const prettify = (e: z.ZodError) => e.issues.map((i) => `${i.path.join('.') || '(params)'}: ${i.message}`).join('; ').slice(0, 500);
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export type { PlatformEvent };
