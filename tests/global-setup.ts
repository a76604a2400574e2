import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createKafkaBus } from '../shared/bus/kafka/bus.ts';
import { baseEnv, kafkaAuth, parseEnv } from '../shared/config.ts';
import { createLogger } from '../shared/logger.ts';
import { createVaultSecretStore } from '../shared/secrets/vault-store.ts';
import type { SecretStore } from '../shared/secrets/store.ts';

/**
 * Integration tests need the real Kafka, registry and Vault (`make test` starts them through
 * deploy/local/infra-up.sh). Fail early with one clear message instead of many timeouts.
 */
export default async function setup(): Promise<() => Promise<void>> {
  // The run's temporary folder (services' state directories: tests/helpers/infra.ts testStateDir);
  // the test workers inherit it. make test gives one (deploy/local/test.sh removes it, even after
  // Ctrl-C); otherwise this makes one and removes it when the run ends, and only that one.
  const given = process.env.IONFLUX_TEST_TMP;
  const root = given || (process.env.IONFLUX_TEST_TMP = mkdtempSync(join(tmpdir(), 'ionflux-test-run-')));
  const env = infraEnv();
  const secrets = testSecrets(env);
  const teardown = async () => {
    if (!given) rmSync(root, { recursive: true, force: true });
    await secrets.purge();
  };
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
  if (!problems.length) await secrets.snapshot();
  if (problems.length) {
    await teardown();
    throw new Error(`infrastructure not reachable (run \`make infra-up\`):\n  ${problems.join('\n  ')}`);
  }
  return teardown;
}

/** A name the tests make (tests/helpers/infra.ts uid: a short prefix and 12 hex digits): workspaces, SendGrid accounts. */
const TEST_NAME = /^[a-z]{1,8}[0-9a-f]{12}$/;
/** Where tests write secrets: workspaces' connectors and agents, endpoint secrets, SendGrid account keys. */
const ROOTS = ['workspaces/', 'webhooks/'];

/**
 * The OpenBao of `make up` is the tests' too. What the run wrote goes when it ends (every version
 * and the metadata): the secrets that were not there at the start and that belong to a workspace
 * or account named as tests name theirs (by path, or by an endpoint's workspace label), so a
 * user's own are never touched.
 */
function testSecrets(env: ReturnType<typeof infraEnv>) {
  const store = createVaultSecretStore({ addr: env.vaultAddr, token: env.vaultToken, mount: 'secret' });
  const all = async () => new Set((await Promise.all(ROOTS.map((r) => leaves(store, r)))).flat());
  const isTests = async (path: string) => path.split('/').some((s) => TEST_NAME.test(s)) || TEST_NAME.test((await store.get(path))?.metadata.labels?.workspace ?? '');
  let before: Set<string> | undefined;
  return {
    async snapshot() {
      before = await all();
    },
    async purge() {
      if (!before) return;
      for (const path of await all()) if (!before.has(path) && (await isTests(path))) await store.delete(path);
    },
  };
}

/** Every secret's path under a prefix (list shows sub-folders with a trailing /). */
async function leaves(store: SecretStore, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for (const key of await store.list(prefix)) out.push(...(key.endsWith('/') ? await leaves(store, `${prefix}${key}`) : [`${prefix}${key}`]));
  return out;
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
