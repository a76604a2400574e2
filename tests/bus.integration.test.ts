import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KafkaBus } from '../shared/bus/kafka/bus.ts';
import { createKafka } from '../shared/bus/kafka/client.ts';
import { jsonValue, KafkaTable } from '../shared/bus/table/table.ts';
import { infraEnv, readAll, realInfra, uid } from './helpers/infra.ts';

describe('KafkaBus with several transactional producers (lanes)', () => {
  let infra: Awaited<ReturnType<typeof realInfra>>;
  let bus: KafkaBus;
  const sentBy = new Map<string, Set<string>>();
  beforeAll(async () => {
    infra = await realInfra('lanes-test');
    // The real client, watched: which transactional producer sent which key.
    const real = createKafka({ brokers: infraEnv().brokers, auth: infraEnv().auth, clientId: 'lanes-test', logger: infra.logger });
    const kafka = Object.create(real) as typeof real;
    kafka.producer = (config) => {
      const producer = real.producer(config);
      const transaction = producer.transaction.bind(producer);
      producer.transaction = async () => {
        const txn = await transaction();
        const sendBatch = txn.sendBatch.bind(txn);
        txn.sendBatch = (batch) => {
          for (const t of batch.topicMessages ?? []) for (const m of t.messages) sentBy.set(String(m.key), new Set([...(sentBy.get(String(m.key)) ?? []), config!.transactionalId!]));
          return sendBatch(batch);
        };
        return txn;
      };
      return producer;
    };
    bus = new KafkaBus({ kafka, logger: infra.logger, transactionalId: uid('txn-'), lanes: 3 });
    await bus.connect();
  });
  afterAll(async () => {
    await bus.close();
    await infra.close();
  });

  it('lands every unit exactly once, its records together, and the units of one order key in publish order', async () => {
    const events = `ionflux.test.${uid()}`;
    const markers = `ionflux.test.${uid()}`;
    const keys = Array.from({ length: 12 }, (_, i) => `entity-${i}`);
    // Units interleaved over the keys and spread over time, so every lane is busy with some
    // transaction while others start theirs: without order keys, a key's units would overtake.
    const units: Promise<unknown[]>[] = [];
    for (let seq = 0; seq < 600; seq++) {
      const key = keys[seq % keys.length]!;
      units.push(bus.publishAtomic([{ topic: events, key, value: String(seq) }, { topic: markers, key, value: String(seq) }], { orderKey: key }));
      if (seq % 3 === 2) await new Promise((r) => setTimeout(r, 1));
    }
    const acks = (await Promise.all(units)) as { offset: string }[][];
    expect(acks.every((a) => a.length === 2 && a.every((r) => Number(r.offset) >= 0))).toBe(true);

    // Each key kept to one producer; the keys as a whole used more than one.
    expect(keys.map((k) => sentBy.get(k)?.size)).toEqual(keys.map(() => 1));
    expect(new Set(keys.flatMap((k) => [...sentBy.get(k)!])).size).toBeGreaterThan(1);
    for (const topic of [events, markers]) {
      // Read at once, no waiting: readToEnd must itself wait for commit markers still on their way.
      const records = await bus.readToEnd(topic);
      expect(records).toHaveLength(600);
      for (const key of keys) {
        const seqs = records.filter((r) => r.key!.toString() === key).map((r) => Number(r.value!.toString()));
        expect(seqs).toEqual(Array.from({ length: 50 }, (_, i) => keys.indexOf(key) + i * keys.length));
      }
    }
  });

  it('reads every acknowledged unit at once, though commit markers may still be on their way (the LSO then lags the high watermark)', async () => {
    for (let round = 0; round < 15; round++) {
      const topic = `ionflux.test.${uid()}`;
      await Promise.all(Array.from({ length: 60 }, (_, i) => bus.publishAtomic([{ topic, key: `k${i % 12}`, value: String(i) }], { orderKey: `k${i % 12}` })));
      expect((await bus.readToEnd(topic)).length).toBe(60);
    }
  });

  it('lands a burst of large units to one partition: their requests stay under the broker\'s message size limit', async () => {
    // 600 KB each, 12 at once through one producer: gathered into one request they would make a
    // 7 MB batch for one partition, which the broker refuses whole (message.max.bytes 4 MiB).
    const topic = `ionflux.test.${uid()}`;
    const value = Buffer.alloc(600_000, 'x');
    const acks = await Promise.all(Array.from({ length: 12 }, () => bus.publishAtomic([{ topic, key: 'one-key', value }], { orderKey: 'one-key' })));
    expect(acks).toHaveLength(12);
    expect((await readAll(infra.bus, topic, { atLeast: 12 })).length).toBe(12);
  });

  it('answers each record of an unordered batch with its own offset', async () => {
    const topic = `ionflux.test.${uid()}`;
    const outcomes = await bus.publishBatch(Array.from({ length: 200 }, (_, i) => ({ topic, key: `k${i}`, value: `v${i}` })));
    expect(outcomes.every((o) => o.ok)).toBe(true);
    const records = await readAll(infra.bus, topic, { atLeast: 200 });
    const byOffset = new Map(records.map((r) => [`${r.partition}/${r.offset}`, r.value!.toString()]));
    outcomes.forEach((o, i) => o.ok && expect(byOffset.get(`${o.ack.partition}/${o.ack.offset}`)).toBe(`v${i}`));
  });
});

describe('KafkaTable with expiring values', () => {
  let infra: Awaited<ReturnType<typeof realInfra>>;
  beforeAll(async () => {
    infra = await realInfra('table-expiry-test');
  });
  afterAll(() => infra.close());

  it('does not load values older than the window, and sweeps them from memory once they age out', async () => {
    const topic = `ionflux.state.test-${uid()}`;
    const now = Date.now();
    await infra.bus.publishBatch([
      { topic, key: 'old', value: JSON.stringify({ at: now - 120_000 }) },
      { topic, key: 'young', value: JSON.stringify({ at: now - 1_000 }) },
    ]);
    const table = new KafkaTable<{ at: number }>({ ...infra, topic, parse: jsonValue((v) => v as { at: number }), expire: { afterMs: 60_000, at: (v) => v.at } });
    await table.start();
    try {
      expect(table.get('old')).toBeUndefined();
      expect(table.get('young')).toEqual({ at: now - 1_000 });
      expect(table.size).toBe(1);
      expect(await table.sweep(now + 30_000)).toBe(0);
      expect(await table.sweep(now + 60_000)).toBe(1);
      expect(table.get('young')).toBeUndefined();
    } finally {
      await table.close();
    }
  });
});
