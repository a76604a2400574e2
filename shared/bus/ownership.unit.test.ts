import { describe, expect, it } from 'vitest';
import { MemoryBus } from './memory.ts';
import type { OwnedPartition } from './types.ts';

describe('Bus.own on the in-memory bus (one process, one member)', () => {
  it('acquires every partition with what it holds, reports later changes, and writes where it is told', async () => {
    const bus = new MemoryBus(3);
    await bus.publish({ topic: 'conn', key: 'a', value: '1' });
    const acquired: OwnedPartition<string>[] = [];
    const changes: [number, string, string | undefined][] = [];
    const own = await bus.own<string>({
      topic: 'conn', groupId: 'g', transactionalPrefix: 'g-owner', parse: (b) => b.toString(),
      onAcquired: (p) => void acquired.push(p), onReleased: () => undefined, onChange: (p, k, v) => void changes.push([p, k, v]),
    });
    expect(acquired.map((p) => p.partition)).toEqual([0, 1, 2]);
    expect(acquired.flatMap((p) => [...p.records])).toEqual([['a', '1']]);
    const partitionOfA = bus.records('conn')[0]!.partition;
    await bus.publish({ topic: 'conn', key: 'a', value: null });
    expect(changes).toEqual([[partitionOfA, 'a', undefined]]);
    expect(acquired[partitionOfA]!.records.size).toBe(0);
    await acquired[0]!.writer.send([{ record: { topic: 'seen', key: 'x', value: 'v' }, partition: 2 }]);
    expect(bus.records('seen').map((r) => r.partition)).toEqual([2]);
    await own.stop();
  });
});
