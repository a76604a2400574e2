import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ConfigError, parseEnv } from '../../../shared/config.ts';
import { buildLlmConfig, llmEnvShape } from './config.ts';

const parse = (env: Record<string, string>) => buildLlmConfig(parseEnv(z.object(llmEnvShape), env), env);

describe('llm config', () => {
  it('has the three providers with their usual base URLs and honours OPENAI_BASE_URL', () => {
    const c = parse({ OPENAI_BASE_URL: 'http://127.0.0.1:9999/v1', OPENAI_API_KEY: 'sk-abcdef123' });
    expect(c.providers.openai).toMatchObject({ baseURL: 'http://127.0.0.1:9999/v1', envKey: 'sk-abcdef123', envKeyName: 'OPENAI_API_KEY', keyRequired: true });
    expect(c.providers.anthropic!.baseURL).toBe('https://api.anthropic.com/v1/');
    expect(c.providers.deepseek!.baseURL).toBe('https://api.deepseek.com');
    expect(c.models['claude-3-haiku']).toMatchObject({ provider: 'anthropic', model: 'claude-3-haiku-20240307' });
    expect(c.fallbacks['gpt-4o']).toEqual(['claude-3-haiku', 'deepseek-chat']);
  });

  it('adds OpenAI-compatible local providers with their aliases, key variable and prices', () => {
    const c = parse({
      LOCAL_KEY: 'local-secret-1',
      LLM_EXTRA_PROVIDERS: JSON.stringify({ ollama: { base_url: 'http://127.0.0.1:11434/v1', api_key_env: 'LOCAL_KEY', models: { llama: { model: 'llama3.1:8b', tasks: ['text_generation'], price: { input_per_1k: 0 } } } } }),
      LLM_FALLBACKS: JSON.stringify({ 'gpt-4o': ['llama'] }),
    });
    expect(c.providers.ollama).toMatchObject({ envKey: 'local-secret-1', keyRequired: false });
    expect(c.models.llama).toMatchObject({ provider: 'ollama', model: 'llama3.1:8b' });
    expect(c.prices['ollama/llama3.1:8b']).toEqual({ input_per_1k: 0 });
    expect(c.fallbacks['gpt-4o']).toEqual(['llama']);
  });

  it('names every bad variable and unknown model', () => {
    expect(() => parse({ LLM_EXTRA_PROVIDERS: '{nope', LLM_COOLDOWN_MS: '-1' })).toThrow(ConfigError);
    try {
      parse({ LLM_EXTRA_PROVIDERS: '{nope', LLM_COOLDOWN_MS: '-1' });
    } catch (e) {
      expect((e as ConfigError).problems.join('\n')).toMatch(/LLM_EXTRA_PROVIDERS[\s\S]*LLM_COOLDOWN_MS|LLM_COOLDOWN_MS[\s\S]*LLM_EXTRA_PROVIDERS/);
    }
    expect(() => parse({ LLM_FALLBACKS: JSON.stringify({ 'gpt-4o': ['gpt-99'] }) })).toThrow(/unknown model gpt-99/);
  });
});
