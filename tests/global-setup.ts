import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createKafkaBus } from '../shared/bus/kafka/bus.ts';
import { baseEnv, kafkaAuth, parseEnv } from '../shared/config.ts';
import { createLogger } from '../shared/logger.ts';

/**
 * Integration tests need the real Kafka, registry and Vault (`make test` starts them through
 * deploy/local/infra-up.sh). Fail early with one clear message instead of many timeouts.
 */
export default async function setup(): Promise<() => void> {
  // The run's temporary folder (services' state directories: tests/helpers/infra.ts testStateDir);
  // the test workers inherit it. make test gives one (deploy/local/test.sh removes it, even after
  // Ctrl-C); otherwise this makes one and removes it when the run ends, and only that one.
  const given = process.env.IONFLUX_TEST_TMP;
  const root = given || (process.env.IONFLUX_TEST_TMP = mkdtempSync(join(tmpdir(), 'ionflux-test-run-')));
  const teardown = () => void (given || rmSync(root, { recursive: true, force: true }));
  const env = infraEnv();
  const problems: string[] = [];
  const bus = createKafkaBus({ brokers: env.brokers, auth: env.auth, clientId: 'ionflux-test-setup', logger: createLogger({ service: 'test-setup', level: 'silent' }) });
  try {
    await bus.listTopics();
  } catch (e) {
    problems.push(`Kafka at ${env.brokers.join(',')}: ${(e as Error).message}`);
  } finally {
    await bus.close().catch(() => undefined);
  }
  for (const [name, url] of [
    ['schema registry', `${env.registryUrl}/subjects`],
    ['Vault', `${env.vaultAddr}/v1/sys/health`],
  ] as const) {
    const res = await fetch(url, { signal: AbortSignal.timeout(3000) }).catch((e: Error) => e);
    if (res instanceof Error || !res.ok) problems.push(`${name} at ${url}: ${res instanceof Error ? res.message : res.status}`);
  }
  if (problems.length) {
    teardown();
    throw new Error(`infrastructure not reachable (run \`make infra-up\`):\n  ${problems.join('\n  ')}`);
  }
  return teardown;
}

/**
 * Where the tests' infrastructure is, and the admin's credentials (`make test` exports
 * KAFKA_SASL_* of the test broker's admin and the OpenBao admin token). Tests that are about a
 * service's own permissions take its credentials from serviceCredentials() (tests/helpers/principals.ts).
 */
export function infraEnv() {
  const env = parseEnv(baseEnv, process.env);
  return {
    brokers: env.KAFKA_BROKERS,
    auth: kafkaAuth(env),
    registryUrl: process.env.SCHEMA_REGISTRY_URL ?? 'http://127.0.0.1:8081/apis/ccompat/v7',
    vaultAddr: process.env.VAULT_ADDR ?? 'http://127.0.0.1:8200',
    vaultToken: process.env.VAULT_TOKEN ?? 'ionflux-dev-root',
  };
}
