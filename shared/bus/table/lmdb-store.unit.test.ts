import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LmdbStore } from './lmdb-store.ts';
import type { Change } from './store.ts';

type V = { v: number; exp: number };
const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

function open() {
  const dir = mkdtempSync(join(tmpdir(), 'ionflux-lmdb-unit-'));
  dirs.push(dir);
  return LmdbStore.open<V>(dir, 'ionflux.state.unit', (b: Buffer) => JSON.parse(b.toString(), (k, x) => (k === 'exp' ? Number(x) : x)) as V, (x) => x.exp).store;
}

/** A change as a table hands it over: the value with its record's bytes (exp as text: JSON has no Infinity). */
const change = (key: string, v: V): Change<V> => [key, v, Buffer.from(JSON.stringify({ ...v, exp: String(v.exp) }))];

describe('LmdbStore expiry', () => {
  it('sweeps a value by the expiry of the value it holds now, not of a value it replaced', async () => {
    const store = open();
    store.apply([change('a', { v: 1, exp: 1000 }), change('b', { v: 1, exp: 1000 }), change('c', { v: 1, exp: 1000 }), change('d', { v: 1, exp: 1000 })], new Map([[0, '4']]));
    // a expires later now, b never, c is deleted; d keeps its expiry.
    store.apply([change('a', { v: 2, exp: 5000 }), change('b', { v: 2, exp: Infinity }), ['c', undefined]], new Map([[0, '7']]));
    expect(store.sweep(2000)).toBe(1);
    expect([...store.entries()].map(([k, v]) => [k, v.v]).sort()).toEqual([['a', 2], ['b', 2]]);
    expect(store.sweep(2000)).toBe(0);
    expect(store.sweep(6000)).toBe(1);
    expect(store.get('a')).toBeUndefined();
    expect(store.get('b')).toEqual({ v: 2, exp: Infinity });
    expect(store.checkpoint()).toEqual(new Map([[0, '7']]));
    await store.close();
  });

  it('keeps the bytes a change comes with, and reads them back with the parse it was given', async () => {
    const store = open();
    // A record's value as kafkajs hands it over: a view into the fetch response.
    const bytes = Buffer.from('..{"v":7,"exp":"9000"}..').subarray(2, -2);
    await store.applyAsync([['k', { v: 7, exp: 9000 }, bytes]], new Map([[1, '3']]));
    expect(store.get('k')).toEqual({ v: 7, exp: 9000 });
    store.apply([change('k', { v: 8, exp: 9000 })], new Map([[1, '4']]));
    expect(store.get('k')).toEqual({ v: 8, exp: 9000 });
    expect(store.checkpoint()).toEqual(new Map([[1, '4']]));
    await store.close();
  });
});

describe('LmdbStore key filter', () => {
  const dirOf = () => {
    const dir = mkdtempSync(join(tmpdir(), 'ionflux-lmdb-unit-'));
    dirs.push(dir);
    return dir;
  };
  const openAt = (dir: string) => LmdbStore.open<V>(dir, 'ionflux.state.unit', (b: Buffer) => JSON.parse(b.toString(), (k, x) => (k === 'exp' ? Number(x) : x)) as V).store;
  const settled = () => new Promise((r) => setTimeout(r, 50));

  it('finds every key the store held when it was opened, and every key written since, past the filter sizes', async () => {
    const dir = dirOf();
    let store = openAt(dir);
    // More keys than one slice of the filter's build and than its first capacity (100,000).
    const keys = Array.from({ length: 130_000 }, (_, i) => `ws_${i % 7}:cmd-${i}`);
    for (let i = 0; i < keys.length; i += 10_000) store.apply(keys.slice(i, i + 10_000).map((k, j) => change(k, { v: i + j, exp: Infinity })), new Map([[0, String(i)]]));
    await settled();
    expect(keys.every((k, i) => store.get(k)?.v === i)).toBe(true);
    await store.close();

    store = openAt(dir);
    // Found while the filter is built (lookups read LMDB meanwhile) and once it is.
    expect(store.get(keys[129_999]!)?.v).toBe(129_999);
    await settled();
    expect(keys.every((k, i) => store.get(k)?.v === i)).toBe(true);
    store.apply([change('later', { v: 1, exp: Infinity })], new Map([[0, '1']]));
    expect(store.get('later')?.v).toBe(1);
    expect(Array.from({ length: 1000 }, (_, i) => store.get(`ws_1:other-${i}`)).every((v) => v === undefined)).toBe(true);
    // Cleared: nothing is found, and what is written afterwards is.
    store.clear();
    expect(store.get(keys[0]!)).toBeUndefined();
    store.apply([change(keys[0]!, { v: 5, exp: Infinity })], new Map([[0, '2']]));
    expect(store.get(keys[0]!)?.v).toBe(5);
    await store.close();
  });
});
