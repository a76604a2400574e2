import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { approvalSigningKey } from '../commands/release.ts';
import { HubError } from '../errors.ts';
import { createVaultSecretStore } from '../secrets/vault-store.ts';
import { ADMIN_PRINCIPAL, SERVICES, servicePrincipal } from './principals.ts';
import { adminPolicy, servicePolicy, type VaultPolicyOptions } from './vault-policies.ts';

/**
 * With a root (or policy-admin) token, the only use of it: one policy per service and one for the
 * admin (vault-policies.ts), a periodic orphan token for each whose id is kept in
 * `<dir>/<principal>.token` (created there, mode 0600, when missing; the same id is issued again
 * after a dev server forgot everything), and the approval signing key created as the admin, so
 * services only ever read it. Safe to repeat.
 */
export async function setupVault(o: { addr: string; rootToken: string; mount: string; dir: string; policy?: VaultPolicyOptions }): Promise<string[]> {
  async function call(method: string, path: string, body?: unknown): Promise<number> {
    const res = await fetch(`${o.addr}/v1/${path}`, { method, headers: { 'X-Vault-Token': o.rootToken, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(10_000) });
    await res.text();
    return res.status;
  }
  mkdirSync(o.dir, { recursive: true, mode: 0o700 });
  const principals: [string, string][] = [[ADMIN_PRINCIPAL, adminPolicy(o.mount)], ...Object.keys(SERVICES).map((s): [string, string] => [servicePrincipal(s), servicePolicy(s, o.mount, o.policy)])];
  for (const [name, policy] of principals) {
    const put = await call('PUT', `sys/policies/acl/${name}`, { policy });
    if (put >= 300) throw new HubError('vault_setup_failed', `policy ${name}: HTTP ${put}`);
    const file = join(o.dir, `${name}.token`);
    const id = existsSync(file) ? readFileSync(file, 'utf8').trim() : `ionflux${randomBytes(24).toString('hex')}`;
    if ((await call('POST', 'auth/token/lookup', { token: id })) !== 200) {
      const created = await call('POST', 'auth/token/create-orphan', { id, policies: [name], period: '768h', display_name: name, renewable: true });
      if (created >= 300) throw new HubError('vault_setup_failed', `token for ${name}: HTTP ${created}`);
    }
    if (!existsSync(file)) writeFileSync(file, id, { mode: 0o600 });
  }
  await approvalSigningKey(createVaultSecretStore({ addr: o.addr, token: readFileSync(join(o.dir, `${ADMIN_PRINCIPAL}.token`), 'utf8').trim(), mount: o.mount }));
  return principals.map(([name]) => name);
}
