import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { IncomingRecord, OutgoingRecord } from '../bus/types.ts';
import type { Connector } from '../connectors/types.ts';
import { VendorError } from '../connectors/types.ts';
import { HubError } from '../errors.ts';
import { deterministicEventId } from '../events/platform-event.ts';
import { createLogger } from '../logger.ts';
import type { Command } from './envelope.ts';
import { carryKept, execute, keptOf, RetryLater } from './execute.ts';
import type { Job, PipelineDeps } from './pipeline.ts';

const billed: OutgoingRecord = { topic: 'ionflux.state.demo-spend', key: 'acme:2026-03-10', value: Buffer.from('{"usd":0.04}') };
const note: OutgoingRecord = { topic: 'ionflux.state.demo-notes', key: 'acme', value: Buffer.from('{}') };

/** A vendor call that bills, then a step after it that may fail (`then`), as an LLM image that cannot be stored. */
function connector(then: () => unknown): Connector {
  return {
    manifest: { id: 'demo', actions: { paint: { output: z.object({ url: z.string() }) } } } as unknown as Connector['manifest'],
    handlers: {
      paint: async (ctx) => {
        ctx.stage(billed, { evenOnFailure: true });
        ctx.stage(note);
        return then();
      },
    },
    healthcheck: async () => ({ ok: true }),
  };
}

function run(then: () => unknown, maxAttempts = 1, o: { deferrable?: boolean; attemptsBefore?: number; rateLimitedBefore?: number; maxWaitMs?: number } = {}) {
  const c = { command_id: 'cmd-1', workspace_id: 'acme', agent_id: 'agent-1', service: 'demo', action: 'paint', params: {} } as unknown as Command;
  const conn = connector(then);
  const job = { record: {} as IncomingRecord, c, key: 'acme:cmd-1', digest: '', principal: 'agent', name: 'paint', action: conn.manifest.actions.paint, params: {}, resumed: false, deferrable: o.deferrable, attemptsBefore: o.attemptsBefore, rateLimitedBefore: o.rateLimitedBefore } as unknown as Job;
  const deps = { service: 'demo', connector: conn, logger: createLogger({ service: 'test', level: 'silent' }), retry: { maxAttempts, initialMs: 1, maxWaitMs: o.maxWaitMs ?? 1 }, actionTimeoutMs: 1000, eventRecord: async (topic: string) => ({ topic, value: null }), now: Date.now } as unknown as PipelineDeps;
  return execute(job, deps);
}

describe('records staged evenOnFailure (what a vendor already did and billed)', () => {
  it('go with a succeeded outcome, as other staged records do', async () => {
    const v = await run(() => ({ url: 'https://x/1.png' }));
    expect(v).toMatchObject({ kind: 'succeed', extra: [note, billed] });
    expect(keptOf(v)).toEqual([billed]);
  });

  it('go with a failed one too: the handler failing after the call, or its result failing the output schema; other staged records do not', async () => {
    const thrown = await run(() => Promise.reject(new Error('ENOSPC: no space left on device')));
    expect(thrown).toMatchObject({ kind: 'fail', failure: { code: 'Error' } });
    expect(keptOf(thrown)).toEqual([billed]);
    const invalid = await run(() => ({ url: 42 }));
    expect(invalid).toMatchObject({ kind: 'fail', failure: { code: 'invalid_vendor_response' } });
    expect(keptOf(invalid)).toEqual([billed]);
  });

  it("every attempt's: a retried call was billed again", async () => {
    let n = 0;
    const v = await run(() => (++n === 1 ? Promise.reject(new HubError('store_busy', 'try again', { retryable: true })) : { url: 'https://x/2.png' }), 2);
    expect(v).toMatchObject({ kind: 'succeed', attempts: 2, extra: [note, billed, billed] });
    const failed = await run(() => Promise.reject(new HubError('store_busy', 'try again', { retryable: true })), 2);
    expect(failed).toMatchObject({ kind: 'fail', failure: { code: 'vendor_unavailable', attempts: 2 } });
    expect(keptOf(failed)).toEqual([billed, billed]);
  });
});

