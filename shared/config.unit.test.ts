import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { z } from 'zod';
import { baseEnv, ConfigError, kafkaAuth, parseEnv, withLocalHubEnv } from './config.ts';

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

  it('reads Kafka SASL and TLS settings, a password file too, and refuses half a configuration', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ionflux-config-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'pw'), 'from-the-file-123\n');
    const auth = (vars: Record<string, string>) => kafkaAuth(parseEnv(baseEnv, vars));
    expect(auth({})).toEqual({});
    expect(auth({ KAFKA_SASL_USERNAME: 'ionflux-admin', KAFKA_SASL_PASSWORD: 'secret-123', KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512' })).toEqual({ sasl: { mechanism: 'scram-sha-512', username: 'ionflux-admin', password: 'secret-123' } });
    expect(auth({ KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD_FILE: join(dir, 'pw') }).sasl).toEqual({ mechanism: 'scram-sha-256', username: 'u', password: 'from-the-file-123' });
    expect(auth({ KAFKA_SSL: 'true' })).toEqual({ ssl: {} });
    expect(() => auth({ KAFKA_SASL_USERNAME: 'u' })).toThrow(/KAFKA_SASL_PASSWORD/);
    expect(() => auth({ KAFKA_SASL_PASSWORD: 'p-123456' })).toThrow(/KAFKA_SASL_USERNAME/);
    expect(() => auth({ KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD_FILE: join(dir, 'missing') })).toThrow(/KAFKA_SASL_PASSWORD_FILE/);
    expect(() => auth({ KAFKA_SSL_CA_FILE: join(dir, 'pw') })).toThrow(/KAFKA_SSL/);

  });

  it('completes the environment from the files make up writes, one group at a time', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ionflux-env-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'kafka.env'), 'KAFKA_BROKERS=127.0.0.1:9092\nKAFKA_SASL_USERNAME=ionflux-admin\nKAFKA_SASL_PASSWORD=pw-123456\n');
    writeFileSync(join(dir, 'hub.env'), '# written by make up\nVAULT_ADDR=http://127.0.0.1:8200\nVAULT_TOKEN=admin-token\n');
    const full = withLocalHubEnv({ IONFLUX_ENV_DIR: dir });
    expect(full).toMatchObject({ KAFKA_BROKERS: '127.0.0.1:9092', KAFKA_SASL_USERNAME: 'ionflux-admin', VAULT_TOKEN: 'admin-token' });
    // A broker of the environment's own is not mixed with the file's credentials; an empty VAULT_TOKEN means the file store.
    const own = withLocalHubEnv({ IONFLUX_ENV_DIR: dir, KAFKA_BROKERS: 'elsewhere:9092', VAULT_TOKEN: '' });
    expect(own.KAFKA_SASL_USERNAME).toBeUndefined();
    expect(own.VAULT_TOKEN).toBe('');
    expect(withLocalHubEnv({ IONFLUX_ENV_DIR: join(dir, 'none') })).toEqual({ IONFLUX_ENV_DIR: join(dir, 'none') });

  });
});
