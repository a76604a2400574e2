import { describe, expect, it } from 'vitest';
import type { Kafka } from 'kafkajs';
import { createLogger } from '../../logger.ts';
import { startReader } from './reader.ts';

// A stand-in for kafkajs's client at the level the reader drives it (events, run, seek): enough
// to make it crash in a way kafkajs itself does not restart from, which a real broker does only
// when its group coordinator is gone. The reader against a real broker: tests/bus.integration.test.ts.
function fakeKafka() {
  const consumers: { on: Record<string, (e: unknown) => void>; seeks: unknown[]; eachBatch?: (p: unknown) => Promise<void>; disconnected: boolean }[] = [];
  const kafka = {
    consumer: () => {
      const c = { on: {} as Record<string, (e: unknown) => void>, seeks: [] as unknown[], eachBatch: undefined as ((p: unknown) => Promise<void>) | undefined, disconnected: false };
      consumers.push(c);
      return {
        events: { END_BATCH_PROCESS: 'end', GROUP_JOIN: 'join', CRASH: 'crash' },
        on: (ev: string, fn: (e: unknown) => void) => void (c.on[ev] = fn),
        connect: async () => undefined,
        subscribe: async () => undefined,
        run: async (o: { eachBatch: (p: unknown) => Promise<void> }) => void (c.eachBatch = o.eachBatch),
        seek: (s: unknown) => void c.seeks.push(s),
        disconnect: async () => void (c.disconnected = true),
      };
    },
  };
  return { kafka: kafka as unknown as Kafka, consumers };
}

const logger = createLogger({ service: 'test', level: 'silent' });

describe('reader', () => {
  it('starts a new consumer when kafkajs stops one for good, and goes on from the next offset it has not handed over', async () => {
    const { kafka, consumers } = fakeKafka();
    const handed: string[] = [];
    const reader = await startReader({ kafka, logger, offsets: async () => [{ partition: 0, low: '0', high: '10' }], listTopics: async () => ['t'] }, { topic: 't', from: 'beginning', onBatch: ({ records }) => void handed.push(...records.map((r) => r.offset)) });
    try {
      const messages = ['0', '1', '2'].map((offset) => ({ offset, key: null, value: Buffer.from('v'), headers: {}, timestamp: '0' }));
      await consumers[0]!.eachBatch!({ batch: { topic: 't', partition: 0, messages, lastOffset: () => '2' } });
      consumers[0]!.on.crash!({ payload: { error: new Error('Failed to find group coordinator'), restart: false } });
      await expect.poll(() => consumers.length, { timeout: 5000 }).toBe(2);
      expect(consumers[0]!.disconnected).toBe(true);
      consumers[1]!.on.join!({});
      expect(consumers[1]!.seeks).toEqual([{ topic: 't', partition: 0, offset: '3' }]);
      expect(handed).toEqual(['0', '1', '2']);
    } finally {
      await reader.close();
    }
    expect(consumers[1]!.disconnected).toBe(true);
  });

  it('a crash kafkajs restarts from itself is left to it; a closed reader starts nothing', async () => {
    const { kafka, consumers } = fakeKafka();
    const reader = await startReader({ kafka, logger, offsets: async () => [{ partition: 0, low: '0', high: '0' }], listTopics: async () => ['t'] }, { topic: 't', from: 'beginning', onBatch: () => undefined });
    consumers[0]!.on.crash!({ payload: { error: new Error('retriable'), restart: true } });
    await reader.close();
    consumers[0]!.on.crash!({ payload: { error: new Error('after close'), restart: false } });
    await new Promise((r) => setTimeout(r, 700));
    expect(consumers).toHaveLength(1);
  });
});
