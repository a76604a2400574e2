import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LmdbStore } from '../shared/bus/table/lmdb-store.ts';
import { jsonValue, KafkaTable } from '../shared/bus/table/table.ts';
import { createKafka } from '../shared/bus/kafka/client.ts';
import { infraEnv, realInfra, testStateDir, uid } from './helpers/infra.ts';

type Entry = { n: number; at: number };

describe('KafkaTable with its state on disk (item 28)', () => {
  let infra: Awaited<ReturnType<typeof realInfra>>;
  const topic = `ionflux.state.test-${uid()}`;
  const stateDir = testStateDir();
  const open = async () => {
    const t = new KafkaTable<Entry>({ ...infra, stateDir, topic, parse: jsonValue((v) => v as Entry), expire: { afterMs: 3_600_000, at: (v) => v.at } });
    await t.start();
    return t;
  };
  const write = (from: number, count: number, at = Date.now()) =>
    infra.bus.publishBatch(Array.from({ length: count }, (_, i) => ({ topic, key: `k${from + i}`, value: JSON.stringify({ n: from + i, at }) })));

  beforeAll(async () => {
    infra = await realInfra('table-store-test');
    await infra.bus.ensureTopics([topic]);
    await write(0, 3000);
  });
  afterAll(() => infra.close());

  it('builds the store from the topic once, then resumes from its checkpoint reading only what came after', async () => {
    const first = await open();
    expect(first.restored).toMatchObject({ records: 3000, from: 'beginning' });
    expect(first.get('k2999')).toMatchObject({ n: 2999 });
    await first.close();

    await write(3000, 25);
    await infra.bus.publish({ topic, key: 'k7', value: null });
    const second = await open();
    expect(second.restored).toMatchObject({ records: 26, from: 'checkpoint' });
    expect(second.size).toBe(3024);
    expect(second.get('k3024')).toMatchObject({ n: 3024 });
    expect(second.get('k7')).toBeUndefined();
    await second.close();

    // Killed instead of closed: the store is tried in a probe process, then resumed all the same.
    (await import('node:fs')).rmSync(join(stateDir, topic, 'lmdb', 'closed-cleanly'));
    const third = await open();
    expect(third.restored).toMatchObject({ records: 0, from: 'checkpoint' });
    expect(third.size).toBe(3024);
    await third.close();
  });

  it('rebuilds a deleted store from the topic', async () => {
    for (const f of readdirSync(stateDir)) (await import('node:fs')).rmSync(join(stateDir, f), { recursive: true, force: true });
    const t = await open();
    expect(t.restored).toMatchObject({ records: 3026, from: 'beginning' });
    expect(t.size).toBe(3024);
    await t.close();
  });

  it('rebuilds a corrupt store from the topic', async () => {
    const file = join(stateDir, topic, 'lmdb', 'data.mdb');
    writeFileSync(file, Buffer.alloc(64 * 1024, 0xab));
    const t = await open();
    expect(t.restored.reset).toMatch(/could not be read/);
    expect(t.restored).toMatchObject({ records: 3026, from: 'beginning' });
    expect(t.get('k1')).toMatchObject({ n: 1 });
    expect(t.size).toBe(3024);
    await t.close();
  });

  it('rebuilds a store that was filled from another Kafka cluster, even when its checkpoint lies within this topic', async () => {
    // The same state folder used against another broker first (make test's, say): a checkpoint
    // there is a plausible offset here, and its values are not this topic's.
    for (const f of readdirSync(stateDir)) (await import('node:fs')).rmSync(join(stateDir, f), { recursive: true, force: true });
    const { store } = LmdbStore.open<Entry>(join(stateDir, topic), topic, jsonValue((v) => v as Entry), { cluster: 'some-other-cluster' });
    store.apply([['k1', { n: -1, at: Date.now() }, Buffer.from(JSON.stringify({ n: -1, at: Date.now() }))]], new Map([[0, '100'], [1, '100'], [2, '100']]));
    await store.close();
    const t = await open();
    expect(t.restored.reset).toMatch(/another Kafka cluster \(some-other-cluster, now .+\)/);
    expect(t.restored).toMatchObject({ records: 3026, from: 'beginning' });
    expect(t.get('k1')).toMatchObject({ n: 1 });
    expect(t.size).toBe(3024);
    await t.close();
    // Reopened against the same cluster, it resumes from its checkpoint.
    const again = await open();
    expect(again.restored).toMatchObject({ records: 0, from: 'checkpoint' });
    await again.close();
  });

  it('keeps expiring values out of the store and sweeps them once due', async () => {
    await write(5000, 2, Date.now() - 7_200_000); // older than the window: never stored
    const t = await open();
    expect(t.get('k5000')).toBeUndefined();
    expect(await t.sweep(Date.now() + 3_600_000 + 60_000)).toBe(3024);
    expect(t.size).toBe(0);
    await t.close();
  });

  it('rebuilds a store whose topic was deleted and made again while the store was kept, even with as many records or more', async () => {
    // Its checkpoint is a plausible offset of the new topic: only the record it was taken after tells them apart.
    const again = `ionflux.state.test-${uid()}`;
    const openOn = async () => {
      const t = new KafkaTable<Entry>({ ...infra, stateDir, topic: again, parse: jsonValue((v) => v as Entry) });
      await t.start();
      return t;
    };
    const put = (prefix: string, count: number) => infra.bus.publishBatch(Array.from({ length: count }, (_, i) => ({ topic: again, key: `${prefix}${i}`, value: JSON.stringify({ n: i, at: Date.now() }) })));
    await infra.bus.ensureTopics([again]);
    await put('old', 30);
    const first = await openOn();
    expect(first.size).toBe(30);
    await first.close();

    const admin = createKafka({ brokers: infraEnv().brokers, auth: infraEnv().auth, clientId: uid('recreate'), logger: infra.logger }).admin();
    await admin.connect();
    try {
      const partitions = (await infra.bus.offsets(again)).length;
      await admin.deleteTopics({ topics: [again] });
      // The deletion completes in the background: made again once the broker takes it.
      await expect.poll(() => admin.createTopics({ topics: [{ topic: again, numPartitions: partitions }] }).catch(() => false), { timeout: 30_000, interval: 500 }).toBe(true);
      await put('new', 60);
      const second = await openOn();
      expect(second.restored.reset).toMatch(/deleted and made again/);
      expect(second.restored).toMatchObject({ records: 60, from: 'beginning' });
      expect(second.size).toBe(60);
      expect(second.get('old0')).toBeUndefined();
      expect(second.get('new59')).toMatchObject({ n: 59 });
      await second.close();
      // And the rebuilt store resumes from its checkpoint as any other.
      const third = await openOn();
      expect(third.restored).toMatchObject({ records: 0, from: 'checkpoint' });
      expect(third.restored.reset).toBeUndefined();
      expect(third.size).toBe(60);
      await third.close();
    } finally {
      await admin.deleteTopics({ topics: [again] }).catch(() => undefined);
      await admin.disconnect();
    }
  });
});
