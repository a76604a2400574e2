import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LmdbStore } from './lmdb-store.ts';

type V = { v: number; exp: number };
const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

function open() {
  const dir = mkdtempSync(join(tmpdir(), 'ionflux-lmdb-unit-'));
  dirs.push(dir);
  return LmdbStore.open<V>(dir, 'ionflux.state.unit', (x) => x.exp).store;
}

describe('LmdbStore expiry', () => {
  it('sweeps a value by the expiry of the value it holds now, not of a value it replaced', async () => {
    const store = open();
    store.apply([['a', { v: 1, exp: 1000 }], ['b', { v: 1, exp: 1000 }], ['c', { v: 1, exp: 1000 }], ['d', { v: 1, exp: 1000 }]], new Map([[0, '4']]));
    // a expires later now, b never, c is deleted; d keeps its expiry.
    store.apply([['a', { v: 2, exp: 5000 }], ['b', { v: 2, exp: Infinity }], ['c', undefined]], new Map([[0, '7']]));
    expect(store.sweep(2000)).toBe(1);
    expect([...store.entries()].map(([k, v]) => [k, v.v]).sort()).toEqual([['a', 2], ['b', 2]]);
    expect(store.sweep(2000)).toBe(0);
    expect(store.sweep(6000)).toBe(1);
    expect(store.get('a')).toBeUndefined();
    expect(store.get('b')).toEqual({ v: 2, exp: Infinity });
    expect(store.checkpoint()).toEqual(new Map([[0, '7']]));
    await store.close();
  });
});
