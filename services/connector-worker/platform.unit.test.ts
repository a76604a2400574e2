import { afterEach, describe, expect, it } from 'vitest';
import { MemoryBus } from '../../shared/bus/memory.ts';
import { KafkaTable, jsonValue } from '../../shared/bus/table/table.ts';
import { topics } from '../../shared/bus/topics.ts';
import type { OutgoingRecord } from '../../shared/bus/types.ts';
import { decisionRecords } from '../../shared/commands/approvals.ts';
import { encodeCommandJson } from '../../shared/commands/envelope.ts';
import { defaultOutcomeTopic } from '../../shared/commands/outcome.ts';
import { approvalSchema, commandKey, commandStateFormat, workspaceConnectorSchema, type Approval, type CommandState, type WorkspaceConnector } from '../../shared/commands/state.ts';
import { startCommandWorker } from '../../shared/commands/worker.ts';
import { TokenBuckets } from '../../shared/connectors/rate-limit.ts';
import type { EventCodec } from '../../shared/events/codec.ts';
import type { PlatformEvent } from '../../shared/events/platform-event.ts';
import { createLogger } from '../../shared/logger.ts';
import type { Runtime } from '../../shared/runtime.ts';
import type { SecretStore } from '../../shared/secrets/index.ts';
import { createPlatformConnector } from './platform.ts';

// JSON stands in for Avro: the registry's wire format is not what these tests are about.
const codec: EventCodec = { schemaId: 1, encode: async (e) => Buffer.from(JSON.stringify(e)), decode: async (b) => JSON.parse(b.toString()) as PlatformEvent };
const logger = createLogger({ service: 'test', level: 'silent' });
const signingKey = Buffer.alloc(32, 7);
const store = { get: async () => ({ value: { signing_key: signingKey.toString('base64') } }) } as unknown as SecretStore;

const pending: Approval = {
  approval_id: 'apr_1',
  status: 'pending',
  service: 'webhook',
  connector: 'webhook',
  action: 'post',
  command: { command_id: 'w1', workspace_id: 'acme', agent_id: 'a1', service: 'webhook', action: 'post', params: { url: 'https://example.com/hook' } },
  requested_at: '2026-11-29T10:00:00.000Z',
};

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

async function approvalsTable(bus: MemoryBus) {
  const t = new KafkaTable<Approval>({ bus, logger, topic: topics.state('approvals'), parse: jsonValue((v) => approvalSchema.parse(v)) });
  await t.start();
  closers.push(() => t.close());
  return t;
}

describe('approval decisions', () => {
  it('are refused a second time, but the deciding platform command run again gets the same records', async () => {
    const bus = new MemoryBus();
    const approvals = await approvalsTable(bus);
    await approvals.set('apr_1', pending);
    const first = await decisionRecords({ codec, approvals, signingKey }, 'apr_1', 'approved', 'admin:ops', undefined, 'p1');
    approvals.applyLocal('apr_1', first.decided);
    const again = await decisionRecords({ codec, approvals, signingKey }, 'apr_1', 'approved', 'admin:ops', undefined, 'p1');
    // The same decision and release, byte for byte (the release's signature included), and the same audit id.
    const bytes = (rs: OutgoingRecord[]) => rs.slice(0, 2).map((r) => [r.topic, r.key, r.value?.toString(), JSON.stringify(r.headers ?? {})]);
    expect(bytes(again.records)).toEqual(bytes(first.records));
    expect(again.records[2]!.headers).toEqual(first.records[2]!.headers);
    await expect(decisionRecords({ codec, approvals, signingKey }, 'apr_1', 'approved', 'admin:ops', undefined, 'p2')).rejects.toMatchObject({ code: 'already_decided' });
    await expect(decisionRecords({ codec, approvals, signingKey }, 'apr_1', 'denied', 'admin:ops', undefined, 'p1')).rejects.toMatchObject({ code: 'already_decided' });
    await expect(decisionRecords({ codec, approvals, signingKey }, 'apr_1', 'approved', 'cli:ops')).rejects.toMatchObject({ code: 'already_decided' });
  });

  it('an approve whose worker stopped between starting it and recording it is decided by the next owner, not failed outcome_unknown', async () => {
    const bus = new MemoryBus();
    const approvals = await approvalsTable(bus);
    await approvals.set('apr_1', pending);
    const states = new KafkaTable<CommandState>({ bus, logger, topic: topics.state('commands-platform'), ...commandStateFormat('platform') });
    const workspaceConnectors = new KafkaTable<WorkspaceConnector>({ bus, logger, topic: topics.state('workspace-connectors'), parse: jsonValue((v) => workspaceConnectorSchema.parse(v)) });
    await Promise.all([states.start(), workspaceConnectors.start()]);
    // The previous owner took the record and wrote `started` (a workspace_write), then stopped
    // before its outcome's transaction (decision, release, audit) committed.
    const ack = await bus.publish({ topic: topics.command('platform'), key: 'acme', value: encodeCommandJson({ command_id: 'p1', workspace_id: 'acme', agent_id: 'ops', service: 'platform', action: 'approvals.approve', params: { approval_id: 'apr_1' } }) });
    await states.set(commandKey('acme', 'p1'), { phase: 'started', at: Date.now(), record: `${topics.command('platform')}/${ack.partition}/${ack.offset}` });
    const rt = { service: 'connector-worker', logger, bus, codec, registry: {}, createBus: () => bus, onClose: (fn: () => Promise<void> | void) => void closers.push(async () => void (await fn())) } as unknown as Runtime;
    const connector = createPlatformConnector({ codec, approvals, store });
    const sub = await startCommandWorker({ rt, service: 'platform', connector, store, states, approvals, workspaceConnectors, buckets: new TokenBuckets(1000, 1000), retry: { maxAttempts: 2, initialMs: 1, maxWaitMs: 5 }, principalOf: () => 'admin' });
    closers.push(async () => {
      await sub.stop();
      await Promise.all([states.close(), workspaceConnectors.close()]);
    });

    const outcomeTopic = defaultOutcomeTopic('platform', 'acme');
    for (let i = 0; i < 300 && bus.records(outcomeTopic).length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    const outcomes = await Promise.all(bus.records(outcomeTopic).map((r) => codec.decode(r.value!)));
    expect(outcomes.map((e) => JSON.parse(e.payload_json) as { status: string; result?: unknown })).toEqual([expect.objectContaining({ status: 'succeeded', result: { approval_id: 'apr_1', status: 'approved' } })]);
    // One release of the kept command reached its service, and the approval is decided in Kafka.
    expect(bus.records(topics.command('webhook')).map((r) => JSON.parse(r.value!.toString()) as { command_id: string; approval_id: string })).toEqual([expect.objectContaining({ command_id: 'w1', approval_id: 'apr_1' })]);
    const kept = bus.records(topics.state('approvals')).map((r) => approvalSchema.parse(JSON.parse(r.value!.toString())));
    expect(kept.at(-1)).toMatchObject({ status: 'approved', decided_by: 'admin:ops', decided_command: 'p1' });
  });
});
