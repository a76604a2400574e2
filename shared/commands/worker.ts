import { deadLetterRecord } from '../bus/dead-letter.ts';
import type { KafkaTable } from '../bus/table/table.ts';
import { topics, workspaceCommandPattern, workspaceOfCommandTopic } from '../bus/topics.ts';
import type { Handled, IncomingRecord, OutgoingRecord, Subscription } from '../bus/types.ts';
import type { TokenBuckets } from '../connectors/rate-limit.ts';
import type { Connector } from '../connectors/types.ts';
import { Deferred, describeError, HandedOver, HubError } from '../errors.ts';
import { redactString } from '../redact.ts';
import { deterministicEventId, type PlatformEvent } from '../events/platform-event.ts';
import { EVENT_HEADERS } from '../events/publisher.ts';
import { isWorkspaceId } from '../ids.ts';
import type { Runtime } from '../runtime.ts';
import type { SecretStore } from '../secrets/index.ts';
import { auditRecord } from './audit.ts';
import { bareAction, commandDigest, dedupeDigest } from './digest.ts';
import { decodeCommand, type Command } from './envelope.ts';
import { carryKept, keptOf, RetryLater, withKept, type Retry } from './execute.ts';
import { defaultOutcomeTopic, outcomeEvent, outcomeTopic } from './outcome.ts';
import { decide, recordId, sleep, type Failure, type Job, type PipelineDeps, type Principal, type Verdict } from './pipeline.ts';
import { policyFor } from './policy.ts';
import { releaseVerifier } from './release.ts';
import { commandKey, DEFAULT_DEDUPE_WINDOW_MS, type Approval, type CommandState, type WorkspaceConnector } from './state.ts';

export interface WorkerOptions {
  rt: Runtime;
  /** Consumes ionflux.cmd.<service> and runs only this connector's actions. */
  service: string;
  connector: Connector;
  store: SecretStore;
  states: KafkaTable<CommandState>;
  approvals: KafkaTable<Approval>;
  workspaceConnectors: KafkaTable<WorkspaceConnector>;
  buckets: TokenBuckets;
  retry?: Retry;
  actionTimeoutMs?: number;
  /** COMMAND_REBALANCE_TIMEOUT_MS: how long a rebalance waits for this worker's running batch (a resumable command hands over at its next safe point well before). */
  rebalanceTimeoutMs?: number;
  dedupeWindowMs?: number;
  groupId?: string;
  /** Partitions (workspaces' command topics) worked on at once (order stays per key); default PARTITIONS_AT_ONCE. */
  partitionsConsumedConcurrently?: number;
  /**
   * Who wrote a record. Default: the topic tells (the broker's ACLs decide who may write where):
   * `ionflux.cmd.<service>` is the admin's and the services', `ionflux.cmd.<service>.ws_<ws>` an agent's of <ws>.
   */
  principalOf?: (record: IncomingRecord) => Principal;
  /** How often the topic list is checked for new workspaces' command topics (default 5000 ms). */
  rescanTopicsMs?: number;
  /**
   * Tables the connector's handlers read to resume a command a previous owner started (the email
   * units ledger, TikTok's publish ledger, Shopify's run checkpoints, the LLM's budgets and
   * spend). A partition's new owner reads them to their end, with the command states, before it
   * works on the partition: what the previous owner recorded before it crashed is known, so
   * nothing it handed over is done again.
   */
  resumeTables?: { catchUp(timeoutMs?: number): Promise<void> }[];
  /** After how long a command still running on its workspace's own topic stops holding the worker's next fetch (default DETACH_AFTER_MS). */
  detachAfterMs?: number;
}

/**
 * A command on its workspace's own topic still running after this long (a TikTok publish polling
 * its status, an email bulk unit, a slow vendor) is detached from the worker's batch: its topic
 * is paused until it ends, and the worker fetches the other workspaces' commands meanwhile
 * (kafkajs fetches again only once every batch of its last fetch is handled).
 */
