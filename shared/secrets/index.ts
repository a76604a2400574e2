import { readFileSync } from 'node:fs';
import type { BaseEnv } from '../config.ts';
import { createFileSecretStore } from './file-store.ts';
import { createVaultSecretStore } from './vault-store.ts';
import type { SecretStore } from './store.ts';

export type { SecretMetadata, SecretRecord, SecretStore } from './store.ts';
export { secretPaths } from './store.ts';

/** Vault (KV v2) when a token is configured (VAULT_TOKEN, or VAULT_TOKEN_FILE), else the local encrypted file. */
export function createSecretStore(env: Pick<BaseEnv, 'VAULT_ADDR' | 'VAULT_TOKEN' | 'VAULT_KV_MOUNT' | 'SECRETS_FILE' | 'SECRETS_KEY_FILE'> & { VAULT_TOKEN_FILE?: string }): SecretStore {
  const token = env.VAULT_TOKEN || (env.VAULT_TOKEN_FILE ? readFileSync(env.VAULT_TOKEN_FILE, 'utf8').trim() : undefined);
  if (token) return createVaultSecretStore({ addr: env.VAULT_ADDR, token, mount: env.VAULT_KV_MOUNT });
  return createFileSecretStore({ file: env.SECRETS_FILE, keyFile: env.SECRETS_KEY_FILE });
}
