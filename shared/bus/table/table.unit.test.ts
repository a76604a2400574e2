import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../logger.ts';
import { MemoryBus } from '../memory.ts';
import { jsonValue, KafkaTable } from './table.ts';

const logger = createLogger({ service: 'table-unit', level: 'silent' });
const topic = 'ionflux.state.unit';
type V = { v: number };
const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

async function table(bus: MemoryBus, stateDir?: string) {
  const t = new KafkaTable<V>({ bus, logger, stateDir, topic, parse: jsonValue((x) => x as V) });
  await t.start();
  return t;
}

describe('KafkaTable', () => {
  it('serves a local write until the topic delivers that key, and never stores it before', async () => {
    const bus = new MemoryBus(1);
    const stateDir = mkdtempSync(join(tmpdir(), 'ionflux-table-unit-'));
    dirs.push(stateDir);
    const t = await table(bus, stateDir);
    t.applyLocal('k', { v: 2 }); // published by the caller, not landed yet
    expect(t.get('k')).toEqual({ v: 2 });
    await t.close();
    const again = await table(bus, stateDir); // the write never landed: gone after a restart
    expect(again.get('k')).toBeUndefined();
    const older = bus.publish(again.record('k', { v: 1 })); // produced before the local write below
    await new Promise((r) => setTimeout(r, 2));
    again.applyLocal('k', { v: 2 });
    await older;
    await new Promise((r) => setTimeout(r, 10));
    expect(again.get('k')).toEqual({ v: 2 }); // an older record of the key does not replace it
    await new Promise((r) => setTimeout(r, 2));
    await bus.publish(again.record('k', { v: 3 })); // another writer, later: the topic decides
    await new Promise((r) => setTimeout(r, 10));
    expect(again.get('k')).toEqual({ v: 3 });
    await again.close();
  });

  it("stores its own write when the topic delivers it back, without parsing it again, and keeps it across a restart", async () => {
    const bus = new MemoryBus(1);
    const stateDir = mkdtempSync(join(tmpdir(), 'ionflux-table-unit-'));
    dirs.push(stateDir);
    let parsed = 0;
    const open = async () => {
      const t = new KafkaTable<V>({ bus, logger, stateDir, topic, parse: jsonValue((x) => (parsed++, x as V)) });
      await t.start();
      return t;
    };
    const t = await open();
    const mine = { v: 1 };
    const published = bus.publish(t.record('mine', mine)); // as the command worker does: applied before Kafka answers
    t.applyLocal('mine', mine);
    await published;
    await bus.publish({ topic, key: 'theirs', value: JSON.stringify({ v: 2 }) }); // another writer's
    await t.catchUp();
    expect(parsed).toBe(1); // only the other writer's record
    expect([t.get('mine'), t.get('theirs')]).toEqual([{ v: 1 }, { v: 2 }]);
    await t.close();
    parsed = 0;
    const again = await open();
    expect(again.restored).toMatchObject({ records: 0, from: 'checkpoint' });
    expect([again.get('mine'), again.get('theirs')]).toEqual([{ v: 1 }, { v: 2 }]);
    await again.close();
  });

  it('fresh: callers at the same moment share reads of the end offsets; one asking during a read waits for the next', async () => {
    const bus = new MemoryBus(2);
    const t = await table(bus);
    const offsets = bus.offsets.bind(bus);
    let reads = 0;
    bus.offsets = async (name) => {
      reads += 1;
      const ends = await offsets(name);
      await new Promise((r) => setTimeout(r, 20)); // the answer is on its way back
      return ends;
    };
    const first = t.fresh();
    await bus.publish(t.record('a', { v: 1 })); // written while the first read is under way
    await Promise.all([first, ...Array.from({ length: 20 }, () => t.fresh())]);
    expect(reads).toBe(2);
    expect(t.get('a')).toEqual({ v: 1 });
    await t.fresh();
    expect(reads).toBe(3);
    await t.close();
  });

  it('does not answer with a value that expired while the service was down', async () => {
    const bus = new MemoryBus(1);
    const t = new KafkaTable<V & { at: number }>({ bus, logger, topic, parse: jsonValue((x) => x as V & { at: number }), expire: { afterMs: 50, at: (x) => x.at } });
    await t.start();
    await t.set('k', { v: 1, at: Date.now() });
    expect(t.get('k')).toEqual({ v: 1, at: expect.any(Number) });
    await new Promise((r) => setTimeout(r, 80));
    expect(t.get('k')).toBeUndefined();
    await t.close();
  });

  it('with a state dir, serves what it read at once, before the store is written, and stores it with its checkpoint', async () => {
    const bus = new MemoryBus(2);
    const stateDir = mkdtempSync(join(tmpdir(), 'ionflux-table-unit-'));
    dirs.push(stateDir);
    const t = await table(bus, stateDir);
    await bus.publishBatch(Array.from({ length: 50 }, (_, i) => ({ topic, key: `k${i}`, value: JSON.stringify({ v: i }) })));
    await bus.publish({ topic, key: 'k3', value: null });
    await t.catchUp();
    // Read from the topic moments ago: served now, whether or not it reached the disk yet.
    expect(t.get('k49')).toEqual({ v: 49 });
    expect(t.get('k3')).toBeUndefined();
    expect(t.entries()).toHaveLength(49);
    await t.close();
    const again = await table(bus, stateDir);
    expect(again.restored).toMatchObject({ records: 0, from: 'checkpoint' });
    expect(again.get('k49')).toEqual({ v: 49 });
    expect(again.get('k3')).toBeUndefined();
    expect(again.size).toBe(49);
    await again.close();
  });

  it('with a state dir, commits what it reads to the store on its own, without a close, checkpoint included', async () => {
    const bus = new MemoryBus(2);
    const stateDir = mkdtempSync(join(tmpdir(), 'ionflux-table-unit-'));
    dirs.push(stateDir);
    const t = await table(bus, stateDir);
    await bus.publishBatch(Array.from({ length: 30 }, (_, i) => ({ topic, key: `k${i}`, value: JSON.stringify({ v: i }) })));
    await bus.publish({ topic, key: 'k3', value: null });
    await t.catchUp();
    // What the store itself holds (committed by lmdb-js's write thread), not the table's layers above it.
    // The store's decoded-values cache answers `get` before the commit: wait on the committed
    // checkpoint (read from LMDB), which lands in the same transaction as the data.
    const store = (t as unknown as { store: { get(k: string): V | undefined; checkpoint(): Map<number, string>; size: number } }).store;
    const committed = () => [...store.checkpoint().values()].reduce((n, next) => n + Number(next.split('@')[0]), 0);
    const deadline = Date.now() + 5000;
    while (committed() < 31 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(committed()).toBe(31);
    expect(store.size).toBe(29);
    expect(store.get('k29')).toEqual({ v: 29 });
    expect(store.get('k3')).toBeUndefined();
    expect(t.size).toBe(29);
    await t.close();
  });

  it('with a state dir, a restarted table reads only what came after its checkpoint', async () => {
    const bus = new MemoryBus();
    const stateDir = mkdtempSync(join(tmpdir(), 'ionflux-table-unit-'));
    dirs.push(stateDir);
    await bus.publishBatch(Array.from({ length: 100 }, (_, i) => ({ topic, key: `k${i}`, value: JSON.stringify({ v: i }) })));
    const first = await table(bus, stateDir);
    expect(first.restored).toMatchObject({ records: 100, from: 'beginning' });
    await first.close();
    await bus.publish({ topic, key: 'k100', value: JSON.stringify({ v: 100 }) });
    const second = await table(bus, stateDir);
    expect(second.restored).toMatchObject({ records: 1, from: 'checkpoint' });
    expect(second.size).toBe(101);
    expect(second.get('k42')).toEqual({ v: 42 });
    await second.close();
  });
});
