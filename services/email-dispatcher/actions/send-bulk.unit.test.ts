import { describe, expect, it } from 'vitest';
import { pool } from './send-bulk.ts';

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('send_bulk pool', () => {
  it('starts nothing once a unit failed, and throws only after the units in flight ended', async () => {
    const started: number[] = [];
    const ended: number[] = [];
    const run = pool([1, 2, 3, 4, 5, 6], 2, [new AbortController().signal], async (n) => {
      started.push(n);
      await tick(n === 2 ? 5 : 30);
      if (n === 2) throw new Error('401 from the provider');
      ended.push(n);
    });
    await expect(run).rejects.toThrow('401 from the provider');
    expect(started).toEqual([1, 2]); // 3 would have started when 2 ended
    expect(ended).toEqual([1]); // 1 was in flight: it ended before the error came out
  });

  it('starts nothing once the action is out of time, or handed over to another worker', async () => {
    const ac = new AbortController();
    const started: number[] = [];
    const run = pool([1, 2, 3, 4], 1, [new AbortController().signal, ac.signal], async (n) => {
      started.push(n);
      if (n === 2) ac.abort(new Error('action timed out'));
      await tick(5);
    });
    await expect(run).rejects.toThrow('action timed out');
    expect(started).toEqual([1, 2]);
  });
});
