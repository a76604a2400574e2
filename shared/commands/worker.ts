import { createHash } from 'node:crypto';
import type { z } from 'zod';
import { deadLetterRecord } from '../bus/dead-letter.ts';
import type { KafkaTable } from '../bus/table/table.ts';
import { topics } from '../bus/topics.ts';
import type { Handled, IncomingRecord, OutgoingRecord, Subscription } from '../bus/types.ts';
import { resolveCredentials } from '../connectors/credentials.ts';
import type { TokenBuckets } from '../connectors/rate-limit.ts';
import { VendorError, type Connector } from '../connectors/types.ts';
import type { ActionManifest } from '../connectors/manifest.ts';
import { describeError, HubError } from '../errors.ts';
import { buildEvent, PayloadSchemas, type PlatformEvent } from '../events/platform-event.ts';
import { EVENT_HEADERS } from '../events/publisher.ts';
import { isWorkspaceId } from '../ids.ts';
import type { Runtime } from '../runtime.ts';
import type { SecretStore } from '../secrets/index.ts';
import { auditRecord } from './audit.ts';
import { decodeCommand, type Command } from './envelope.ts';
import { defaultOutcomeTopic, outcomeEvent, outcomeTopic, type OutcomePayload } from './outcome.ts';
import { commandKey, WORKSPACE_POLICY, wsConnectorKey, type Approval, type CommandState, type WorkspaceConnector } from './state.ts';

export interface WorkerOptions {
  rt: Runtime;
  /** Consumes ionflux.cmd.<service>. */
  service: string;
  connectors: Map<string, Connector>;
  store: SecretStore;
  states: KafkaTable<CommandState>;
  approvals: KafkaTable<Approval>;
  workspaceConnectors: KafkaTable<WorkspaceConnector>;
  buckets: TokenBuckets;
  retry?: { maxAttempts: number; initialMs: number; maxWaitMs: number };
  actionTimeoutMs?: number;
  groupId?: string;
  /** Partitions of the command topic handled at once (order stays per key); default 1. */
  partitionsConsumedConcurrently?: number;
}

type Failure = { code: string; message: string; retryable?: boolean; auth_help?: string };

export const approvalIdFor = (service: string, c: Command) => `apr_${createHash('sha256').update(`${service}:${c.workspace_id}:${c.command_id}`).digest('hex').slice(0, 24)}`;

/**
 * The one way a worker consumes commands. Each command ends in exactly one outcome event
 * (succeeded, failed or awaiting_approval) published in one transaction with its state; an
 * action with an external side effect records `started` before calling the vendor, so no
 * redelivery, crash, rebalance or replay makes that call twice.
 */
