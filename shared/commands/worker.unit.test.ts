import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { MemoryBus } from '../bus/memory.ts';
import { KafkaTable, jsonValue } from '../bus/table/table.ts';
import { topics } from '../bus/topics.ts';
import { TokenBuckets } from '../connectors/rate-limit.ts';
import type { Handled, SubscribeOptions } from '../bus/types.ts';
import type { Connector } from '../connectors/types.ts';
import type { EventCodec } from '../events/codec.ts';
import type { PlatformEvent } from '../events/platform-event.ts';
import { HubError } from '../errors.ts';
import { VendorError } from '../connectors/types.ts';
import { createLogger } from '../logger.ts';
import { registerSecret } from '../redact.ts';
import type { Runtime } from '../runtime.ts';
import type { SecretStore } from '../secrets/index.ts';
import { encodeCommandJson } from './envelope.ts';
import { defaultOutcomeTopic } from './outcome.ts';
import { approvalSchema, commandStateFormat, workspaceConnectorSchema, type Approval, type CommandState, type WorkspaceConnector } from './state.ts';
import { MAX_OUTCOME_BYTES, startCommandWorker, type WorkerOptions } from './worker.ts';

// The registry's wire format is not what these tests are about: JSON stands in for Avro.
const codec: EventCodec = { schemaId: 1, encode: async (e) => Buffer.from(JSON.stringify(e)), decode: async (b) => JSON.parse(b.toString()) as PlatformEvent };
const logger = createLogger({ service: 'test', level: 'silent' });
const store = { get: async () => null } as unknown as SecretStore;

let calls = 0;
const connector: Connector = {
  manifest: {
    id: 'demo', name: 'Demo', category: 'developer', version: '1.0.0', authType: 'local', permissionsRequested: ['read'], riskLevel: 'low', authHelp: 'nothing',
    credentialFields: [], healthcheck: { description: 'none' }, disconnectPolicy: 'delete_credentials', dataRetentionPolicy: 'none',
    actions: { echo: { description: 'e', input: z.object({ n: z.number() }), output: z.object({ n: z.number() }), approvalGate: 'read_only', permission: 'read', auditRequired: false } },
  },
  handlers: { echo: async (ctx) => (calls++, { n: ctx.params.n }) },
  healthcheck: async () => ({ ok: true }),
};

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

async function worker(bus: MemoryBus, extra: Partial<WorkerOptions> = {}) {
  const rt = { service: 'demo', logger, bus, codec, registry: {}, createBus: () => bus, onClose: (fn: () => Promise<void> | void) => void closers.push(async () => void (await fn())) } as unknown as Runtime;
  const table = <V>(name: string, parse: (v: unknown) => V) => new KafkaTable<V>({ bus, logger, topic: topics.state(name), parse: jsonValue(parse) });
  const states = new KafkaTable<CommandState>({ bus, logger, topic: topics.state('commands-demo'), ...commandStateFormat('demo') });
  const approvals = table<Approval>('approvals', (v) => approvalSchema.parse(v));
  const workspaceConnectors = table<WorkspaceConnector>('workspace-connectors', (v) => workspaceConnectorSchema.parse(v));
  await Promise.all([states.start(), approvals.start(), workspaceConnectors.start()]);
  const sub = await startCommandWorker({ rt, service: 'demo', connector, store, states, approvals, workspaceConnectors, buckets: new TokenBuckets(1000, 1000), retry: { maxAttempts: 2, initialMs: 1, maxWaitMs: 5 }, ...extra });
  closers.push(async () => {
    await sub.stop();
    await Promise.all([states.close(), approvals.close(), workspaceConnectors.close()]);
  });
}

const send = (bus: MemoryBus, command: Record<string, unknown>, value?: Buffer) =>
  bus.publish({ topic: topics.command('demo'), key: 'acme', value: value ?? encodeCommandJson({ workspace_id: 'acme', agent_id: 'a1', service: 'demo', action: 'echo', params: { n: 1 }, command_id: 'c1', ...command } as never) });

/** The decoded outcomes on acme's outcome topic, once `count` are there. */
async function outcomes(bus: MemoryBus, count: number) {
  for (let i = 0; i < 200 && bus.records(defaultOutcomeTopic('demo', 'acme')).length < count; i++) await new Promise((r) => setTimeout(r, 10));
  return Promise.all(bus.records(defaultOutcomeTopic('demo', 'acme')).map(async (r) => codec.decode(r.value!)));
}

