import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { parseEnv } from '../../../shared/config.ts';
import type { OutgoingRecord } from '../../../shared/bus/types.ts';
import { checkBudget, createSpendStore, memorySpendTable, parseSpendKey, spendKeys } from './budget.ts';
import { buildLlmConfig, llmEnvShape } from './config.ts';

const env = { LLM_BUDGET_USD_MONTH: '10', LLM_WORKSPACE_BUDGETS: JSON.stringify({ acme: { day_usd: 1 } }) };
const config = buildLlmConfig(parseEnv(z.object(llmEnvShape), env), env);

function setup(now: number, table = memorySpendTable()) {
  const written: OutgoingRecord[] = [];
  const spend = createSpendStore({ table, publish: async (r) => void written.push(...r), config, now: () => now });
  return { spend, table, written };
}

const totals = (records: OutgoingRecord[]) => new Map(records.map((r) => [r.key, JSON.parse(String(r.value))]));
/** What the table holds once the topic delivered these records back. */
const readBack = (table: ReturnType<typeof memorySpendTable>, records: OutgoingRecord[]) => records.forEach((r) => table.applyLocal(String(r.key), JSON.parse(String(r.value))));

describe('spend and budgets', () => {
  it('sums spend per UTC day and month and gives the totals under <ws>:<day> and <ws>:<month> as records to publish', () => {
    const now = Date.parse('2026-03-31T23:59:00Z');
    const { spend, written } = setup(now);
    spend.add('acme', 0.25);
    const second = spend.add('acme', 0.5);
    expect(spend.spent('acme')).toEqual({ day: 0.75, month: 0.75 });
    expect(totals(second).get('acme:2026-03-31')).toMatchObject({ kind: 'spend', usd: 0.75, calls: 2 });
    expect(totals(second).get('acme:2026-03')).toMatchObject({ usd: 0.75 });
    // Published by whoever publishes the outcome, never by the store on its own.
    expect(written).toEqual([]);
    expect(spend.add('acme', 0)).toEqual([]);
    expect(spendKeys.day('acme', Date.parse('2026-04-01T00:00:01Z'))).toBe('acme:2026-04-01');
  });

  it('the table takes a total only from the topic; meanwhile the store counts on top of what it staged, and the same unit published twice counts once', () => {
    const now = Date.parse('2026-03-10T12:00:00Z');
    const { spend, table } = setup(now);
    const first = spend.add('acme', 0.25);
    expect(table.get('acme:2026-03-10')).toBeUndefined();
    const second = spend.add('acme', 0.5);
    expect(spend.spent('acme').day).toBe(0.75);
    // The first unit lands, then the second, then the first again (a retried publish): totals, not increments.
    for (const unit of [first, second, first]) readBack(table, unit);
    expect(spend.spent('acme').day).toBe(0.75);
    readBack(table, second);
    expect(totals(spend.add('acme', 0.25)).get('acme:2026-03-10')).toMatchObject({ usd: 1, calls: 3 });
    // Another owner's newer total (more calls) wins over what was staged here.
    table.applyLocal('acme:2026-03-10', { kind: 'spend', usd: 2, calls: 5, updated_at: '' });
    expect(spend.spent('acme').day).toBe(2);
  });

  it('two instances counting one workspace at once (its commands on the service topic and on its own topic) each write their own partition\'s totals, and both report the sum', () => {
    const now = Date.parse('2026-03-10T12:00:00Z');
    const table = memorySpendTable();
    const a = setup(now, table).spend;
    const b = setup(now, table).spend;
    const service = { topic: 'ionflux.cmd.llm', partition: 2 };
    const own = { topic: 'ionflux.cmd.llm.ws_acme', partition: 0 };
    /** The topic delivering records to both instances' tables. */
    const deliver = (records: OutgoingRecord[]) => {
      readBack(table, records);
      for (const r of records) for (const s of [a, b]) s.changed(String(r.key), JSON.parse(String(r.value)));
    };
    // Both read the workspace's spend before either's write is back, then count a call each.
    expect(a.spent('acme').day).toBe(0);
    expect(b.spent('acme').day).toBe(0);
    const fromA = a.add('acme', 0.25, service);
    const fromB = b.add('acme', 0.5, own);
    // One total each: neither writes over the other's.
    expect([...totals(fromA).keys(), ...totals(fromB).keys()]).toEqual(['acme:2026-03-10:s2', 'acme:2026-03:s2', 'acme:2026-03-10:w0', 'acme:2026-03:w0']);
    deliver(fromA);
    deliver(fromB);
    expect(a.spent('acme')).toEqual({ day: 0.75, month: 0.75 });
    expect(b.spent('acme')).toEqual({ day: 0.75, month: 0.75 });
    // Again at once, on top of what each knows: nothing lost either time.
    const again = [a.add('acme', 0.125, service), b.add('acme', 0.125, own)];
    again.forEach(deliver);
    expect(a.spent('acme')).toEqual({ day: 1, month: 1 });
    expect(totals(again[1]!).get('acme:2026-03-10:w0')).toMatchObject({ usd: 0.625, calls: 2 });
    // A budget check against the sum refuses on either instance.
    expect(() => checkBudget(a, 'acme')).toThrow(expect.objectContaining({ code: 'budget_exceeded' }));
    expect(() => checkBudget(b, 'acme')).toThrow(expect.objectContaining({ code: 'budget_exceeded' }));
    // An instance started later finds every shard in the table.
    expect(setup(now, table).spend.spent('acme')).toEqual({ day: 1, month: 1 });
  });

  it('a partition\'s next owner counts on top of its previous owner\'s total', () => {
    const now = Date.parse('2026-03-10T12:00:00Z');
    const table = memorySpendTable();
    const before = setup(now, table).spend;
    const first = before.add('acme', 0.25, { topic: 'ionflux.cmd.llm', partition: 0 });
    readBack(table, first);
    // The new owner read the table to its end before working on the partition (resumeTables).
    const after = setup(now, table).spend;
    expect(totals(after.add('acme', 0.5, { topic: 'ionflux.cmd.llm', partition: 0 })).get('acme:2026-03-10:s0')).toMatchObject({ usd: 0.75, calls: 2 });
  });

  it('totals written before shards (<ws>:<day>, <ws>:<month>) still count, as one more shard, and are not written again', () => {
    const now = Date.parse('2026-03-10T12:00:00Z');
    const table = memorySpendTable();
    table.applyLocal('acme:2026-03-10', { kind: 'spend', usd: 0.5, calls: 3, updated_at: '' });
    table.applyLocal('acme:2026-03', { kind: 'spend', usd: 2, calls: 9, updated_at: '' });
    table.applyLocal('acme:budget', { kind: 'budget', day_usd: 5, month_usd: null, updated_at: '' });
    const { spend } = setup(now, table);
    expect(spend.spent('acme')).toEqual({ day: 0.5, month: 2 });
    const records = spend.add('acme', 0.25, { topic: 'ionflux.cmd.llm.ws_acme', partition: 0 });
    expect(totals(records)).toEqual(new Map([['acme:2026-03-10:w0', expect.objectContaining({ usd: 0.25, calls: 1 })], ['acme:2026-03:w0', expect.objectContaining({ usd: 0.25, calls: 1 })]]));
    expect(spend.spent('acme')).toEqual({ day: 0.75, month: 2.25 });
    expect(spend.budget('acme').day_usd).toBe(5);
    expect(parseSpendKey('acme:budget')).toBeNull();
    expect(parseSpendKey('acme:2026-03-10')).toEqual({ total: 'acme:2026-03-10', period: '2026-03-10', shard: undefined });
    expect(parseSpendKey('acme:2026-03:s11')).toEqual({ total: 'acme:2026-03', period: '2026-03', shard: 's11' });
  });

  it('a new month starts from nothing, and last month\'s totals are no longer looked at', () => {
    let now = Date.parse('2026-03-31T23:59:00Z');
    const spend = createSpendStore({ table: memorySpendTable(), publish: async () => undefined, config, now: () => now });
    spend.add('acme', 0.25, { topic: 'ionflux.cmd.llm', partition: 0 });
    expect(spend.spent('acme')).toEqual({ day: 0.25, month: 0.25 });
    now = Date.parse('2026-04-01T00:00:01Z');
    expect(spend.spent('acme')).toEqual({ day: 0, month: 0 });
    spend.changed('acme:2026-03-31:w0', { kind: 'spend', usd: 1, calls: 1, updated_at: '' }); // late news of last month
    expect(totals(spend.add('acme', 0.5, { topic: 'ionflux.cmd.llm', partition: 0 })).get('acme:2026-04:s0')).toMatchObject({ usd: 0.5, calls: 1 });
  });

  it('a shard\'s writer deletes its totals of days and months that are over with its next call; other writers\' keys and keys without a shard stay', () => {
    let now = Date.parse('2026-03-31T23:59:00Z');
    const table = memorySpendTable();
    const service0 = { topic: 'ionflux.cmd.llm', partition: 0 };
    // Another writer's shard, and a total written before shards: not this writer's to delete.
    table.applyLocal('acme:2026-03-30:w0', { kind: 'spend', usd: 1, calls: 1, updated_at: '' });
    table.applyLocal('acme:2026-03-29', { kind: 'spend', usd: 1, calls: 1, updated_at: '' });
    const spend = createSpendStore({ table, publish: async () => undefined, config, now: () => now });
    /** The topic delivering records back: totals and tombstones. */
    const deliver = (records: OutgoingRecord[]) =>
      records.forEach((r) => {
        const value = r.value === null ? undefined : JSON.parse(String(r.value));
        table.applyLocal(String(r.key), value);
        spend.changed(String(r.key), value);
      });
    const first = spend.add('acme', 0.25, service0);
    expect(first.map((r) => [r.key, r.value === null])).toEqual([['acme:2026-03-31:s0', false], ['acme:2026-03:s0', false]]);
    deliver(first);
    now = Date.parse('2026-04-01T00:00:01Z');
    const next = spend.add('acme', 0.5, service0);
    expect(next.map((r) => [r.key, r.value === null])).toEqual([
      ['acme:2026-04-01:s0', false],
      ['acme:2026-04:s0', false],
      ['acme:2026-03-31:s0', true],
      ['acme:2026-03:s0', true],
    ]);
    // Until the tombstones are read back they go with each call; after, never again.
    expect(spend.add('acme', 0.5, service0).filter((r) => r.value === null)).toHaveLength(2);
    deliver(next);
    expect(spend.add('acme', 0.5, service0).filter((r) => r.value === null)).toEqual([]);
    expect([...table.entries()].map(([k]) => k).sort()).toEqual(['acme:2026-03-29', 'acme:2026-03-30:w0', 'acme:2026-04-01:s0', 'acme:2026-04:s0']);
    expect(spend.spent('acme')).toEqual({ day: 1.5, month: 1.5 }); // three calls today
    // A writer starting on a table holding its shard's old totals deletes them at its first call.
    const later = createSpendStore({ table, publish: async () => undefined, config, now: () => Date.parse('2026-04-02T08:00:00Z') });
    expect(later.add('acme', 0.1, service0).filter((r) => r.value === null).map((r) => r.key)).toEqual(['acme:2026-04-01:s0']);
  });

  it('takes the budget from a command, else the workspace config, else the defaults, field by field', async () => {
    const { spend } = setup(Date.now());
    expect(spend.budget('acme')).toEqual({ day_usd: 1, month_usd: 10, source: 'config' });
    expect(spend.budget('other')).toEqual({ day_usd: null, month_usd: 10, source: 'default' });
    await spend.setBudget('acme', { month_usd: 3 });
    expect(spend.budget('acme')).toEqual({ day_usd: 1, month_usd: 3, source: 'command' });
    await spend.setBudget('acme', { month_usd: null });
    expect(spend.budget('acme').month_usd).toBe(10);
  });

  it('refuses at or over the budget, before any call', () => {
    const { spend } = setup(Date.now());
    expect(() => checkBudget(spend, 'acme')).not.toThrow();
    spend.add('acme', 1);
    expect(() => checkBudget(spend, 'acme')).toThrow(expect.objectContaining({ code: 'budget_exceeded', retryable: false }));
  });
});