export async function startCommandWorker(o: WorkerOptions): Promise<Subscription> {
  const { rt, service } = o;
  const retry = o.retry ?? { maxAttempts: 4, initialMs: 250, maxWaitMs: 30_000 };
  const source = `${service}-worker`;
  const dlqTopic = topics.deadLetter(service);
  // Outcomes computed but not yet acknowledged by Kafka, so a retry publishes them instead of calling again.
  type Unpublished = { topic: string; event: PlatformEvent; extra: OutgoingRecord[]; failed?: boolean };
  const unpublished = new Map<string, Unpublished>();
  // The publishes a command queued (`ctx.queued`): the runner awaits them before committing its
  // offset, so one command's handling never waits for the previous command's produce round trip.
  type Ctx = { queued: Promise<unknown>[] };
  const settle = (ctx: Ctx, ack: Promise<unknown>) => void ctx.queued.push(ack);

  const stateRecord = (c: Command, s: CommandState) => o.states.record(commandKey(c.workspace_id, c.command_id), s);
  const eventRecord = async (topic: string, event: PlatformEvent): Promise<OutgoingRecord> => ({
    topic,
    key: event.workspace_id,
    value: await rt.codec.encode(event),
    headers: { [EVENT_HEADERS.eventId]: event.event_id, [EVENT_HEADERS.eventType]: event.event_type, [EVENT_HEADERS.workspace]: event.workspace_id, command_id: event.correlation_id ?? '' },
  });

  async function finish(ctx: Ctx, c: Command, topic: string, event: PlatformEvent, extra: OutgoingRecord[] = []): Promise<void> {
    const key = commandKey(c.workspace_id, c.command_id);
    const entry: Unpublished = { topic, event, extra };
    unpublished.set(key, entry);
    const phase = event.event_type.endsWith('.awaiting_approval') ? 'awaiting_approval' : 'done';
    const state: CommandState = { phase, at: Date.now(), outcome: { topic, event } };
    const ack = rt.bus.publishAtomic([await eventRecord(topic, event), stateRecord(c, state), ...extra]).then(
      () => void unpublished.delete(key),
      (e: unknown) => {
        entry.failed = true;
        throw e;
      },
    );
    // Seen at once by this worker; should the publish fail, `unpublished` makes the re-run publish it again.
    o.states.applyLocal(key, state);
    settle(ctx, ack);
  }

  async function fail(ctx: Ctx, c: Command, record: IncomingRecord, f: Failure, opts: { deadLetter?: boolean; topic?: string; attempts?: number; audit?: boolean } = {}): Promise<void> {
    const event = outcomeEvent(service, c, { status: 'failed', error: f, attempts: opts.attempts ?? 0 });
    const extra: OutgoingRecord[] = [];
    if (opts.deadLetter) extra.push(deadLetterRecord({ dlqTopic, service, record, message: record, error: new HubError(f.code, f.message), attempts: opts.attempts ?? 1 }));
    if (opts.audit) extra.push(await auditRecord(rt.codec, source, { kind: 'action_failed', workspace_id: c.workspace_id, connector: service, action: c.action, command_id: c.command_id, actor: c.agent_id, outcome: f.code, detail: f.message }, `${c.command_id}:failed`));
    await finish(ctx, c, opts.topic ?? safeOutcomeTopic(c), event, extra);
  }

  function safeOutcomeTopic(c: Command): string {
    try {
      return outcomeTopic(c);
    } catch {
      return defaultOutcomeTopic(service, c.workspace_id);
    }
  }

  function resolveAction(c: Command): { connector: Connector; name: string; action: ActionManifest } | null {
    const [prefix, ...rest] = c.action.split('.');
    const candidates = rest.length ? [[prefix!, rest.join('.')], [service, c.action]] : [[service, c.action]];
    for (const [id, name] of candidates) {
      const connector = o.connectors.get(id!);
      const action = connector?.manifest.actions[name!];
      if (connector && action) return { connector, name: name!, action };
    }
    return null;
  }

  async function handle(ctx: Ctx, record: IncomingRecord): Promise<void> {
    let c: Command;
    try {
      c = await decodeCommand(record.value, rt.registry);
    } catch (e) {
      const ws = record.key?.toString();
      const id = `invalid-${record.topic}-${record.partition}-${record.offset}`;
      const stub = { command_id: id, workspace_id: ws ?? '', agent_id: 'unknown', service, action: 'unknown', params: {} } as Command;
      const dead = deadLetterRecord({ dlqTopic, service, record, message: record, error: e, attempts: 1 });
      // Without a workspace there is no one to tell; the dead letter still says why.
      if (!isWorkspaceId(ws)) return void (await rt.bus.publish(dead));
      const event = outcomeEvent(service, stub, { status: 'failed', error: { code: 'invalid_command', message: describeError(e).message }, attempts: 0 });
      return settle(ctx, rt.bus.publishAtomic([await eventRecord(defaultOutcomeTopic(service, ws), event), dead]));
    }
    const key = commandKey(c.workspace_id, c.command_id);
    const pending = unpublished.get(key);
    // Its publish failed: publish the same records again. Still in flight: a duplicate, answered below.
    if (pending?.failed) return finish(ctx, c, pending.topic, pending.event, pending.extra);

    const state = o.states.get(key);
    if (state?.phase === 'done' && state.outcome) {
      // A duplicate, a replay or a redelivery: the original outcome again, same event id.
      return settle(ctx, rt.bus.publish(await eventRecord(state.outcome.topic, state.outcome.event)));
    }
    if (state?.phase === 'started') {
      return fail(ctx, c, record, { code: 'outcome_unknown', message: 'the worker stopped after calling the vendor and before recording the result; the call is not repeated, check the vendor' }, { audit: true });
    }
    if (c.deadline && c.deadline < Date.now()) return fail(ctx, c, record, { code: 'deadline_exceeded', message: `deadline ${new Date(c.deadline).toISOString()} passed before the command ran` }, { deadLetter: true });
    try {
      outcomeTopic(c);
    } catch (e) {
      return fail(ctx, c, record, { code: 'invalid_reply_to', message: (e as Error).message }, { deadLetter: true });
    }
    const resolved = resolveAction(c);
    if (!resolved) return fail(ctx, c, record, { code: 'unknown_action', message: `service ${service} has no action ${c.action}` }, { deadLetter: true });
    const { connector, name, action } = resolved;
    const params = action.input.safeParse(c.params);
    if (!params.success) return fail(ctx, c, record, { code: 'invalid_params', message: prettify(params.error) }, { deadLetter: true });

    const ws = o.workspaceConnectors.get(wsConnectorKey(c.workspace_id, connector.manifest.id));
    const policy = o.workspaceConnectors.get(wsConnectorKey(c.workspace_id, WORKSPACE_POLICY));
    if (action.permission === 'financial_action' && !policy?.financial_actions_enabled) {
      return fail(ctx, c, record, { code: 'financial_actions_disabled', message: 'financial actions are refused unless the workspace enables them' }, { audit: true });
    }
    if (action.approvalGate === 'blocked_by_default') return fail(ctx, c, record, { code: 'blocked', message: `${connector.manifest.id}.${name} is blocked by default` }, { audit: true });
    let creds;
    try {
      creds = await resolveCredentials(o.store, connector.manifest, c.workspace_id);
    } catch (e) {
      throw new HubError('secret_store_unavailable', 'credentials unavailable', { retryable: true, cause: e });
    }
    if (!creds.ok) return fail(ctx, c, record, { code: 'not_connected', message: `missing credentials: ${creds.missing.join(', ')}`, auth_help: connector.manifest.authHelp });
    if (ws?.connection === 'needs_reauth') return fail(ctx, c, record, { code: 'needs_reauthorization', message: `${connector.manifest.id} must be re-authorized for this workspace`, auth_help: connector.manifest.authHelp });

    if (action.approvalGate === 'external_write' && !connector.preapproved?.(name, params.data as Record<string, unknown>, ws?.settings ?? {})) {
      const gate = await approvalGate(ctx, c, connector.manifest.id, name);
      if (gate !== 'approved') return gate === 'denied' ? fail(ctx, c, record, { code: 'approval_denied', message: 'an admin denied this action' }, { audit: true }) : undefined;
    }

    const wait = o.buckets.take(`${c.workspace_id}:${connector.manifest.id}`);
    if (wait > 0) await sleep(wait); // only this workspace's commands wait (records run per key)

    if (action.approvalGate === 'external_write' || action.approvalGate === 'workspace_write') {
      await rt.bus.publish(stateRecord(c, { phase: 'started', at: Date.now() }));
      o.states.applyLocal(key, { phase: 'started', at: Date.now() });
    }
    const attempt = await callWithRetries(c, connector, name, params.data as Record<string, unknown>, creds.values, ws?.settings ?? {});
    if (!attempt.ok) {
      if (attempt.error.code === 'vendor_unauthorized') {
        await o.workspaceConnectors.set(wsConnectorKey(c.workspace_id, connector.manifest.id), { ...(ws ?? { settings: {} }), connection: 'needs_reauth', connection_detail: attempt.error.message, updated_at: new Date().toISOString() });
      }
      return fail(ctx, c, record, { ...attempt.error, ...(attempt.error.code === 'vendor_unauthorized' ? { auth_help: connector.manifest.authHelp } : {}) }, { deadLetter: attempt.error.retryable === true, attempts: attempt.attempts, audit: true });
    }
    const output = action.output.safeParse(attempt.result);
    if (!output.success) return fail(ctx, c, record, { code: 'invalid_vendor_response', message: prettify(output.error) }, { attempts: attempt.attempts, audit: true });
    const event = outcomeEvent(service, c, { status: 'succeeded', result: output.data, attempts: attempt.attempts });
    const emitted = await emittedRecords(c, connector, attempt.emitted);
    const extra = emitted.concat(action.auditRequired ? [await auditRecord(rt.codec, source, { kind: 'action_used', workspace_id: c.workspace_id, connector: connector.manifest.id, action: name, command_id: c.command_id, actor: c.agent_id, outcome: 'succeeded' }, `${c.command_id}:used`)] : []);
    await finish(ctx, c, outcomeTopic(c), event, extra);
  }

  /** Extra events of a handler, checked against the connector's event schemas, keyed by workspace. */
  async function emittedRecords(c: Command, connector: Connector, emitted: Emitted[]): Promise<OutgoingRecord[]> {
    return Promise.all(
      emitted.map(async (e, i) => {
        const schema = connector.events?.[`${e.entity}.${e.action}`];
        if (!schema) throw new HubError('unknown_event_type', `${connector.manifest.id} declares no event ${e.entity}.${e.action}`);
        const event = buildEvent(new PayloadSchemas().register('*', schema), { eventType: `${service}.${e.entity}.${e.action}`, workspaceId: c.workspace_id, source, payload: e.payload, idempotencyKey: `${c.command_id}:emit:${i}`, correlationId: c.command_id, causationId: c.command_id });
        return eventRecord(topics.event(service, c.workspace_id, e.entity, e.action), event);
      }),
    );
  }

  /** 'approved' lets it run; otherwise the awaiting (or denied) outcome has been handled here. */
  async function approvalGate(ctx: Ctx, c: Command, connector: string, action: string): Promise<'approved' | 'denied' | 'waiting'> {
    const id = approvalIdFor(service, c);
    if (c.approval_id) {
      if (c.approval_id !== id) return 'denied';
      // The approval and the re-sent command travel on different topics: give the table a moment.
      for (let i = 0; i < 50 && o.approvals.get(id)?.status === 'pending'; i++) await sleep(100);
      const a = o.approvals.get(id);
      if (a?.status === 'approved') return 'approved';
      if (a?.status === 'denied') return 'denied';
    }
    if (!o.approvals.get(id)) {
      const approval: Approval = { approval_id: id, status: 'pending', service, connector, action, command: c, requested_at: new Date().toISOString() };
      const audit = await auditRecord(rt.codec, source, { kind: 'approval_requested', workspace_id: c.workspace_id, connector, action, command_id: c.command_id, approval_id: id, actor: c.agent_id }, `${id}:requested`);
      await finish(ctx, c, outcomeTopic(c), outcomeEvent(service, c, { status: 'awaiting_approval', approval_id: id, attempts: 0 }), [o.approvals.record(id, approval), audit]);
      o.approvals.applyLocal(id, approval);
    } else {
      await finish(ctx, c, outcomeTopic(c), outcomeEvent(service, c, { status: 'awaiting_approval', approval_id: id, attempts: 0 }));
    }
    return 'waiting';
  }

  type Emitted = { entity: string; action: string; payload: unknown };
  async function callWithRetries(c: Command, connector: Connector, name: string, params: Record<string, unknown>, credentials: Record<string, string>, settings: Record<string, unknown>): Promise<{ ok: true; result: unknown; attempts: number; emitted: Emitted[] } | { ok: false; error: Failure; attempts: number; emitted: Emitted[] }> {
    const emitted: Emitted[] = [];
    const emit = (entity: string, action: string, payload: unknown) => void emitted.push({ entity, action, payload });
    for (let attempts = 1; ; attempts++) {
      const signal = AbortSignal.timeout(o.actionTimeoutMs ?? 15_000);
      try {
        const result = await connector.handlers[name]!({ params, workspaceId: c.workspace_id, agentId: c.agent_id, idempotencyKey: c.command_id, credentials, settings, logger: rt.logger, signal, emit });
        return { ok: true, result, attempts, emitted };
      } catch (e) {
        const d = describeError(e);
        const retryable = e instanceof VendorError ? e.retryable : e instanceof HubError ? e.retryable : false;
        if (!retryable || attempts >= retry.maxAttempts) return { ok: false, error: { code: retryable ? 'vendor_unavailable' : d.code, message: d.message, retryable }, attempts, emitted };
        const backoff = Math.min(retry.maxWaitMs, retry.initialMs * 2 ** (attempts - 1));
        const honoured = Math.min(retry.maxWaitMs, Math.max(backoff, e instanceof VendorError ? (e.retryAfterMs ?? 0) : 0));
        await sleep(honoured + Math.random() * backoff * 0.5);
      }
    }
  }

  return rt.bus.subscribe({
    service,
    groupId: o.groupId ?? `ionflux-${service}-worker`,
    subscriptions: [topics.command(service)],
    fromBeginning: true,
    concurrentKeys: true,
    partitionsConsumedConcurrently: o.partitionsConsumedConcurrently,
    // A crashed worker's partitions move to a live one after this long.
    sessionTimeoutMs: 10_000,
    handler: async (record): Promise<Handled> => {
      const ctx: Ctx = { queued: [] };
      await handle(ctx, record);
      return { settled: Promise.all(ctx.queued) };
    },
  });
}

const prettify = (e: z.ZodError) => e.issues.map((i) => `${i.path.join('.') || '(params)'}: ${i.message}`).join('; ').slice(0, 500);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
