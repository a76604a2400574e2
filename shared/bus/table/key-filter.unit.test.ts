import { describe, expect, it } from 'vitest';
import { KeyFilter } from './key-filter.ts';

describe('KeyFilter', () => {
  it('has every key added, and few it was not given, up to its capacity', () => {
    const f = new KeyFilter(200_000);
    const keys = Array.from({ length: 200_000 }, (_, i) => `ws_${i % 50}:${1795866318671 + i}.w.${i % 16}`);
    for (const k of keys) f.add(k);
    expect(keys.filter((k) => !f.mightHave(k))).toEqual([]);
    const others = Array.from({ length: 100_000 }, (_, i) => `ws_${i % 50}:other-${i}`);
    const falsePositives = others.filter((k) => f.mightHave(k)).length;
    // Sized for 0.24% at capacity: allow twice that.
    expect(falsePositives / others.length).toBeLessThan(0.005);
    expect(f.full).toBe(false);
    f.add('one more');
    expect(f.full).toBe(true);
  });

  it('tells keys apart that differ in one character, and non-ASCII keys', () => {
    const f = new KeyFilter(10);
    f.add('ws_a:cmd-1');
    f.add('ws_é:命令');
    expect(f.mightHave('ws_a:cmd-1')).toBe(true);
    expect(f.mightHave('ws_é:命令')).toBe(true);
    expect(['ws_a:cmd-2', 'ws_b:cmd-1', 'ws_a:cmd-10', 'ws_e:命令', ''].some((k) => f.mightHave(k))).toBe(false);
  });
});