export const DETACH_AFTER_MS = 1000;

/**
 * How many partitions a worker works on at once by default (`<SERVICE>_PARTITIONS_CONCURRENTLY`).
 * kafkajs fetches again only once every batch of its last fetch is handled, so with fewer slots
 * than partitions holding commands, a workspace's next command waits for other workspaces' vendor
 * calls, batch after batch. Each workspace has its own one-partition command topic: 64 lets that
 * many workspaces' commands run together (make bench-llm, 50 workspaces with one command in flight
 * each: 441 commands/s and p99 1,498 ms with 3; 916 and 254 ms with 32; 1,041 and 234 ms with 64).
 */
export const PARTITIONS_AT_ONCE = 64;

/** The largest outcome event a worker publishes: under the broker's message.max.bytes (4 MiB in deploy/) with room for the rest of its unit. */
export const MAX_OUTCOME_BYTES = 3 * 1024 * 1024;

/**
 * An outcome computed but not yet acknowledged by Kafka: a re-run publishes it instead of deciding
 * again, and another record of the command waits for it (`acked`) before deciding.
 */
type Unpublished = { records: OutgoingRecord[]; plain: boolean; state?: CommandState; acked: Promise<void>; failed?: boolean };
/** The publishes a command queued: the runner awaits them before committing its offset. */
type Ctx = { queued: Promise<unknown>[]; handover?: AbortSignal };

/**
 * The one way a worker consumes commands: decode, then the pipeline's steps (shared/commands/
 * pipeline.ts) decide a verdict, then it is recorded: exactly one outcome event, in one Kafka
 * transaction with the command's state, its audit entries, dead letter and extra events. What to
 * do per failure code is the table in policy.ts.
 */
