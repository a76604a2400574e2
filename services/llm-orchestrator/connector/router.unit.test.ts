import { APIConnectionError, APIConnectionTimeoutError, APIError } from 'openai';
import type OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { HubError } from '../../../shared/errors.ts';
import { parseEnv } from '../../../shared/config.ts';
import type { SecretStore } from '../../../shared/secrets/index.ts';
import { VendorError } from '../../../shared/connectors/types.ts';
import { buildLlmConfig, llmEnvShape, type ModelRoute } from './config.ts';
import { createKeyResolver } from './keys.ts';
import { Cooldowns, resolveChain, walkChain } from './router.ts';

const env = { OPENAI_API_KEY: 'sk-openai-unit-0001', ANTHROPIC_API_KEY: 'sk-ant-unit-0002', LLM_COOLDOWN_MS: '1000' };
const config = buildLlmConfig(parseEnv(z.object(llmEnvShape), env), env);
const store = (entries: Record<string, string> = {}): SecretStore =>
  ({ kind: 'file', get: async (p: string) => (entries[p] ? { value: { api_key: entries[p] }, metadata: { createdAt: '', updatedAt: '' } } : null) }) as unknown as SecretStore;
const apiError = (status: number, headers: Record<string, string> = {}, body: Record<string, unknown> = {}) => APIError.generate(status, { error: { message: `status ${status}`, type: 'x', ...body } }, undefined, new Headers(headers));

function setup(o: { entries?: Record<string, string>; now?: () => number } = {}) {
  const now = o.now ?? (() => 0);
  return { config, keys: createKeyResolver({ store: store(o.entries), cacheMs: 0, now }), clients: () => ({}) as OpenAI, cooldowns: new Cooldowns(config.cooldownMs, now) };
}
const walk = (d: ReturnType<typeof setup>, answers: ((r: ModelRoute) => unknown)[], model = 'gpt-4o', workspaceId = 'ws1') => {
  const seen: string[] = [];
  let i = 0;
  const p = walkChain(d, {
    task: 'text_generation',
    chain: resolveChain(config, 'text_generation', { model }),
    workspaceId,
    signal: new AbortController().signal,
    call: async (_c, route) => {
      seen.push(route.provider);
      const a = answers[i++]!(route);
      if (a instanceof Error) throw a;
      return a;
    },
  });
  return { p, seen };
};

describe('resolveChain', () => {
  it('keeps only the fallbacks that serve the task', () => {
    expect(resolveChain(config, 'text_generation', { model: 'gpt-4o' }).map((r) => r.alias)).toEqual(['gpt-4o', 'claude-3-haiku', 'deepseek-chat']);
    expect(resolveChain(config, 'image_understanding', { model: 'gpt-4o' }).map((r) => r.alias)).toEqual(['gpt-4o', 'claude-3-haiku']);
    expect(resolveChain(config, 'text_generation', { model: 'gpt-4o', fallbacks: [] }).map((r) => r.alias)).toEqual(['gpt-4o']);
    expect(resolveChain(config, 'embedding', {}).map((r) => r.alias)).toEqual(['text-embedding-3-small']);
  });
  it('takes provider/model and a pinned provider; refuses unknown models and wrong tasks', () => {
    expect(resolveChain(config, 'text_generation', { model: 'openai/gpt-4.1', fallbacks: [] })[0]).toMatchObject({ provider: 'openai', model: 'gpt-4.1' });
    expect(resolveChain(config, 'text_generation', { model: 'claude-3-haiku-20240307', provider: 'anthropic', fallbacks: [] })[0]).toMatchObject({ provider: 'anthropic', model: 'claude-3-haiku-20240307' });
    expect(() => resolveChain(config, 'text_generation', { model: 'gpt-99' })).toThrow(/unknown model/);
    expect(() => resolveChain(config, 'embedding', { model: 'gpt-4o' })).toThrow(/does not serve embedding/);
  });
});

