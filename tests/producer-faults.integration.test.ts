import { describe, expect, it } from 'vitest';
import { createKafkaBus, readerGroupPrefix } from '../shared/bus/kafka/bus.ts';
import type { OutgoingRecord } from '../shared/bus/types.ts';
import { faultyNetwork } from './helpers/faulty-network.ts';
import { capturingLogger, infraEnv, readAll, uid } from './helpers/infra.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// The broker appended a produce request and its answer was lost (the broker died right after
// writing, or the network did); the client gave up on it. Kafka remembers the request's sequence
// numbers: a producer that reuses them for the next records is told "appended" for records the
// broker dropped as a duplicate of the lost request. Every acknowledgement the hub gives (a
// webhook's 2xx above all) rests on this.
describe('publishing after a produce answer was lost', () => {
  for (const mode of ['idempotent', 'transactional'] as const) {
    it(`${mode}: every record the bus acknowledged afterwards is on the topic`, async () => {
      const env = infraEnv();
      const network = faultyNetwork();
      const { logger } = capturingLogger('producer-faults');
      const bus = createKafkaBus({
        brokers: env.brokers,
        auth: env.auth,
        clientId: uid('producer-faults'),
        logger,
        readerGroupPrefix: readerGroupPrefix(env.auth),
        socketFactory: network.socketFactory,
        transactionalId: mode === 'transactional' ? uid('producer-faults-') : undefined,
      });
      const reader = createKafkaBus({ brokers: env.brokers, auth: env.auth, clientId: uid('producer-faults-reader'), logger, readerGroupPrefix: readerGroupPrefix(env.auth) });
      const topic = `ionflux.test.${uid()}`;
      try {
        await reader.ensureTopics([topic]);
        // One key: one partition, one sequence of numbers.
        const unit = (tag: string): OutgoingRecord[] => [1, 2, 3].map((i) => ({ topic, key: 'k', value: Buffer.from(`${tag}-${i}`) }));
        await bus.publishAtomic(unit('before'));

        network.loseNextProduceAnswer();
        let settled: string | undefined;
        const unanswered = bus.publishAtomic(unit('unanswered')).then(
          () => (settled = 'acknowledged'),
          (e: Error) => (settled = `failed: ${e.message}`),
        );
        // The network stays down until the client gives up on that request (or 40 s).
        for (const deadline = Date.now() + 40_000; settled === undefined && Date.now() < deadline; ) await sleep(100);
        expect(network.lostAnswers).toBe(1);
        network.heal();
        await unanswered;

        // The same number of records as the lost request, so the same sequence numbers if reused.
        const acks = await bus.publishAtomic(unit('after'));
        const records = await readAll(reader, topic, { atLeast: 6, timeoutMs: 20_000 });
        const at = new Map(records.map((r) => [r.offset, r.value?.toString()]));
        expect(acks.map((a) => at.get(a.offset)), `acknowledged at ${acks.map((a) => a.offset)}; on the topic: ${JSON.stringify([...at])}; the unanswered publish ${settled}`).toEqual(['after-1', 'after-2', 'after-3']);
        const values = records.map((r) => r.value?.toString());
        for (const v of ['before-1', 'before-2', 'before-3', 'after-1', 'after-2', 'after-3']) expect(values.filter((x) => x === v)).toEqual([v]);
        // The unanswered records: on the topic once if their transaction or request took effect, else not at all.
        expect(values.filter((x) => x?.startsWith('unanswered')).length).toBeLessThanOrEqual(3);
      } finally {
        network.heal();
        await bus.close().catch(() => undefined);
        await reader.close();
        await network.close();
      }
    }, 90_000);
  }
});
