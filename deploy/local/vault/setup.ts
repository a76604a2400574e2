// Run by infra-up.sh with the dev root token, the only use of it: writes one policy per service
// and one for the admin (shared/security/vault-policies.ts), gives each a periodic orphan token
// kept in <dir>/<principal>.token (mode 0600; the same id again after OpenBao restarts, since dev
// mode forgets everything), and creates the approval signing key as the admin, so services only
// ever read it. Usage: node --import tsx deploy/local/vault/setup.ts <dir>
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { approvalSigningKey } from '../../../shared/commands/release.ts';
import { createVaultSecretStore } from '../../../shared/secrets/vault-store.ts';
import { ADMIN_PRINCIPAL, SERVICES, servicePrincipal } from '../../../shared/security/principals.ts';
import { adminPolicy, servicePolicy } from '../../../shared/security/vault-policies.ts';

const dir = process.argv[2];
const addr = process.env.VAULT_ADDR ?? 'http://127.0.0.1:8200';
const root = process.env.VAULT_ROOT_TOKEN;
const mount = process.env.VAULT_KV_MOUNT ?? 'secret';
if (!dir || !root) throw new Error('usage: VAULT_ROOT_TOKEN=... setup.ts <dir>');
mkdirSync(dir, { recursive: true, mode: 0o700 });

async function call(method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${addr}/v1/${path}`, { method, headers: { 'X-Vault-Token': root!, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}

const principals: [string, string][] = [[ADMIN_PRINCIPAL, adminPolicy(mount)], ...Object.keys(SERVICES).map((s): [string, string] => [servicePrincipal(s), servicePolicy(s, mount)])];
for (const [name, policy] of principals) {
  const put = await call('PUT', `sys/policies/acl/${name}`, { policy });
  if (put.status >= 300) throw new Error(`policy ${name}: HTTP ${put.status}`);
  const file = join(dir, `${name}.token`);
  const id = existsSync(file) ? readFileSync(file, 'utf8').trim() : `ionflux-${randomBytes(24).toString('base64url').replace(/[-_]/g, '')}`;
  const known = await call('POST', 'auth/token/lookup', { token: id });
  if (known.status !== 200) {
    const created = await call('POST', 'auth/token/create-orphan', { id, policies: [name], period: '768h', display_name: name, renewable: true });
    if (created.status >= 300) throw new Error(`token for ${name}: HTTP ${created.status}`);
  }
  writeFileSync(file, id, { mode: 0o600 });
}
await approvalSigningKey(createVaultSecretStore({ addr, token: readFileSync(join(dir, `${ADMIN_PRINCIPAL}.token`), 'utf8').trim(), mount }));
process.stderr.write(`[infra] OpenBao: ${principals.length} policies and tokens (${dir})\n`);
