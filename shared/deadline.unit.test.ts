import { describe, expect, it } from 'vitest';
import { withDeadline } from './deadline.ts';

describe('withDeadline', () => {
  it('gives the value of a promise that settles in time, and its rejection', async () => {
    await expect(withDeadline(Promise.resolve(7), 1000, () => new Error('late'))).resolves.toBe(7);
    await expect(withDeadline(Promise.reject(new Error('own')), 1000, () => new Error('late'))).rejects.toThrow('own');
  });

  it('rejects with the error made when the time is up', async () => {
    let made = 0;
    const never = new Promise<number>(() => undefined);
    await expect(withDeadline(never, 20, () => new Error(`late ${++made}`))).rejects.toThrow('late 1');
    expect(made).toBe(1);
  });
});
