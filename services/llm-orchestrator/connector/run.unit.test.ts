import { describe, expect, it } from 'vitest';
import type { ModelRoute } from './config.ts';
import { pricedUnderBudget, type LlmRuntime } from './run.ts';

const route = (provider: string, model: string): ModelRoute => ({ alias: `${provider}/${model}`, provider, model, tasks: ['text_generation'] });
const runtime = (budget: { day_usd: number | null; month_usd: number | null }) =>
  ({ spend: { budget: () => budget }, config: { prices: { 'openai/gpt-4o-mini': { input_per_1k: 0.00015, output_per_1k: 0.0006 } } } }) as unknown as LlmRuntime;

describe('models a workspace with a budget may use', () => {
  const chain = [route('openai', 'o1-pro'), route('openai', 'gpt-4o-mini')];

  it('only priced ones: an unpriced call would count $0 against the budget whatever it costs', () => {
    expect(pricedUnderBudget(runtime({ day_usd: 1, month_usd: null }), 'acme', chain)).toEqual([chain[1]]);
    expect(() => pricedUnderBudget(runtime({ day_usd: null, month_usd: 10 }), 'acme', [chain[0]!])).toThrow(expect.objectContaining({ code: 'unpriced_model' }));
  });

  it('any, without a budget (the usage event says priced: false)', () => {
    expect(pricedUnderBudget(runtime({ day_usd: null, month_usd: null }), 'acme', chain)).toEqual(chain);
  });
});