describe('walkChain', () => {
  it('falls back on 5xx and refused connections, cools the provider down, and skips it until the cooldown ends', async () => {
    let t = 0;
    const d = setup({ now: () => t });
    const first = walk(d, [() => apiError(503), () => 'from anthropic']);
    expect(await first.p).toMatchObject({ value: 'from anthropic', route: { provider: 'anthropic' }, attempts: [{ outcome: 'failed', status: 503 }, { outcome: 'ok' }] });
    const second = walk(d, [() => 'from anthropic again']);
    expect((await second.p).attempts[0]).toMatchObject({ provider: 'openai', outcome: 'skipped', reason: expect.stringContaining('cooling down') });
    t = 1001;
    expect((await walk(d, [() => 'openai back']).p).route.provider).toBe('openai');
    const refused = walk(d, [() => new APIConnectionError({ message: 'Connection error.' }), () => 'ok']);
    expect((await refused.p).attempts[0]).toMatchObject({ outcome: 'failed', reason: expect.stringContaining('connection failed') });
    t = 3000;
    const slow = walk(d, [() => new APIConnectionTimeoutError(), () => 'ok']);
    expect((await slow.p).attempts).toMatchObject([{ provider: 'openai', outcome: 'failed', reason: expect.stringContaining('timed out') }, { provider: 'anthropic', outcome: 'ok' }]);
  });

  it('cools only the key that got a 429, for as long as Retry-After says', async () => {
    let t = 0;
    const d = setup({ now: () => t, entries: { 'workspaces/ws2/connectors/openai': 'sk-ws2-own-key-123' } });
    await walk(d, [() => apiError(429, { 'retry-after': '5' }), () => 'fallback']).p;
    t = 2000;
    // Another workspace with its own key is not held back by the platform key's rate limit...
    expect((await walk(d, [() => 'own key'], 'gpt-4o', 'ws2').p).route.provider).toBe('openai');
    // ...the platform key still is, past our 1 s cooldown, until the provider's 5 s.
    expect((await walk(d, [() => 'x']).p).attempts[0]!.outcome).toBe('skipped');
    t = 5001;
    expect((await walk(d, [() => 'x']).p).route.provider).toBe('openai');
  });

  it('fails at once on a non-retryable answer, with the provider reason', async () => {
    const d = setup();
    const bad = walk(d, [() => apiError(400, {}, { message: 'Your request was rejected by our safety system', code: 'content_policy_violation' })]);
    await expect(bad.p).rejects.toSatisfy((e: unknown) => e instanceof VendorError && e.status === 400 && !e.retryable && /content_policy_violation.*safety system/.test(e.message));
    expect(bad.seen).toEqual(['openai']);
    // A rejected platform key is the operator's problem, not the workspace's connection.
    await expect(walk(setup(), [() => apiError(401)]).p).rejects.toMatchObject({ code: 'provider_unauthorized', retryable: false });
    const own = setup({ entries: { 'workspaces/ws1/connectors/openai': 'sk-ws1-own-key-456' } });
    await expect(walk(own, [() => apiError(401)]).p).rejects.toMatchObject({ code: 'vendor_unauthorized' });
  });

  it('falls back past a key out of quota (429 insufficient_quota), skips that key a while, and fails without retries when no key has quota left', async () => {
    let t = 0;
    const d = setup({ now: () => t });
    const quota = () => apiError(429, {}, { message: 'You exceeded your current quota, please check your plan and billing details.', type: 'insufficient_quota', code: 'insufficient_quota' });
    const fell = await walk(d, [quota, () => 'from anthropic']).p;
    expect(fell).toMatchObject({ route: { provider: 'anthropic' }, attempts: [{ provider: 'openai', outcome: 'failed', status: 429, reason: expect.stringContaining('insufficient_quota') }, { outcome: 'ok' }] });
    const skipped = walk(d, [() => apiError(429, {}, { type: 'insufficient_quota', code: 'insufficient_quota' })]);
    await expect(skipped.p).rejects.toSatisfy((e: unknown) => e instanceof HubError && !(e instanceof VendorError) && e.code === 'provider_quota_exceeded' && !e.retryable && /openai gpt-4o: skipped \(cooling down/.test(e.message));
    expect(skipped.seen).toEqual(['anthropic']);
    // A provider that failed retryably is worth another try of the whole chain; the key out of quota is not.
    t = 1001;
    await expect(walk(d, [quota, () => apiError(503)]).p).rejects.toSatisfy((e: unknown) => e instanceof VendorError && e.status === 503 && e.retryable);
  });

  it('is retryable with the shortest cooldown when every provider failed retryably, and provider_not_configured when none had a key', async () => {
    const d = setup();
    const all = walk(d, [() => apiError(500), () => apiError(502)], 'gpt-4o');
    await expect(all.p).rejects.toSatisfy((e: unknown) => e instanceof VendorError && e.retryable && e.retryAfterMs === 1000 && /deepseek deepseek-chat: skipped \(no API key/.test(e.message));
    await expect(walk(d, [], 'deepseek-chat').p.catch((e: HubError) => e.code)).resolves.toBe('vendor_http_503');
    const none = setup();
    await expect(walkChain(none, { task: 'text_generation', chain: resolveChain(config, 'text_generation', { model: 'deepseek-chat', fallbacks: [] }), workspaceId: 'ws1', signal: new AbortController().signal, call: async () => 'never' })).rejects.toMatchObject({ code: 'provider_not_configured' });
  });
});