export async function startCommandWorker(o: WorkerOptions): Promise<Subscription> {
  const { rt, service } = o;
  const retry = o.retry ?? { maxAttempts: 4, initialMs: 250, maxWaitMs: 30_000 };
  const source = `${service}-worker`;
  const dlqTopic = topics.deadLetter(service);
  const unpublished = new Map<string, Unpublished>();
  // Outcomes of actions without side effects skip the transaction (see `publish`): an idempotent
  // producer of their own (closed with the runtime).
  const plainBus = rt.createBus();

  const eventRecord = async (topic: string, event: PlatformEvent): Promise<OutgoingRecord> => ({
    topic,
    key: event.workspace_id,
    value: await rt.codec.encode(event),
    headers: { [EVENT_HEADERS.eventId]: event.event_id, [EVENT_HEADERS.eventType]: event.event_type, [EVENT_HEADERS.workspace]: event.workspace_id, command_id: event.correlation_id ?? '' },
  });

  const deps: PipelineDeps = {
    service,
    connector: o.connector,
    bus: rt.bus,
    logger: rt.logger,
    store: o.store,
    states: o.states,
    workspaceConnectors: o.workspaceConnectors,
    buckets: o.buckets,
    retry,
    actionTimeoutMs: o.actionTimeoutMs ?? 15_000,
    dedupeWindowMs: o.dedupeWindowMs ?? DEFAULT_DEDUPE_WINDOW_MS,
    verifyRelease: releaseVerifier(o.store),
    eventRecord,
    now: Date.now,
    async markStarted(job) {
      const state: CommandState = { phase: 'started', at: Date.now(), content_digest: job.dedupeDigest, record: recordId(job.record), ...originOf(job) };
      await rt.bus.publish(o.states.record(job.key, state));
      o.states.applyLocal(job.key, state);
    },
  };

  /**
   * Queues the records as one unit; the state is applied to this worker's table once Kafka took
   * them, so nothing is decided on a state that may yet be aborted. A unit of an action
   * that changes nothing anywhere (`read_only`, `artifact_generation`) goes as one produce request
   * of the idempotent producer instead of a transaction: the outcome is readable a commit round
   * trip sooner, and should the broker take only part of it, the redelivered command runs again
   * and publishes the same outcome (same event id), which is harmless for a read. Everything
   * with a side effect, an approval or a dead letter stays one Kafka transaction.
   */
  function publish(ctx: Ctx, key: string | null, records: OutgoingRecord[], state?: CommandState, plain = false): void {
    const ack = (plain ? plainBus : rt.bus).publishAtomic(records).then(
      () => {
        if (!key) return;
        if (state) o.states.applyLocal(key, state);
        if (unpublished.get(key) === entry) unpublished.delete(key);
      },
      (e: unknown) => {
        entry.failed = true;
        throw e;
      },
    );
    const entry: Unpublished = { records, plain, ...(state ? { state } : {}), acked: ack.catch(() => undefined) };
    if (key) unpublished.set(key, entry);
    ctx.queued.push(ack);
  }

  const audit = (c: Command, kind: 'action_failed' | 'action_used' | 'approval_requested', detail: { action: string; outcome?: string; detail?: string; approval_id?: string }, id: string) =>
    auditRecord(rt.codec, source, { kind, workspace_id: c.workspace_id, connector: o.connector.manifest.id, command_id: c.command_id, actor: c.agent_id, ...detail }, id);

  /** Records a verdict: the outcome, and per its kind the state, approval, audit, dead letter and extra events. */
  async function recordVerdict(ctx: Ctx, job: Job, v: Verdict, attempts: number): Promise<void> {
    const { c, key } = job;
    // Offsets are committed in the background: a record read again after a crash or a rebalance
    // already has its outcome out. Another record with the same command id (a re-send) gets it again.
    if (v.kind === 'redelivered') return;
    if (v.kind === 'replay') return void ctx.queued.push(rt.bus.publish(await eventRecord(v.state.outcome!.topic, v.state.outcome!.event)));
    const topic = safeOutcomeTopic(c);
    const records: OutgoingRecord[] = [];
    let state: CommandState | undefined;
    let event: PlatformEvent;
    if (v.kind === 'fail') {
      // Handlers word their own errors, but a vendor's text can quote a credential: every copy of
      // the message (outcome, dead letter, audit) goes out without the known secrets.
      const f = { ...v.failure, message: redactString(v.failure.message) };
      const policy = policyFor(f.code);
      event = outcomeEvent(service, c, { status: 'failed', error: { code: f.code, message: f.message, ...(f.retryable !== undefined ? { retryable: f.retryable } : {}), ...(f.auth_help ? { auth_help: f.auth_help } : {}) }, attempts: f.attempts ?? attempts });
      // A refusal that leaves the command as it was (another command reusing its id, say) is not
      // the command's outcome: it gets event ids of its own, or a consumer deduping on event ids
      // would take it for the command's own failure, or that failure for it.
      const refusal = f.finishes === false ? `:${f.code}:${job.dedupeDigest}` : '';
      if (refusal) event = { ...event, event_id: deterministicEventId(`${event.event_type}:${c.workspace_id}:${c.command_id}${refusal}`) };
      // What the vendor already did and billed before the failure stands (the LLM's spend totals).
      records.push(...keptOf(v));
      if (policy.deadLetter) records.push(deadLetterRecord({ dlqTopic, service, record: job.record, message: job.record, error: new HubError(f.code, f.message), attempts: f.attempts ?? attempts }));
      if (policy.audit) records.push(await audit(c, 'action_failed', { action: job.name, outcome: f.code, detail: f.message }, `${c.command_id}:failed:${f.code}${refusal}`));
      if (f.finishes !== false) state = { phase: 'done', at: Date.now(), content_digest: job.dedupeDigest, record: recordId(job.record), ...originOf(job), outcome: { topic, event } };
    } else if (v.kind === 'await') {
      const id = v.approval.approval_id;
      event = outcomeEvent(service, c, { status: 'awaiting_approval', approval_id: id, attempts: 0 });
      state = { phase: 'awaiting_approval', at: Date.now(), digest: job.digest, content_digest: job.dedupeDigest, record: recordId(job.record), outcome: { topic, event } };
      records.push(o.approvals.record(id, v.approval), await audit(c, 'approval_requested', { action: job.name, approval_id: id }, `${id}:requested`));
      o.approvals.applyLocal(id, v.approval);
    } else {
      event = outcomeEvent(service, c, { status: 'succeeded', result: v.result, attempts: v.attempts });
      state = { phase: 'done', at: Date.now(), content_digest: job.dedupeDigest, record: recordId(job.record), ...originOf(job), outcome: { topic, event } };
      records.push(...v.extra);
      if (job.action?.auditRequired) records.push(await audit(c, 'action_used', { action: job.name, outcome: 'succeeded' }, `${c.command_id}:used`));
    }
    const outcome = await eventRecord(topic, event);
    // Kafka would refuse the unit on every attempt, and the command would end with no outcome.
    if (v.kind === 'succeed' && (outcome.value?.length ?? 0) > MAX_OUTCOME_BYTES) {
      const message = `the action ran, but its result makes an outcome of ${outcome.value!.length} bytes, over the ${MAX_OUTCOME_BYTES} an outcome may have; the result is not kept`;
      return recordVerdict(ctx, job, withKept({ kind: 'fail', failure: { code: 'result_too_large', message, attempts: v.attempts } }, keptOf(v)), attempts);
    }
    records.unshift(outcome);
    const gate = job.action?.approvalGate;
    const harmless = (gate === 'read_only' || gate === 'artifact_generation') && (v.kind === 'succeed' || (v.kind === 'fail' && !policyFor(v.failure.code).deadLetter));
    // Outside a transaction the state might land without its outcome: then a redelivery must publish it.
    // (A copy without it rather than `delete`, which would turn the object into a slow dictionary.)
    if (state && harmless) state = withoutRecord(state);
    if (state) records.push(o.states.record(key, state));
    // Only what the command's state records is kept for a re-run to publish again: a refusal
    // leaving the state as it was (no state) is decided again, and the command's next record
    // (its own re-send, say) is never answered with it.
    publish(ctx, state ? key : null, records, state, harmless);
  }

  function safeOutcomeTopic(c: Command): string {
    try {
      return outcomeTopic(c);
    } catch {
      return defaultOutcomeTopic(service, c.workspace_id);
    }
  }

  /** An undecodable record: a dead letter, and a failed outcome to its workspace when one can be told. */
  async function invalid(ctx: Ctx, record: IncomingRecord, e: unknown): Promise<void> {
    const salvaged = salvage(record);
    const dead = deadLetterRecord({ dlqTopic, service, record, message: record, error: e, attempts: 1 });
    if (!salvaged) return publish(ctx, null, [dead]); // no workspace, no one to tell; the dead letter says why
    const stub = { command_id: salvaged.commandId, workspace_id: salvaged.workspace, agent_id: salvaged.agentId, action: salvaged.action };
    const event = outcomeEvent(service, stub, { status: 'failed', error: { code: 'invalid_command', message: describeError(e).message }, attempts: 0 });
    publish(ctx, null, [await eventRecord(defaultOutcomeTopic(service, salvaged.workspace), event), dead]);
  }

  function jobOf(record: IncomingRecord, claimed: Command): Job {
    // On a workspace's own topic the workspace is the topic's, whatever the envelope says.
    const topicWorkspace = workspaceOfCommandTopic(record.topic);
    const foreign = topicWorkspace !== null && topicWorkspace !== claimed.workspace_id;
    const c = foreign ? { ...claimed, workspace_id: topicWorkspace, reply_to: null } : claimed;
    const name = bareAction(service, c.action);
    const action = c.service === service ? o.connector.manifest.actions[name] : undefined;
    const principal = o.principalOf?.(record) ?? (topicWorkspace === null ? 'admin' : 'agent');
    let digest: string | undefined;
    let dedupe: string | undefined;
    return {
      record,
      c,
      key: commandKey(c.workspace_id, c.command_id),
      // A sha256 of the canonical command, needed only where approvals are involved: computed on first use.
      get digest() {
        return (digest ??= commandDigest(service, c));
      },
      // Needed by every command that writes a state (and by any re-send); computed once.
      get dedupeDigest() {
        return (dedupe ??= dedupeDigest(service, c));
      },
      principal,
      ...(foreign ? { claimedWorkspace: claimed.workspace_id } : {}),
      name,
      action,
      resumed: false,
      // Its own topic holds this workspace's commands only: a long wait pauses that topic alone.
      deferrable: topicWorkspace !== null,
    };
  }

  async function handle(ctx: Ctx, record: IncomingRecord): Promise<void> {
    let c: Command;
    try {
      c = await decodeCommand(record.value, rt.registry);
    } catch (e) {
      return invalid(ctx, record, e);
    }
    const job = jobOf(record, c);
    job.handover = ctx.handover;
    let pending = unpublished.get(job.key);
    // Another record of this command (a re-send) is still being recorded: decide on what Kafka took.
    if (pending && !pending.failed) {
      await pending.acked;
      pending = unpublished.get(job.key);
    }
    // Its publish failed: publish the same records again, never deciding (or calling) twice.
    if (pending?.failed) return publish(ctx, job.key, pending.records, pending.state, pending.plain);
    // What earlier runs' vendor calls billed (a failure retried here): published with the last one's outcome.
    const billed: OutgoingRecord[] = [];
    for (let attempt = 1; ; attempt++) {
      job.state = o.states.get(job.key);
      const verdict = await decide(job, deps).catch(async (e: unknown): Promise<Verdict> => {
        if (e instanceof HandedOver) throw e; // left to the partition's next owner
        if (e instanceof RetryLater) await recordRetry(job, e, billed);
        if (e instanceof Deferred) throw e; // its partition waits; the record is read again after
        const d = describeError(e);
        rt.logger.warn({ command_id: c.command_id, err: d }, 'command step failed unexpectedly');
        // A named, final HubError keeps its code; anything else (a bug, Kafka down) is retried as internal_error.
        return { kind: 'fail', failure: { code: e instanceof HubError && !e.retryable ? e.code : 'internal_error', message: d.message } };
      });
      if (verdict.kind === 'fail' && policyFor(verdict.failure.code).retry && attempt < retry.maxAttempts) {
        billed.push(...keptOf(verdict));
        await sleep(Math.min(retry.maxWaitMs, retry.initialMs * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2));
        continue;
      }
      return recordVerdict(ctx, job, carryKept(verdict, billed), attempt);
    }
  }

  /**
   * The vendor asked the command to wait: its state says when it is called again and how many
   * calls were made (what they billed goes with it, the worker's earlier runs' too), so whichever worker owns the partition then
   * goes on with it rather than failing it `outcome_unknown`.
   */
  async function recordRetry(job: Job, e: RetryLater, billed: OutgoingRecord[]): Promise<void> {
    const now = Date.now();
    const retried = { at: now + e.ms, attempts: e.attempts, ...(e.rateLimited ? { rate_limited: e.rateLimited } : {}) };
    const state: CommandState = { phase: 'started', at: now, content_digest: job.dedupeDigest, record: recordId(job.record), ...originOf(job), retry: retried };
    await rt.bus.publishAtomic([...billed, ...e.kept, o.states.record(job.key, state)]);
    o.states.applyLocal(job.key, state);
    rt.logger.info({ command_id: job.c.command_id, workspace_id: job.c.workspace_id, attempts: e.attempts, wait_ms: e.ms }, 'vendor asked to wait; the workspace\'s command topic is paused until its next attempt');
  }

  return rt.bus.subscribe({
    service,
    groupId: o.groupId ?? `ionflux-${service}-worker`,
    // Admins and services on the service's topic; each workspace's agents on their own (new
    // workspaces' topics are picked up while running: see the consumer's topic rescan).
    subscriptions: [topics.command(service), workspaceCommandPattern(service)],
    rescanTopicsMs: o.rescanTopicsMs,
    fromBeginning: true,
    concurrentKeys: true,
    // One workspace's commands run in order on its topic anyway: a long one pauses that topic alone.
    detach: { afterMs: o.detachAfterMs ?? DETACH_AFTER_MS, topics: (topic) => workspaceOfCommandTopic(topic) !== null },
    // A workspace's commands run in order: on its own topic whatever keys its agent gave them (the
    // LLM's budget check counts on one call at a time; a re-send under another key would run beside
    // the first), on the service's topic by their key, the workspace by convention.
    orderKey: (topic, key) => workspaceOfCommandTopic(topic) ?? key,
    partitionsConsumedConcurrently: o.partitionsConsumedConcurrently ?? PARTITIONS_AT_ONCE,
    // A crashed worker's partitions move to a live one after this long.
    sessionTimeoutMs: 10_000,
    rebalanceTimeoutMs: o.rebalanceTimeoutMs,
    // A partition's new owner reads the state topic to its end first: a command its previous owner
    // finished (state written) but whose offset it had not committed yet is recognised, not run again.
    // (An open transaction of a crashed owner holds this until Kafka aborts it: transactionTimeout.)
    // The tables a resumed command reads are read to their end too.
    onAssigned: async () => void (await Promise.all([o.states, ...(o.resumeTables ?? [])].map((t) => t.catchUp(60_000)))),
    handler: async (r, consumer): Promise<Handled> => {
      const ctx: Ctx = { queued: [], handover: consumer?.handover };
      await handle(ctx, r);
      return { settled: Promise.all(ctx.queued) };
    },
  });
}

