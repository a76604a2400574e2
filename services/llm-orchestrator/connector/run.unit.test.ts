import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { OutgoingRecord } from '../../../shared/bus/types.ts';
import { parseEnv } from '../../../shared/config.ts';
import type { ActionContext, StageOptions } from '../../../shared/connectors/types.ts';
import { createLogger } from '../../../shared/logger.ts';
import type { SecretStore } from '../../../shared/secrets/index.ts';
import { startOpenAISimulator, type OpenAISimulator } from '../../../tests/simulators/openai.ts';
import type { ArtifactStore } from './artifacts.ts';
import { createSpendStore, memorySpendTable } from './budget.ts';
import { buildLlmConfig, llmEnvShape, type ModelRoute } from './config.ts';
import { createLlmConnector } from './index.ts';
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

describe('spend of a call the provider billed (through the openai package, against its simulator)', () => {
  let sim: OpenAISimulator;
  beforeAll(async () => void (sim = await startOpenAISimulator({ keys: ['sk-unit-spend'] })));
  afterAll(() => sim.close());

  function connector(artifacts: Partial<ArtifactStore>) {
    const env = { OPENAI_API_KEY: 'sk-unit-spend', OPENAI_BASE_URL: sim.url };
    const config = buildLlmConfig(parseEnv(z.object(llmEnvShape), env), env);
    const table = memorySpendTable();
    const spend = createSpendStore({ table, publish: async () => undefined, config, now: Date.now });
    const store = { get: async () => null } as unknown as SecretStore;
    return { spend, table, llm: createLlmConnector({ config, store, spend, artifacts: artifacts as ArtifactStore }) };
  }

  function context(params: Record<string, unknown>) {
    const staged: { record: OutgoingRecord; o?: StageOptions }[] = [];
    const ctx = {
      params, workspaceId: 'acme', agentId: 'agent-1', idempotencyKey: 'cmd-1', credentials: {}, settings: {}, resumed: false,
      logger: createLogger({ service: 'test', level: 'silent' }), signal: new AbortController().signal,
      emit: () => undefined,
      stage: (record: OutgoingRecord, o?: StageOptions) => void staged.push({ record, ...(o ? { o } : {}) }),
    } satisfies ActionContext;
    return { ctx, staged };
  }

  it('is counted when storing the image fails after the call: the new totals are staged to go with the outcome even if it fails', async () => {
    const { spend, table, llm } = connector({ put: async () => Promise.reject(new Error('ENOSPC: no space left on device')) });
    const { ctx, staged } = context({ prompt: 'a badge', size: '1024x1024', output: 'reference' });
    const calls = sim.count('/v1/images/generations');
    await expect(llm.handlers.image_generation!(ctx)).rejects.toThrow(/ENOSPC/);
    expect(sim.count('/v1/images/generations')).toBe(calls + 1);
    expect(spend.spent('acme').day).toBe(0.04);
    expect(staged.map((s) => s.o)).toEqual([{ evenOnFailure: true }, { evenOnFailure: true }]);
    const day = staged.find((s) => s.record.key === `acme:${new Date().toISOString().slice(0, 10)}`)!;
    expect(JSON.parse(String(day.record.value))).toMatchObject({ kind: 'spend', usd: 0.04, calls: 1 });
    // The table takes it once the topic gives it back; the store answers from it meanwhile.
    expect(table.get(String(day.record.key))).toBeUndefined();
  });

  it('is counted once per call when the call succeeds', async () => {
    const { spend, llm } = connector({});
    const { ctx, staged } = context({ prompt: 'a badge', size: '1024x1024' });
    await expect(llm.handlers.image_generation!(ctx)).resolves.toMatchObject({ cost_usd: 0.04 });
    expect(spend.spent('acme')).toEqual({ day: 0.04, month: 0.04 });
    expect(staged).toHaveLength(2);
  });
});
