import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { OutgoingRecord } from '../../../shared/bus/types.ts';
import { parseEnv } from '../../../shared/config.ts';
import type { ActionContext, StageOptions } from '../../../shared/connectors/types.ts';
import { createLogger } from '../../../shared/logger.ts';
import type { SecretStore } from '../../../shared/secrets/index.ts';
import { startOpenAISimulator, type OpenAISimulator } from '../../../tests/simulators/openai.ts';
import { llmMetrics } from '../metrics.ts';
import type { ArtifactStore } from './artifacts.ts';
import { createSpendStore, memorySpendTable } from './budget.ts';
import { buildLlmConfig, llmEnvShape, type ModelRoute } from './config.ts';
import { createLlmConnector } from './index.ts';
import { pricedUnderBudget, type CallObservation, type LlmRuntime } from './run.ts';

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

  function connector(artifacts: Partial<ArtifactStore>, onCall?: (o: CallObservation) => void) {
    const env = { OPENAI_API_KEY: 'sk-unit-spend', OPENAI_BASE_URL: sim.url };
    const config = buildLlmConfig(parseEnv(z.object(llmEnvShape), env), env);
    const table = memorySpendTable();
    const spend = createSpendStore({ table, publish: async () => undefined, config, now: Date.now });
    const store = { get: async () => null } as unknown as SecretStore;
    return { spend, table, llm: createLlmConnector({ config, store, spend, artifacts: artifacts as ArtifactStore, onCall }) };
  }

  function context(params: Record<string, unknown>, commandId = 'cmd-1') {
    const staged: { record: OutgoingRecord; o?: StageOptions }[] = [];
    const emitted: { entity: string; action: string; payload: unknown; o?: StageOptions }[] = [];
    const ctx = {
      params, workspaceId: 'acme', agentId: 'agent-1', idempotencyKey: commandId, credentials: {}, settings: {}, resumed: false,
      logger: createLogger({ service: 'test', level: 'silent' }), signal: new AbortController().signal,
      emit: (entity: string, action: string, payload: unknown, o?: StageOptions) => void emitted.push({ entity, action, payload, ...(o ? { o } : {}) }),
      stage: (record: OutgoingRecord, o?: StageOptions) => void staged.push({ record, ...(o ? { o } : {}) }),
    } satisfies ActionContext;
    return { ctx, staged, emitted };
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
    const { ctx, staged, emitted } = context({ prompt: 'a badge', size: '1024x1024' });
    await expect(llm.handlers.image_generation!(ctx)).resolves.toMatchObject({ cost_usd: 0.04 });
    expect(spend.spent('acme')).toEqual({ day: 0.04, month: 0.04 });
    // Two totals and one usage event, emitted once, to go with the outcome whatever it says.
    expect(staged).toHaveLength(2);
    expect(emitted).toMatchObject([{ entity: 'usage', action: 'recorded', o: { evenOnFailure: true } }]);
  });

  it('has its usage event when storing the image fails after the call, emitted to go with the outcome even if it fails', async () => {
    const { llm } = connector({ put: async () => Promise.reject(new Error('ENOSPC: no space left on device')) });
    const { ctx, emitted } = context({ prompt: 'a badge', size: '1024x1024', output: 'reference' });
    await expect(llm.handlers.image_generation!(ctx)).rejects.toThrow(/ENOSPC/);
    // The handler's first (and only) emitted event: the worker gives it the id `<command id>:emit:0`, as before.
    expect(emitted).toHaveLength(1);
    expect(emitted[0]).toMatchObject({ entity: 'usage', action: 'recorded', o: { evenOnFailure: true } });
    expect(emitted[0]!.payload).toMatchObject({ command_id: 'cmd-1', agent_id: 'agent-1', task: 'image_generation', provider: 'openai', model: 'dall-e-3', usage: { images: 1 }, cost_usd: 0.04, priced: true });
  });

  it('is in the calls and cost metrics when storing the image fails after the call', async () => {
    const registry = new Registry();
    const { llm } = connector({ put: async () => Promise.reject(new Error('ENOSPC: no space left on device')) }, llmMetrics(registry));
    await expect(llm.handlers.image_generation!(context({ prompt: 'a badge', size: '1024x1024', output: 'reference' }).ctx)).rejects.toThrow(/ENOSPC/);
    const metrics = await registry.metrics();
    expect(metrics).toContain('ionflux_llm_cost_usd_total{provider="openai",model="dall-e-3"} 0.04');
    expect(metrics).toContain('ionflux_llm_calls_total{task="image_generation",provider="openai",model="dall-e-3"} 1');
  });
});
