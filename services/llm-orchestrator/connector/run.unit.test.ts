import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { OutgoingRecord } from '../../../shared/bus/types.ts';
import { parseEnv } from '../../../shared/config.ts';
import type { ActionContext, StageOptions } from '../../../shared/connectors/types.ts';
import { deterministicEventId, type PlatformEvent } from '../../../shared/events/platform-event.ts';
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
    // Events as JSON here; the orchestrator encodes them with the registry's Avro envelope.
    const usageEvents = { service: 'llm', encode: async (e: PlatformEvent) => Buffer.from(JSON.stringify(e)) };
    return { spend, table, llm: createLlmConnector({ config, store, spend, artifacts: artifacts as ArtifactStore, usageEvents, onCall }) };
  }

  function context(params: Record<string, unknown>, commandId = 'cmd-1') {
    const staged: { record: OutgoingRecord; o?: StageOptions }[] = [];
    const emitted: unknown[] = [];
    const ctx = {
      params, workspaceId: 'acme', agentId: 'agent-1', idempotencyKey: commandId, credentials: {}, settings: {}, resumed: false,
      logger: createLogger({ service: 'test', level: 'silent' }), signal: new AbortController().signal,
      emit: (entity: string, action: string, payload: unknown) => void emitted.push({ entity, action, payload }),
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
    expect(staged.map((s) => s.o)).toEqual([{ evenOnFailure: true }, { evenOnFailure: true }, { evenOnFailure: true }]);
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
    // Two totals and one usage event, not emitted besides (the worker would publish it twice).
    expect(staged).toHaveLength(3);
    expect(usageEventsOf(staged)).toHaveLength(1);
    expect(emitted).toEqual([]);
  });

  const usageEventsOf = (staged: { record: OutgoingRecord; o?: StageOptions }[]) =>
    staged.filter((s) => s.record.topic === 'ionflux.llm.ws_acme.usage.recorded').map((s) => ({ ...s, event: JSON.parse(String(s.record.value)) as PlatformEvent }));

  it('has its usage event when storing the image fails after the call, staged to go with the outcome even if it fails', async () => {
    const { llm } = connector({ put: async () => Promise.reject(new Error('ENOSPC: no space left on device')) });
    const { ctx, staged } = context({ prompt: 'a badge', size: '1024x1024', output: 'reference' });
    await expect(llm.handlers.image_generation!(ctx)).rejects.toThrow(/ENOSPC/);
    const [usage, ...more] = usageEventsOf(staged);
    expect(more).toEqual([]);
    expect(usage!.o).toEqual({ evenOnFailure: true });
    expect(usage!.event).toMatchObject({ event_type: 'llm.usage.recorded', workspace_id: 'acme', source_service_name: 'llm-worker', correlation_id: 'cmd-1' });
    expect(usage!.record.headers).toMatchObject({ 'ionflux.event_id': usage!.event.event_id, 'ionflux.event_type': 'llm.usage.recorded', command_id: 'cmd-1' });
    expect(JSON.parse(usage!.event.payload_json)).toMatchObject({ command_id: 'cmd-1', agent_id: 'agent-1', task: 'image_generation', provider: 'openai', model: 'dall-e-3', usage: { images: 1 }, cost_usd: 0.04, priced: true });
  });

  it('is in the calls and cost metrics when storing the image fails after the call', async () => {
    const registry = new Registry();
    const { llm } = connector({ put: async () => Promise.reject(new Error('ENOSPC: no space left on device')) }, llmMetrics(registry));
    await expect(llm.handlers.image_generation!(context({ prompt: 'a badge', size: '1024x1024', output: 'reference' }).ctx)).rejects.toThrow(/ENOSPC/);
    const metrics = await registry.metrics();
    expect(metrics).toContain('ionflux_llm_cost_usd_total{provider="openai",model="dall-e-3"} 0.04');
    expect(metrics).toContain('ionflux_llm_calls_total{task="image_generation",provider="openai",model="dall-e-3"} 1');
  });

  it("gives a command's usage event the same id when the command runs again, and the id the worker gave it before", async () => {
    const { llm } = connector({});
    const ids = [];
    for (const id of ['cmd-1', 'cmd-1', 'cmd-2']) {
      const { ctx, staged } = context({ prompt: 'a badge' }, id);
      await llm.handlers.image_generation!(ctx);
      ids.push(usageEventsOf(staged)[0]!.event.event_id);
    }
    expect(ids[1]).toBe(ids[0]);
    expect(ids[2]).not.toBe(ids[0]);
    // What the worker gave the event the handler emitted (its first): consumers dedupe across versions.
    expect(ids[0]).toBe(deterministicEventId('llm.usage.recorded:acme:cmd-1:emit:0'));
  });
});
