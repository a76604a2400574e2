import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOpenAISimulator, type OpenAISimulator } from '../../../tests/simulators/openai.ts';
import { classifyProviderError } from './provider-errors.ts';

describe('provider errors, as the openai package reads OpenAI answers (its simulator)', () => {
  let sim: OpenAISimulator;
  beforeAll(async () => void (sim = await startOpenAISimulator({ keys: ['sk-paid', 'sk-spent'] })));
  afterAll(() => sim.close());
  const ask = (key: string) => new OpenAI({ apiKey: key, baseURL: sim.url, maxRetries: 0, logLevel: 'off' }).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);

  it('tells a used-up quota (429 insufficient_quota: no retry restores it) from a rate limit (429: wait and retry)', async () => {
    sim.outOfQuota.add('sk-spent');
    expect(classifyProviderError(await ask('sk-spent'))).toMatchObject({ status: 429, code: 'insufficient_quota', retryable: false, quotaExhausted: true, reason: expect.stringContaining('You exceeded your current quota') });
    sim.script('/v1/chat/completions', [{ status: 429 }]);
    expect(classifyProviderError(await ask('sk-paid'))).toMatchObject({ status: 429, code: 'rate_limit_exceeded', retryable: true, quotaExhausted: false });
    // The same type with the code naming which limit was reached, or none (bodies OpenAI has sent).
    sim.script('/v1/chat/completions', [{ status: 429, error: { type: 'insufficient_quota', code: 'project_spend_limit_exceeded' } }, { status: 429, error: { type: 'insufficient_quota', code: null } }]);
    for (let i = 0; i < 2; i++) expect(classifyProviderError(await ask('sk-paid'))).toMatchObject({ status: 429, retryable: false, quotaExhausted: true });
  });
});
