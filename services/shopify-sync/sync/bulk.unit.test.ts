import { describe, expect, it } from 'vitest';
import { BulkFinishes, resultLines } from './bulk.ts';

describe('BulkFinishes', () => {
  it('wakes the run waiting for that operation at once, others only at their poll time', async () => {
    const f = new BulkFinishes();
    const signal = new AbortController().signal;
    const t0 = Date.now();
    const a = f.wait('gid://shopify/BulkOperation/1', 5000, signal).then(() => Date.now() - t0);
    const b = f.wait('gid://shopify/BulkOperation/2', 150, signal).then(() => Date.now() - t0);
    f.finished('gid://shopify/BulkOperation/1');
    expect(await a).toBeLessThan(100);
    expect(await b).toBeGreaterThanOrEqual(140);
  });

  it('an aborted wait rejects', async () => {
    const f = new BulkFinishes();
    const c = new AbortController();
    const w = f.wait('x', 5000, c.signal);
    c.abort(new Error('stopped'));
    await expect(w).rejects.toThrow('stopped');
  });
});

describe('resultLines', () => {
  it('gives the lines as they arrive: a character cut between chunks is whole, the last line may lack its newline', async () => {
    const bytes = Buffer.from('{"title":"Café"}\n{"title":"Ünïcode"}\n\n{"last":true}');
    const cut = bytes.indexOf(Buffer.from('é')) + 1; // inside the two bytes of é
    const body = new ReadableStream<Uint8Array>({ start(c) { c.enqueue(bytes.subarray(0, cut)); c.enqueue(bytes.subarray(cut, 30)); c.enqueue(bytes.subarray(30)); c.close(); } });
    const lines: string[] = [];
    for await (const l of resultLines(body)) lines.push(l);
    expect(lines).toEqual(['{"title":"Café"}', '{"title":"Ünïcode"}', '', '{"last":true}']);
  });
});