function withoutRecord({ record: _, ...rest }: CommandState): CommandState {
  return rest;
}

/** The record that asked for approval, carried on once another record (its release) takes the command over. */
function originOf(job: Job): Pick<CommandState, 'origin'> {
  const s = job.state;
  const origin = s?.phase === 'awaiting_approval' ? s.record : s?.origin;
  return origin !== undefined && origin !== recordId(job.record) ? { origin } : {};
}

/** What can be read of an invalid command, so its sender still hears why: workspace, id, agent, action. */
function salvage(record: IncomingRecord): { workspace: string; commandId: string; agentId: string; action: string } | null {
  let raw: Record<string, unknown> = {};
  try {
    const parsed: unknown = record.value && record.value[0] !== 0 ? JSON.parse(record.value.toString('utf8')) : null;
    if (parsed && typeof parsed === 'object') raw = parsed as Record<string, unknown>;
  } catch {
    // not JSON: only the key can tell the workspace
  }
  const str = (v: unknown, re: RegExp) => (typeof v === 'string' && re.test(v) ? v : undefined);
  // On a workspace's own topic, that workspace; else the key first: commands are keyed by
  // workspace, and a broken body should not choose where its failure goes.
  const workspace = workspaceOfCommandTopic(record.topic) ?? [record.key?.toString(), raw.workspace_id].find(isWorkspaceId);
  if (!workspace) return null;
  return {
    workspace,
    commandId: str(raw.command_id, /^[A-Za-z0-9_.:-]{1,200}$/) ?? `invalid-${record.topic}-${record.partition}-${record.offset}`,
    agentId: str(raw.agent_id, /^[a-z0-9][a-z0-9_-]{0,62}$/) ?? 'unknown',
    action: str(raw.action, /^[a-z0-9_.-]{1,100}$/) ?? 'unknown',
  };
}