describe('a vendor asking to wait (Retry-After)', () => {
  const throttled = () => Promise.reject(new VendorError(429, 'slow down', { retryAfterMs: 5000 }));

  it("on a workspace's own topic: not slept in the handler; the command is deferred with its calls so far and what they billed", async () => {
    const e = await run(throttled, 4, { deferrable: true, maxWaitMs: 30_000 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(RetryLater);
    expect(e).toMatchObject({ attempts: 1, kept: [billed] });
    expect((e as RetryLater).ms).toBeGreaterThanOrEqual(5000);
  });

  const unavailable = () => Promise.reject(new VendorError(503, 'down for maintenance', { retryAfterMs: 5000 }));

  it('called again after the wait: the attempts go on from where they were, and failed calls use up the budget', async () => {
    let n = 0;
    const v = await run(() => (++n === 1 ? { url: 'https://x/3.png' } : throttled()), 4, { deferrable: true, attemptsBefore: 2, maxWaitMs: 30_000 });
    expect(v).toMatchObject({ kind: 'succeed', attempts: 3 });
    const spent = await run(unavailable, 4, { deferrable: true, attemptsBefore: 3, maxWaitMs: 30_000 });
    expect(spent).toMatchObject({ kind: 'fail', failure: { code: 'vendor_unavailable', attempts: 4 } });
  });

  it("a deferred command's rate-limited calls (429) have a budget of their own: four in a row do not fail it, twenty more than its failures do", async () => {
    const fifth = await run(throttled, 4, { deferrable: true, attemptsBefore: 4, rateLimitedBefore: 4, maxWaitMs: 30_000 }).catch((x: unknown) => x);
    expect(fifth).toBeInstanceOf(RetryLater);
    expect(fifth).toMatchObject({ attempts: 5, rateLimited: 5 });
    // 20 rate-limited calls and 3 failed ones so far: the next 429 is the fourth failure.
    const spent = await run(throttled, 4, { deferrable: true, attemptsBefore: 23, rateLimitedBefore: 20, maxWaitMs: 30_000 });
    expect(spent).toMatchObject({ kind: 'fail', failure: { code: 'vendor_unavailable', attempts: 24 } });
  });

  it("slept in place (the service's shared topic), a 429 counts as an attempt, as before", async () => {
    const v = await run(() => Promise.reject(new VendorError(429, 'slow down', { retryAfterMs: 1 })), 2, { deferrable: false });
    expect(v).toMatchObject({ kind: 'fail', failure: { code: 'vendor_unavailable', attempts: 2 } });
  });
});

describe('a command the worker runs again after a retried failure', () => {
  it("publishes every run's billed records with the last run's outcome, failed or succeeded", () => {
    const earlier = [billed, billed];
    expect(carryKept({ kind: 'fail', failure: { code: 'internal_error', message: 'x' }, kept: [billed] }, earlier)).toMatchObject({ kind: 'fail', kept: [billed, billed, billed] });
    const ok = carryKept({ kind: 'succeed', result: {}, attempts: 1, extra: [note] }, earlier);
    expect(ok).toMatchObject({ kind: 'succeed', extra: [note, billed, billed], kept: [billed, billed] });
  });

  it("keeps what the call billed when the action's events cannot be encoded after it (registry down)", async () => {
    const conn = connector(() => ({ url: 'https://x/4.png' }));
    conn.handlers.paint = async (ctx) => (ctx.stage(billed, { evenOnFailure: true }), ctx.emit('image', 'ready', {}), { url: 'https://x/4.png' });
    conn.events = { 'image.ready': z.object({}) };
    const c = { command_id: 'cmd-1', workspace_id: 'acme', agent_id: 'agent-1', service: 'demo', action: 'paint', params: {} } as unknown as Command;
    const job = { record: {} as IncomingRecord, c, key: 'acme:cmd-1', name: 'paint', action: conn.manifest.actions.paint, params: {}, resumed: false } as unknown as Job;
    const deps = { service: 'demo', connector: conn, logger: createLogger({ service: 'test', level: 'silent' }), retry: { maxAttempts: 1, initialMs: 1, maxWaitMs: 1 }, actionTimeoutMs: 1000, eventRecord: () => Promise.reject(new Error('registry unreachable')), now: Date.now } as unknown as PipelineDeps;
    const v = await execute(job, deps);
    expect(v).toMatchObject({ kind: 'fail', failure: { code: 'internal_error' } });
    expect(keptOf(v)).toEqual([billed]);
  });
});

describe('a vendor refusing the credentials a command used (401)', () => {
  function refused(row: { updated_at: string } | undefined, used: string, markUnauthorized?: Connector['markUnauthorized']) {
    const conn = connector(() => Promise.reject(new VendorError(401, 'token revoked')));
    if (markUnauthorized) conn.markUnauthorized = markUnauthorized;
    const rows = new Map<string, unknown>(row ? [['acme:demo', { settings: {}, connection: 'connected', ...row }]] : []);
    const table = { fresh: async () => undefined, get: (k: string) => rows.get(k), set: async (k: string, v: unknown) => void rows.set(k, v) };
    const c = { command_id: 'cmd-1', workspace_id: 'acme', agent_id: 'agent-1', service: 'demo', action: 'paint', params: {} } as unknown as Command;
    const job = { record: {} as IncomingRecord, c, key: 'acme:cmd-1', name: 'paint', action: conn.manifest.actions.paint, params: {}, resumed: false, connection: { settings: {}, connection: 'connected', updated_at: used } } as unknown as Job;
    const deps = { service: 'demo', connector: conn, logger: createLogger({ service: 'test', level: 'silent' }), retry: { maxAttempts: 1, initialMs: 1, maxWaitMs: 1 }, actionTimeoutMs: 1000, workspaceConnectors: table, eventRecord: async (topic: string) => ({ topic, value: null }), now: Date.now } as unknown as PipelineDeps;
    return { run: () => execute(job, deps), row: () => rows.get('acme:demo') as { connection: string } | undefined };
  }

  it('marks the connection it used needs_reauth', async () => {
    const r = refused({ updated_at: 't1' }, 't1');
    expect(await r.run()).toMatchObject({ kind: 'fail', failure: { code: 'vendor_unauthorized' } });
    expect(r.row()).toMatchObject({ connection: 'needs_reauth' });
  });

  it('leaves a connection renewed since the command read it (a reconnect racing the refusal) as it is', async () => {
    const r = refused({ updated_at: 't2' }, 't1');
    expect(await r.run()).toMatchObject({ kind: 'fail', failure: { code: 'vendor_unauthorized' } });
    expect(r.row()).toMatchObject({ connection: 'connected' });
  });

  it("lets a connector mark it its own way (a compare-and-set of its tokens)", async () => {
    const marks: unknown[] = [];
    const r = refused({ updated_at: 't1' }, 't1', async (...args) => void marks.push(args));
    await r.run();
    expect(marks).toEqual([['acme', 'token revoked', 't1']]);
    expect(r.row()).toMatchObject({ connection: 'connected' });
  });
});

describe('an event emitted evenOnFailure (the LLM usage event of a billed call)', () => {
  function emitting(then: () => unknown, maxAttempts = 1) {
    const conn = connector(then);
    conn.events = { 'usage.recorded': z.object({ usd: z.number() }) };
    const inner = conn.handlers.paint!;
    conn.handlers.paint = async (ctx) => (ctx.emit('usage', 'recorded', { usd: 0.04 }, { evenOnFailure: true }), inner(ctx));
    const c = { command_id: 'cmd-1', workspace_id: 'acme', agent_id: 'agent-1', service: 'demo', action: 'paint', params: {} } as unknown as Command;
    const job = { record: {} as IncomingRecord, c, key: 'acme:cmd-1', name: 'paint', action: conn.manifest.actions.paint, params: {}, resumed: false } as unknown as Job;
    const deps = { service: 'demo', connector: conn, logger: createLogger({ service: 'test', level: 'silent' }), retry: { maxAttempts, initialMs: 1, maxWaitMs: 1 }, actionTimeoutMs: 1000, eventRecord: async (topic: string, event: { event_id: string }) => ({ topic, key: event.event_id, value: null }), now: Date.now } as unknown as PipelineDeps;
    return execute(job, deps);
  }
  const usage = { topic: 'ionflux.demo.ws_acme.usage.recorded', key: deterministicEventId('demo.usage.recorded:acme:cmd-1:emit:0'), value: null };

  it('goes with a failed outcome, with the id of the handler\'s first emitted event', async () => {
    const v = await emitting(() => Promise.reject(new Error('ENOSPC')));
    expect(v).toMatchObject({ kind: 'fail' });
    expect(keptOf(v)).toEqual([usage, billed]);
  });

  it('goes once with a succeeded one', async () => {
    const v = await emitting(() => ({ url: 'https://x/5.png' }));
    expect(v).toMatchObject({ kind: 'succeed', extra: [note, usage, billed] });
  });

  it("has an id of its own for each call of the handler: a call billed again after a retried failure is a second usage event, not a duplicate of the first", async () => {
    let n = 0;
    const v = await emitting(() => (++n === 1 ? Promise.reject(new HubError('store_busy', 'try again', { retryable: true })) : { url: 'https://x/6.png' }), 2);
    const second = { ...usage, key: deterministicEventId('demo.usage.recorded:acme:cmd-1:emit:2.0') };
    expect(keptOf(v)).toEqual([usage, billed, second, billed]);
  });
});
