import type { BaseEnv } from '../config.ts';
import { createFileSecretStore } from './file-store.ts';
import { createVaultSecretStore } from './vault-store.ts';
import type { SecretStore } from './store.ts';

export type { SecretMetadata, SecretRecord, SecretStore } from './store.ts';
export { secretPaths } from './store.ts';

/** Vault (KV v2) when a token is configured, else the local encrypted file. */
export function createSecretStore(env: Pick<BaseEnv, 'VAULT_ADDR' | 'VAULT_TOKEN' | 'VAULT_KV_MOUNT' | 'SECRETS_FILE' | 'SECRETS_KEY_FILE'>): SecretStore {
  if (env.VAULT_TOKEN) return createVaultSecretStore({ addr: env.VAULT_ADDR, token: env.VAULT_TOKEN, mount: env.VAULT_KV_MOUNT });
  return createFileSecretStore({ file: env.SECRETS_FILE, keyFile: env.SECRETS_KEY_FILE });
}
