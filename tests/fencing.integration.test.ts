import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Subscription } from '../shared/bus/types.ts';
import { topics } from '../shared/bus/topics.ts';
import { openZombieTransaction } from './helpers/interop.ts';
import { infraEnv, realInfra, uid } from './helpers/infra.ts';
import { startWorker } from './helpers/worker.ts';

/**
 * Taking a partition fences its previous holder before anything is read as final: the inbox
 * processor (Bus.transform) and the workers' owners (Bus.own) hold one transactional id per
 * partition, and a member that lost a partition (a long pause, a network split) may still hold
 * a transaction open. Taking the partition over must abort it at once (the topics' readable ends
 * move past it) and refuse its commit; kafkajs's producer connect alone did neither.
 */
describe('a partition taken over fences the writer that held it', () => {
  let infra: Awaited<ReturnType<typeof realInfra>>;
  const stops: Subscription[] = [];
  beforeAll(async () => {
    infra = await realInfra('fencing-test');
  });
  afterAll(async () => {
    for (const s of stops) await s.stop();
    await infra?.close();
  });

  /** An open transaction of `<prefix>-0` on an output topic; `take` takes partition 0 over; then the zombie tries to commit. */
  async function takeOver(take: (prefix: string, taken: () => void) => Promise<Subscription>) {
    const prefix = uid('fence');
    const out = `test.fence-out.${uid('t')}`;
    await infra.bus.ensureTopics([out]);
    const zombie = await openZombieTransaction({ brokers: infraEnv().brokers, topic: out, transactionalId: `${prefix}-0`, value: 'zombie' });
    let taken!: () => void;
    const done = new Promise<void>((r) => (taken = r));
    stops.push(await take(prefix, taken));
    await done;
    // Taken: the zombie's transaction is already aborted, so the topic reads to its end at once.
    const read = await infra.bus.readToEnd(out, { timeoutMs: 20_000 });
    const commit = await zombie.tryCommit();
    return { read: read.map((r) => r.value?.toString()), commit };
  }

  it('Bus.transform: the new holder of an inbox partition', async () => {
    const topic = `test.fence-in.${uid('t')}`;
    await infra.bus.ensureTopics([topic]);
    const { read, commit } = await takeOver((prefix, taken) =>
      infra.bus.transform({ groupId: `${prefix}-group`, topic, transactionalPrefix: prefix, onAssigned: async (p) => void (p === 0 && taken()), transform: async () => ({ records: [] }) }),
    );
    expect(read).toEqual([]);
    expect(commit.committed, commit.error).toBe(false);
  });

  it('a service restarted after a crash fences what its last run left open before it reads its state', async () => {
    // The connector worker's transactional id is `ionflux-connector-worker-<instance>`; its last
    // run "crashed" holding a transaction open on the command table it reads at start.
    const instance = uid('w');
    const table = topics.state('commands-webhook');
    await infra.bus.ensureTopics([table]);
    const zombie = await openZombieTransaction({ brokers: infraEnv().brokers, topic: table, transactionalId: `ionflux-connector-worker-${instance}`, value: 'zombie' });
    // Ready (its tables read to their end) within the helper's 90 s, not after the zombie's 120 s transaction timeout.
    const worker = await startWorker({ WORKER_INSTANCE_ID: instance });
    try {
      const commit = await zombie.tryCommit();
      expect(commit.committed, commit.error).toBe(false);
    } finally {
      await worker.stop();
    }
  }, 180_000);

  it('Bus.own: the new owner of a partition of connections', async () => {
    const topic = `test.fence-own.${uid('t')}`;
    await infra.bus.ensureTopics([topic]);
    const { read, commit } = await takeOver((prefix, taken) =>
      infra.bus.own({ topic, groupId: `${prefix}-owners`, transactionalPrefix: prefix, parse: (v) => v.toString(), onAcquired: (p) => void (p.partition === 0 && taken()), onReleased: () => undefined, onChange: () => undefined }),
    );
    expect(read).toEqual([]);
    expect(commit.committed, commit.error).toBe(false);
  });
});
