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
  return LmdbStore.open<V>(dir, 'ionflux.state.unit', (b: Buffer) => JSON.parse(b.toString(), (k, x) => (k === 'exp' ? Number(x) : x)) as V, { expiryOf: (x) => x.exp }).store;
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

describe('LmdbStore and the cluster it was filled from', () => {
  const parse = (b: Buffer) => JSON.parse(b.toString(), (k, x) => (k === 'exp' ? Number(x) : x)) as V;
  const topic = 'ionflux.state.unit';

  it('is rebuilt when opened against another Kafka cluster, kept against its own, and learns its cluster when it had none', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ionflux-lmdb-unit-'));
    dirs.push(dir);
    // Written before stores named their cluster (a state folder of make up, say).
    let { store, reset } = LmdbStore.open<V>(dir, topic, parse);
    store.apply([change('a', { v: 1, exp: Infinity })], new Map([[0, '5']]));
    await store.close();

    ({ store, reset } = LmdbStore.open<V>(dir, topic, parse, { cluster: 'cluster-A' }));
    expect(reset).toBeUndefined();
    expect(store.checkpoint()).toEqual(new Map([[0, '5']]));
    await store.close();

    ({ store, reset } = LmdbStore.open<V>(dir, topic, parse, { cluster: 'cluster-A' }));
    expect(reset).toBeUndefined();
    expect(store.get('a')).toEqual({ v: 1, exp: Infinity });
    await store.close();

    // The same folder used against another broker (make test's, say): its offsets mean nothing there.
    ({ store, reset } = LmdbStore.open<V>(dir, topic, parse, { cluster: 'cluster-B' }));
    expect(reset).toMatch(/another Kafka cluster \(cluster-A, now cluster-B\)/);
    expect(store.checkpoint()).toEqual(new Map());
    expect(store.get('a')).toBeUndefined();
    store.apply([change('b', { v: 2, exp: Infinity })], new Map([[0, '1']]));
    await store.close();

    // And back: rebuilt again, from cluster-A's topic.
    ({ store, reset } = LmdbStore.open<V>(dir, topic, parse, { cluster: 'cluster-A' }));
    expect(reset).toMatch(/another Kafka cluster \(cluster-B, now cluster-A\)/);
    expect(store.size).toBe(0);
    await store.close();
  });
});

describe('LmdbStore lookups', () => {
  it('serves what was read or written lately without reading it again, and never a value since replaced, removed, swept or cleared', async () => {
    const store = open();
    store.apply([change('a', { v: 1, exp: 1000 }), change('b', { v: 1, exp: Infinity })], new Map([[0, '2']]));
    expect(store.get('a')).toEqual({ v: 1, exp: 1000 });
    expect(store.get('a')).toBe(store.get('a')); // decoded once
    await store.applyAsync([change('a', { v: 2, exp: 1000 })], new Map([[0, '3']]));
    expect(store.get('a')).toEqual({ v: 2, exp: 1000 });
    store.apply([['b', undefined]], new Map([[0, '4']]));
    expect(store.get('b')).toBeUndefined();
    expect(store.sweep(2000)).toBe(1);
    expect(store.get('a')).toBeUndefined();
    store.apply([change('c', { v: 3, exp: Infinity })], new Map([[0, '5']]));
    expect(store.get('c')).toEqual({ v: 3, exp: Infinity });
    store.clear();
    expect(store.get('c')).toBeUndefined();
    await store.close();
  });
});
