import { describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import type { KafkaTable } from '../bus/table/table.ts';
import type { IncomingRecord } from '../bus/types.ts';
import { TokenBuckets } from '../connectors/rate-limit.ts';
import type { Connector } from '../connectors/types.ts';
import { Deferred, HandedOver } from '../errors.ts';
import { createLogger } from '../logger.ts';
import type { SecretStore } from '../secrets/index.ts';
import { approvalIdFor, commandDigest, dedupeDigest } from './digest.ts';
import type { Command } from './envelope.ts';
import { decide, type Job, type PipelineDeps } from './pipeline.ts';
import { signRelease, verifyRelease, type Release } from './release.ts';
import { wsConnectorKey, type CommandState, type WorkspaceConnector } from './state.ts';

/** A table held in a Map: the part of KafkaTable the pipeline reads. */
function mapTable<V>(entries: [string, V][] = [], fresh: (m: Map<string, V>) => Promise<void> = async () => undefined) {
  const m = new Map(entries);
  return { get: (k: string) => m.get(k), set: async (k: string, v: V) => void m.set(k, v), applyLocal: (k: string, v: V) => void m.set(k, v), record: () => ({ topic: 't', value: null }), fresh: () => fresh(m) } as unknown as KafkaTable<V>;
}

const calls: string[] = [];
const connector: Connector = {
  manifest: {
    id: 'demo',
    name: 'Demo',
    category: 'developer',
    version: '1.0.0',
    authType: 'local',
    permissionsRequested: ['read', 'external_write'],
    riskLevel: 'low',
    authHelp: 'nothing',
    credentialFields: [],
    healthcheck: { description: 'none' },
    disconnectPolicy: 'delete_credentials',
    dataRetentionPolicy: 'none',
    actions: {
      read: { description: 'r', input: z.object({ n: z.number() }), output: z.object({ n: z.number() }), approvalGate: 'read_only', permission: 'read', auditRequired: false },
      send: { description: 's', input: z.object({ to: z.string() }), output: z.object({ sent: z.string() }), approvalGate: 'external_write', permission: 'external_write', auditRequired: true },
      admin_only: { description: 'a', input: z.object({}), output: z.object({}), approvalGate: 'read_only', permission: 'read', auditRequired: false, invokedBy: ['admin'] },
      loud: { description: 'l', input: z.object({}), output: z.object({}), approvalGate: 'read_only', permission: 'read', auditRequired: false },
      bulk: { description: 'b', input: z.object({}), output: z.object({ resumed: z.boolean() }), approvalGate: 'external_write', permission: 'external_write', auditRequired: true },
    },
  },
  events: { 'demo.done': z.object({ ok: z.boolean() }) },
  resumable: new Set(['bulk']),
  preapproved: (_action, params, settings) => ((settings.preapproved ?? []) as unknown[]).includes(params.to),
  handlers: {
    read: async (ctx) => (calls.push(`read:${ctx.params.n}`), { n: ctx.params.n }),
    send: async (ctx) => (calls.push(`send:${ctx.params.to}`), { sent: String(ctx.params.to) }),
    admin_only: async () => ({}),
    loud: async (ctx) => (ctx.emit('demo', 'undeclared', {}), {}),
    bulk: async (ctx) => ({ resumed: ctx.resumed }),
  },
  healthcheck: async () => ({ ok: true }),
};

const KEY = Buffer.alloc(32, 7);
const store = { get: async () => null } as unknown as SecretStore;

function deps(over: Partial<PipelineDeps> = {}): PipelineDeps {
  return {
    service: 'demo',
    connector,
    bus: {} as PipelineDeps['bus'],
    logger: createLogger({ service: 'test', level: 'silent' }),
    store,
    states: mapTable<CommandState>(),
    workspaceConnectors: mapTable(),
    buckets: new TokenBuckets(1000, 1000),
    retry: { maxAttempts: 1, initialMs: 1, maxWaitMs: 1 },
    actionTimeoutMs: 1000,
    dedupeWindowMs: 3600_000,
    verifyRelease: async (h) => verifyRelease(KEY, h),
    eventRecord: async (topic) => ({ topic, value: null }),
    markStarted: vi.fn(async () => undefined),
    now: () => 1_000_000_000_000,
    ...over,
  };
}

function job(c: Partial<Command>, more: { state?: CommandState; headers?: Record<string, string>; timestamp?: number; principal?: 'agent' | 'admin'; offset?: string } = {}): Job {
  const command: Command = { command_id: 'c1', workspace_id: 'acme', agent_id: 'a1', service: 'demo', action: 'read', params: { n: 1 }, ...c };
  const record: IncomingRecord = { topic: 'ionflux.cmd.demo', partition: 0, offset: more.offset ?? '0', key: null, value: null, headers: more.headers ?? {}, timestamp: String(more.timestamp ?? 1_000_000_000_000 - 1000) };
  const name = command.action.replace(/^demo\./, '');
  return { record, c: command, key: `acme:${command.command_id}`, digest: commandDigest('demo', command), dedupeDigest: dedupeDigest('demo', command), principal: more.principal ?? 'agent', name, action: connector.manifest.actions[name], state: more.state, resumed: false };
}

const release = (j: Job, r: Partial<Release> = {}) => ({ 'ionflux.approval': signRelease(KEY, { approval_id: approvalIdFor('demo', j.c, j.digest), digest: j.digest, decision: 'approved', decided_by: 'cli:admin', decided_at: 'now', ...r }) });
const code = async (j: Job, d = deps()) => {
  const v = await decide(j, d);
  return v.kind === 'fail' ? v.failure.code : v.kind;
};

describe('command pipeline', () => {
  it('runs a read and succeeds with its checked output; `demo.read` names the same action', async () => {
    expect(await decide(job({}), deps())).toMatchObject({ kind: 'succeed', result: { n: 1 }, attempts: 1 });
    expect(await code(job({ action: 'demo.read' }))).toBe('succeed');
  });

  it('replays a finished command and refuses one whose vendor call may have happened', async () => {
    expect(await code(job({}, { state: { phase: 'done', at: 1 } }))).toBe('replay');
    expect(await code(job({ action: 'send', params: { to: 'x' } }, { state: { phase: 'started', at: 1 } }))).toBe('outcome_unknown');
  });

  it('adds nothing for a record the command already answered: read again, or the asking record once its release took over', async () => {
    const send = { action: 'send', params: { to: 'x' } };
    const asked = 'ionflux.cmd.demo/0/0';
    const released = 'ionflux.cmd.demo/0/7';
    // The asking record read again while it waits: its awaiting_approval outcome is out already.
    expect(await code(job(send, { state: { phase: 'awaiting_approval', at: 1, record: asked } }))).toBe('redelivered');
    // Its release is running or ran: the asking record read again (after a crash) neither resumes nor replays.
    expect(await code(job(send, { state: { phase: 'started', at: 1, record: released, origin: asked } }))).toBe('redelivered');
    expect(await code(job(send, { state: { phase: 'done', at: 1, record: released, origin: asked } }))).toBe('redelivered');
    // A re-send while another record runs it waits for that one's outcome; once done, it gets it again.
    expect(await code(job(send, { offset: '9', state: { phase: 'started', at: 1, record: released } }))).toBe('redelivered');
    expect(await code(job(send, { offset: '9', state: { phase: 'done', at: 1, record: released, origin: asked } }))).toBe('replay');
    // The record that started it, read again: an unfinished vendor call is not repeated.
    expect(await code(job(send, { offset: '7', state: { phase: 'started', at: 1, record: released } }))).toBe('outcome_unknown');
    expect(await decide(job({ action: 'bulk', params: {} }, { offset: '7', state: { phase: 'started', at: 1, record: released } }), deps())).toMatchObject({ kind: 'succeed', result: { resumed: true } });
  });

  it('calls a command its vendor asked to wait for again once the wait is over, counting the calls made; not before', async () => {
    const send = { action: 'send', params: { to: 'x' } };
    const now = 1_000_000_000_000;
    const waiting = (at: number): CommandState => ({ phase: 'started', at: 1, record: 'ionflux.cmd.demo/0/0', retry: { at, attempts: 2 } });
    // Read again before its time (a rebalance, a restart): it waits again, the time left.
    const early = await decide(job(send, { state: waiting(now + 4000) }), deps()).catch((e: unknown) => e);
    expect(early).toBeInstanceOf(Deferred);
    expect((early as Deferred).ms).toBe(4000);
    // Its time has come: the vendor is called again, attempt 3, not refused as outcome_unknown.
    const pre = deps({ workspaceConnectors: mapTable<WorkspaceConnector>([[wsConnectorKey('acme', 'demo'), { settings: { preapproved: ['x'] }, updated_at: 'now' }]]), retry: { maxAttempts: 4, initialMs: 1, maxWaitMs: 1 } });
    expect(await decide(job(send, { state: waiting(now) }), pre)).toMatchObject({ kind: 'succeed', attempts: 3 });
    // A re-send of it meanwhile adds nothing: the waiting record answers.
    expect(await code(job(send, { offset: '4', state: waiting(now + 4000) }))).toBe('redelivered');
  });

  it("defers a command over its workspace's rate limit on the workspace's own topic, and gives the token back", async () => {
    const buckets = new TokenBuckets(0.5, 1);
    const own = (id: string) => ({ ...job({ command_id: id }), deferrable: true });
    expect(await code(own('r1'), deps({ buckets }))).toBe('succeed');
    const waited = await decide(own('r2'), deps({ buckets })).catch((e: unknown) => e);
    expect(waited).toBeInstanceOf(Deferred);
    const ms = (waited as Deferred).ms;
    expect(ms).toBeGreaterThan(1500);
    // The token was given back: read again at once, it waits no longer (not a second token's 2 s more).
    expect(((await decide(own('r2'), deps({ buckets })).catch((e: unknown) => e)) as Deferred).ms).toBeLessThanOrEqual(ms);
  });

  it('refuses a re-send of a finished or running command\'s id with other content: never replayed, never run', async () => {
    const sealed = (to: string, expires_at: number) => ({ to, platform_seal: { command_id: 'c1', workspace_id: 'acme', expires_at, mac: `mac-${expires_at}` } });
    const first = job({ action: 'send', params: sealed('x', 1) });
    const finished: CommandState = { phase: 'done', at: 1, record: 'ionflux.cmd.demo/0/0', content_digest: first.dedupeDigest };
    const running: CommandState = { ...finished, phase: 'started' };
    calls.length = 0;
    for (const s of [finished, running]) {
      // Another recipient under the same id: refused, and the first command's state stays as it was.
      const other = await decide(job({ action: 'send', params: sealed('y', 2) }, { offset: '5', state: s }), deps());
      expect(other).toMatchObject({ kind: 'fail', failure: { code: 'idempotency_key_reused', finishes: false } });
      // Another sender of the same content is another command too.
      expect(await code(job({ action: 'send', params: sealed('x', 2), agent_id: 'a2' }, { offset: '5', state: s }))).toBe('idempotency_key_reused');
    }
    // The same request again, sealed anew (a later expiry): the same command.
    expect(await code(job({ action: 'send', params: sealed('x', 2) }, { offset: '5', state: finished }))).toBe('replay');
    expect(await code(job({ action: 'send', params: sealed('x', 2) }, { offset: '5', state: running }))).toBe('redelivered');
    // A state written before states carried the digest: answered as before.
    expect(await code(job({ action: 'send', params: { to: 'y' } }, { offset: '5', state: { phase: 'done', at: 1, record: 'ionflux.cmd.demo/0/0' } }))).toBe('replay');
    expect(calls).toEqual([]);
  });

  it('re-runs a resumable action found started, telling the handler it resumes', async () => {
    expect(await decide(job({ action: 'bulk', params: {} }, { state: { phase: 'started', at: 1 } }), deps())).toMatchObject({ kind: 'succeed', result: { resumed: true } });
  });

  it('refuses a record older than the dedupe window, another service\'s action and an unknown one', async () => {
    expect(await code(job({}, { timestamp: 1_000_000_000_000 - 3600_001 }))).toBe('expired_command');
    expect(await code(job({ action: 'llm.get_budget' }))).toBe('unknown_action');
    expect(await code(job({ service: 'llm' }))).toBe('unknown_action');
    expect(await code(job({ params: { n: 'one' } }))).toBe('invalid_params');
  });

  it('lets only admins send admin-only actions', async () => {
    expect(await code(job({ action: 'admin_only', params: {} }))).toBe('forbidden_principal');
    expect(await code(job({ action: 'admin_only', params: {} }, { principal: 'admin' }))).toBe('succeed');
  });

  it('decides an external write on the settings as they stand when it is taken; a read on the table as it is', async () => {
    let reads = 0;
    // The admin's pre-approval of `pre` is on the topic but not yet applied here: reading to the end applies it.
    const table = mapTable<WorkspaceConnector>([], async (m) => {
      reads += 1;
      m.set(wsConnectorKey('acme', 'demo'), { settings: { preapproved: ['pre'] }, connection: 'connected', updated_at: 'now' });
    });
    expect(await code(job({ action: 'send', params: { to: 'pre' } }), deps({ workspaceConnectors: table }))).toBe('succeed');
    expect(reads).toBe(1);
    expect(await code(job({}), deps({ workspaceConnectors: table }))).toBe('succeed');
    expect(reads).toBe(1);
    // Kafka not answering: retried (and in the end failed with a dead letter), never decided on what the table held.
    const down = mapTable<WorkspaceConnector>([], async () => Promise.reject(new Error('table_not_ready')));
    const v = await decide(job({ action: 'send', params: { to: 'pre' } }), deps({ workspaceConnectors: down }));
    expect(v).toMatchObject({ kind: 'fail', failure: { code: 'settings_unavailable', retryable: true } });
  });

  it('leaves a command not started yet to the next owner when its partition is handed over; a resumable one stops at its safe point', async () => {
    const gone = new AbortController();
    gone.abort();
    await expect(decide({ ...job({}), handover: gone.signal }, deps())).rejects.toBeInstanceOf(HandedOver);
    // A resumable handler sees ctx.handover; whatever it throws when stopping, the command is handed over, not failed.
    const handover = new AbortController();
    const stopping = { ...connector, handlers: { ...connector.handlers, bulk: async (ctx: { handover?: AbortSignal }) => (handover.abort(), ctx.handover!.throwIfAborted(), { resumed: false }) } } as Connector;
    await expect(decide({ ...job({ action: 'bulk', params: {} }, { state: { phase: 'started', at: 1 } }), handover: handover.signal }, deps({ connector: stopping }))).rejects.toBeInstanceOf(HandedOver);
  });

  it('keeps an external write for approval, bound to its digest', async () => {
    const j = job({ action: 'send', params: { to: 'x' } });
    const v = await decide(j, deps());
    expect(v).toMatchObject({ kind: 'await', approval: { approval_id: approvalIdFor('demo', j.c, j.digest), digest: j.digest, status: 'pending' } });
    expect(calls).not.toContain('send:x');
  });

  it('runs a release only when an admin signed it for exactly this content', async () => {
    const waiting: CommandState = { phase: 'awaiting_approval', at: 1, digest: commandDigest('demo', { action: 'send', params: { to: 'x' }, workspace_id: 'acme' }) };
    const base = job({ action: 'send', params: { to: 'x' } });
    const withId = (j: Job, headers: Record<string, string>) => job({ ...j.c, approval_id: approvalIdFor('demo', j.c, j.digest) }, { state: waiting, headers });

    expect(await code(withId(base, {}))).toBe('forbidden_principal'); // no signature: an agent's own release
    expect(await code(withId(base, { 'ionflux.approval': signRelease(Buffer.alloc(32, 1), { approval_id: 'x', digest: base.digest, decision: 'approved', decided_by: 'a', decided_at: 'n' }) }))).toBe('forbidden_principal');
    expect(await code(withId(base, release(base, { decision: 'denied' })))).toBe('approval_denied');
    const other = job({ action: 'send', params: { to: 'y' } });
    expect(await code(job({ ...other.c, approval_id: approvalIdFor('demo', base.c, base.digest) }, { state: waiting, headers: release(base) }))).toBe('approval_mismatch');
    calls.length = 0;
    expect(await code(withId(base, release(base)))).toBe('succeed');
    expect(calls).toEqual(['send:x']);
  });

  it('answers the same id with other content while awaiting approval with approval_mismatch, leaving it waiting', async () => {
    const waiting: CommandState = { phase: 'awaiting_approval', at: 1, digest: 'something-else' };
    const v = await decide(job({ action: 'send', params: { to: 'x' } }, { state: waiting }), deps());
    expect(v).toMatchObject({ kind: 'fail', failure: { code: 'approval_mismatch', finishes: false } });
  });

  it('fails an undeclared emitted event as invalid_event, and a secret store error as retryable secret_store_unavailable', async () => {
    expect(await code(job({ action: 'loud', params: {} }))).toBe('invalid_event');
    const down = { get: async () => Promise.reject(new Error('connect ECONNREFUSED')) } as unknown as SecretStore;
    const needsCreds = { ...connector, manifest: { ...connector.manifest, credentialFields: ['api_key'] } };
    const v = await decide(job({}), deps({ store: down, connector: needsCreds }));
    expect(v).toMatchObject({ kind: 'fail', failure: { code: 'secret_store_unavailable', retryable: true } });
  });
});