describe('command worker on the in-memory bus', () => {
  it('answers each command once, a duplicate with the same outcome event, and a broken one with invalid_command and a dead letter', async () => {
    const bus = new MemoryBus();
    await worker(bus);
    calls = 0;
    await send(bus, { command_id: 'c1' });
    await send(bus, { command_id: 'c1' });
    await send(bus, {}, Buffer.from('{"command_id":"c2","workspace_id":"acme","agent_id":"a1"}')); // no service, no action
    const got = await outcomes(bus, 3);
    expect(got.map((e) => e.event_type)).toEqual(['demo.command.succeeded', 'demo.command.succeeded', 'demo.command.failed']);
    expect(got[0]!.event_id).toBe(got[1]!.event_id);
    expect(JSON.parse(got[2]!.payload_json)).toMatchObject({ command_id: 'c2', error: { code: 'invalid_command' } });
    expect(calls).toBe(1);
    expect(bus.records(topics.deadLetter('demo'))).toHaveLength(1);
  });

  it('refuses a re-send of a finished command\'s id with other params, audited, under an event id of its own; the first outcome stands', async () => {
    const bus = new MemoryBus();
    await worker(bus);
    calls = 0;
    await send(bus, { command_id: 'c-reused', params: { n: 1 } });
    await send(bus, { command_id: 'c-reused', params: { n: 2 } });
    await send(bus, { command_id: 'c-reused', params: { n: 1 } });
    const got = await outcomes(bus, 3);
    expect(got.map((e) => JSON.parse(e.payload_json) as { status: string; result?: unknown; error?: { code: string } })).toMatchObject([
      { status: 'succeeded', result: { n: 1 } },
      { status: 'failed', error: { code: 'idempotency_key_reused' } },
      { status: 'succeeded', result: { n: 1 } },
    ]);
    expect(got[2]!.event_id).toBe(got[0]!.event_id);
    expect(new Set(got.map((e) => e.event_id)).size).toBe(2);
    expect(calls).toBe(1);
    const audits = await Promise.all(bus.records(topics.audit).map((r) => codec.decode(r.value!)));
    expect(audits.map((e) => JSON.parse(e.payload_json) as { outcome?: string })).toMatchObject([{ outcome: 'idempotency_key_reused' }]);
    expect(bus.records(topics.deadLetter('demo'))).toHaveLength(0);
  });

  it("never carries a known secret that a vendor's error text quoted: not in the outcome, nor in the dead letter", async () => {
    const bus = new MemoryBus();
    const key = `sk-live-${Math.random().toString(36).slice(2)}0123456789`;
    registerSecret(key);
    const quoting: Connector = { ...connector, handlers: { echo: async () => { throw new HubError('vendor_refused', `the vendor refused key ${key} for this request`); } } };
    await worker(bus, { connector: quoting });
    await send(bus, { command_id: 'c-quoting' });
    const [failed] = await outcomes(bus, 1);
    expect(JSON.parse(failed!.payload_json)).toMatchObject({ error: { code: 'vendor_refused', message: 'the vendor refused key [REDACTED] for this request' } });
    const everything = [...bus.records(defaultOutcomeTopic('demo', 'acme')), ...bus.records(topics.deadLetter('demo'))].map((r) => `${r.value?.toString()} ${JSON.stringify(r.headers)}`).join('\n');
    expect(everything).not.toContain(key);
  });

  it('publishes an outcome the bus refused once, when the record runs again, without calling the handler twice', async () => {
    const bus = new MemoryBus();
    let refused = 0;
    const publishAtomic = bus.publishAtomic.bind(bus);
    bus.publishAtomic = (records: Parameters<MemoryBus["publishAtomic"]>[0]) => publishAtomic(records).catch((e: unknown) => ((refused += 1), Promise.reject(e)));
    await worker(bus);
    calls = 0;
    await send(bus, { command_id: 'c3' });
    bus.failPublishes(undefined, 1); // the worker's outcome unit, the next publish
    const got = await outcomes(bus, 1);
    expect(got.map((e) => e.correlation_id)).toEqual(['c3']);
    expect(refused).toBe(1);
    expect(calls).toBe(1);
  });

  it('a re-send taken while the first record\'s outcome is still being recorded waits for it: no outcome on a state Kafka may yet abort', async () => {
    // The Kafka consumer goes on with a key's next record while the previous one's unit is in
    // flight (the in-memory one does not), so the handler is driven here as it does.
    class Driven extends MemoryBus {
      handler: SubscribeOptions['handler'] | undefined;
      override async subscribe(opts: SubscribeOptions) {
        this.handler = opts.handler;
        await opts.onAssigned?.();
        return { stop: async () => undefined };
      }
    }
    const bus = new Driven();
    const writer: Connector = { ...connector, manifest: { ...connector.manifest, actions: { echo: { ...connector.manifest.actions.echo!, approvalGate: 'workspace_write', permission: 'write_draft' } } } };
    const publishAtomic = bus.publishAtomic.bind(bus);
    let abortNext = true;
    bus.publishAtomic = async (records: Parameters<MemoryBus['publishAtomic']>[0]) => {
      if (abortNext && records.some((r) => r.topic === topics.state('commands-demo') && r.value?.toString().includes('"done"'))) {
        abortNext = false;
        await new Promise((r) => setTimeout(r, 50)); // in flight, then aborted
        throw new HubError('publish_failed', 'Kafka did not acknowledge: transaction aborted', { retryable: true });
      }
      return publishAtomic(records);
    };
    const record = (offset: number) => ({ topic: topics.command('demo'), partition: 0, offset: String(offset), key: Buffer.from('acme'), headers: {}, timestamp: String(Date.now()), value: encodeCommandJson({ workspace_id: 'acme', agent_id: 'a1', service: 'demo', action: 'echo', params: { n: 1 }, command_id: 'c5' } as never) });
    const run = async (offset: number) => (await bus.handler!(record(offset), { handover: new AbortController().signal })) as Handled;
    calls = 0;
    await worker(bus, { connector: writer });
    const [first, resend] = [await run(0), await run(1)];
    await Promise.allSettled([first.settled, resend.settled]);
    // The worker stops before running the first record again; the partition's next owner does.
    for (const c of closers.splice(0).reverse()) await c();
    await worker(bus, { connector: writer });
    for (const offset of [0, 1]) await (await run(offset)).settled;
    const got = await outcomes(bus, 1);
    expect(got.map((e) => e.event_type)).toEqual(got.map(() => 'demo.command.succeeded'));
    expect(new Set(got.map((e) => e.event_id)).size).toBe(1);
    expect(calls).toBe(1);
  });

  it('tells a result too large for an outcome event as result_too_large, once, instead of an outcome Kafka would refuse on every attempt', async () => {
    const bus = new MemoryBus();
    const big: Connector = {
      ...connector,
      manifest: { ...connector.manifest, actions: { echo: { ...connector.manifest.actions.echo!, output: z.object({ text: z.string() }) } } },
      handlers: { echo: async () => (calls++, { text: 'x'.repeat(MAX_OUTCOME_BYTES) }) },
    };
    calls = 0;
    await worker(bus, { connector: big });
    await send(bus, { command_id: 'c-big' });
    const [failed, ...more] = await outcomes(bus, 1);
    expect(more).toEqual([]);
    expect(JSON.parse(failed!.payload_json)).toMatchObject({ status: 'failed', error: { code: 'result_too_large' } });
    expect(bus.records(topics.deadLetter('demo'))).toHaveLength(1);
    expect(calls).toBe(1);
  });

  it('works on nothing until the tables a resumed command reads are read to their end', async () => {
    const bus = new MemoryBus();
    calls = 0;
    await send(bus, { command_id: 'c4' });
    let release = () => {};
    const asked: (number | undefined)[] = [];
    const ledger = { catchUp: (ms?: number) => (asked.push(ms), new Promise<void>((r) => (release = r))) };
    const started = worker(bus, { resumeTables: [ledger] });
    await new Promise((r) => setTimeout(r, 100));
    expect(asked).toEqual([60_000]);
    expect(calls).toBe(0);
    expect(bus.records(defaultOutcomeTopic('demo', 'acme'))).toHaveLength(0);
    release();
    await started;
    expect((await outcomes(bus, 1)).map((e) => e.correlation_id)).toEqual(['c4']);
    expect(calls).toBe(1);
  });

  it("a command deferred after the worker ran it again publishes, with its waiting state, what every earlier run's calls billed", async () => {
    const bus = new MemoryBus();
    const billed = { topic: topics.state('demo-spend'), key: 'acme:2026-11-29', value: Buffer.from('{"usd":0.04}') };
    let runs = 0;
    const billing: Connector = {
      ...connector,
      handlers: {
        echo: async (ctx) => {
          ctx.stage(billed, { evenOnFailure: true });
          // The first run fails after its billed call (retried by the worker), the second is asked to wait a minute.
          if (++runs === 1) throw new HubError('internal_error', 'disk full');
          throw new VendorError(429, 'slow down', { retryAfterMs: 60_000 });
        },
      },
    };
    await worker(bus, { connector: billing, retry: { maxAttempts: 2, initialMs: 1, maxWaitMs: 60_000 } });
    const command = { workspace_id: 'acme', agent_id: 'a1', service: 'demo', action: 'echo', params: { n: 1 }, command_id: 'c5' };
    await bus.publish({ topic: topics.workspaceCommand('demo', 'acme'), key: 'acme', value: encodeCommandJson(command as never) });
    const stateTopic = topics.state('commands-demo');
    for (let i = 0; i < 200 && bus.records(stateTopic).length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    const [waiting] = bus.records(stateTopic);
    expect(JSON.parse(waiting!.value!.toString())).toMatchObject({ phase: 'started', retry: { attempts: 1, rate_limited: 1 } });
    expect(runs).toBe(2);
    expect(bus.records(billed.topic)).toHaveLength(2);
    expect(bus.records(defaultOutcomeTopic('demo', 'acme'))).toHaveLength(0);
  });
});
