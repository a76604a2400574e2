import { afterEach, describe, expect, it } from 'vitest';
import { MemoryBus } from '../bus/memory.ts';
import { topics } from '../bus/topics.ts';
import type { EventCodec } from '../events/codec.ts';
import type { PlatformEvent } from '../events/platform-event.ts';
import { HubError } from '../errors.ts';
import { createLogger } from '../logger.ts';
import { hubClientOn, type HubClient } from './client.ts';
import { defaultOutcomeTopic, outcomeEvent } from './outcome.ts';

// The registry's wire format is not what these tests are about: JSON stands in for Avro.
const codec: EventCodec = { schemaId: 1, encode: async (e) => Buffer.from(JSON.stringify(e)), decode: async (b) => JSON.parse(b.toString()) as PlatformEvent };
const logger = createLogger({ service: 'test', level: 'silent' });

const clients: HubClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
});

describe('hub client', () => {
  it('resolves send with the outcome published for its command id', async () => {
    const bus = new MemoryBus(1);
    const client = hubClientOn(bus, codec, logger);
    clients.push(client);
    const sub = await bus.subscribe({
      service: 'demo',
      groupId: 'worker',
      subscriptions: [topics.command('demo')],
      fromBeginning: true,
      handler: async (r) => {
        const c = JSON.parse(r.value!.toString()) as { command_id: string; workspace_id: string; agent_id: string; action: string };
        const event = outcomeEvent('demo', c, { status: 'succeeded', result: { ok: true }, attempts: 1 });
        await bus.publish({ topic: defaultOutcomeTopic('demo', c.workspace_id), key: c.workspace_id, value: await codec.encode(event) });
      },
    });
    try {
      const out = await client.send({ workspace_id: 'acme', agent_id: 'a1', service: 'demo', action: 'echo', params: {} }, { timeoutMs: 5000 });
      expect(out).toMatchObject({ status: 'succeeded', result: { ok: true }, service: 'demo' });
    } finally {
      await sub.stop();
    }
  });

  it('a send the bus refuses rejects with the bus error and leaves no timer to reject later', async () => {
    const bus = new MemoryBus(1);
    const client = hubClientOn(bus, codec, logger);
    clients.push(client);
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    try {
      bus.failPublishes(new HubError('publish_failed', 'broker unavailable', { retryable: true }));
      await expect(client.send({ workspace_id: 'acme', agent_id: 'a1', service: 'demo', action: 'echo', params: {} }, { timeoutMs: 30 })).rejects.toMatchObject({ code: 'publish_failed' });
      // Past the send's timeout: before, its timer rejected a promise nobody held, which ends a
      // Node process run with the default --unhandled-rejections=throw.
      await new Promise((r) => setTimeout(r, 120));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});
