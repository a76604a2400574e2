import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { parseEnv } from '../../../shared/config.ts';
import type { OutgoingRecord } from '../../../shared/bus/types.ts';
import { checkBudget, createSpendStore, memorySpendTable, spendKeys } from './budget.ts';
import { buildLlmConfig, llmEnvShape } from './config.ts';

const env = { LLM_BUDGET_USD_MONTH: '10', LLM_WORKSPACE_BUDGETS: JSON.stringify({ acme: { day_usd: 1 } }) };
const config = buildLlmConfig(parseEnv(z.object(llmEnvShape), env), env);

function setup(now: number) {
  const written: OutgoingRecord[] = [];
  const table = memorySpendTable();
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
