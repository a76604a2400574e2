import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { baseEnv, ConfigError, parseEnv } from './config.ts';

describe('config', () => {
  it('gives the documented local defaults', () => {
    const env = parseEnv(baseEnv, {});
    expect(env.KAFKA_BROKERS).toEqual(['127.0.0.1:9092']);
    expect(env.SCHEMA_REGISTRY_URL).toBe('http://127.0.0.1:8081/apis/ccompat/v7');
    expect(env.VAULT_ADDR).toBe('http://127.0.0.1:8200');
  });

  it('reads overrides, treating empty values as unset', () => {
    const env = parseEnv(baseEnv, { KAFKA_BROKERS: 'a:1, b:2', LOG_LEVEL: '' });
    expect(env.KAFKA_BROKERS).toEqual(['a:1', 'b:2']);
    expect(env.LOG_LEVEL).toBe('info');
  });

  it('names every bad variable in one error', () => {
    const schema = baseEnv.extend({ INGESTER_PORT: z.coerce.number().int().max(65535) });
    let error: unknown;
    try {
      parseEnv(schema, { SCHEMA_REGISTRY_URL: 'not a url', LOG_LEVEL: 'loud', INGESTER_PORT: '99999' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    for (const name of ['SCHEMA_REGISTRY_URL', 'LOG_LEVEL', 'INGESTER_PORT']) expect(message).toContain(name);
  });
});
