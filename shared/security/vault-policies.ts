import { SERVICES } from './principals.ts';

/**
 * OpenBao / Vault policies, one per service and one for the admin (the CLI): each service reads
 * only the secrets it uses (KV v2 under `<mount>/data/...`). The approval signing key is created
 * by the admin (at setup) and only read by services. Paths follow shared/secrets/store.ts:
 * `platform/<name>`, `workspaces/<ws>/connectors/<connector>`, `workspaces/<ws>/agents/<agent>`
 * (admin only) and `webhooks/endpoints/<id>` (the ingester's generic endpoints).
 */
interface VaultAccess {
  /** `platform/<name>` read. */
  platformRead: string[];
  /** `workspaces/<ws>/connectors/<name>` read / read and write (tokens it refreshes). */
  workspaceRead: string[];
  workspaceWrite?: string[];
  /** Other paths under the mount, read / read and write. */
  read?: string[];
  write?: string[];
}

const LLM_PROVIDERS = ['openai', 'anthropic', 'deepseek'];

/** What each service of SERVICES reads; `*` stands for every connector (the connector worker runs plugins). */
export const VAULT_ACCESS: Record<keyof typeof SERVICES, VaultAccess> = {
  'webhook-ingester': { platformRead: ['shopify', 'tiktok', 'sendgrid', 'whatsapp'], workspaceRead: [], read: ['webhooks/endpoints/*', 'webhooks/sendgrid/*'] },
  'connector-worker': { platformRead: ['*'], workspaceRead: ['*'] },
  'llm-orchestrator': { platformRead: ['llm', ...LLM_PROVIDERS], workspaceRead: ['llm', ...LLM_PROVIDERS] },
  // The seal key (unsubscribe links, platform notifications) is created on first start if missing.
  'email-dispatcher': { platformRead: ['email'], workspaceRead: ['email', 'email-api'], write: ['platform/email-seal'] },
  'tiktok-sync': { platformRead: ['tiktok'], workspaceRead: ['tiktok'], workspaceWrite: ['tiktok'] },
  'shopify-sync': { platformRead: ['shopify'], workspaceRead: ['shopify'], workspaceWrite: ['shopify'] },
};

const READ = '["read"]';
const LIST = '["read", "list"]';
const WRITE = '["create", "read", "update", "delete"]';
const DENY = '["deny"]';

/** What the deployment adds to VAULT_ACCESS: the LLM orchestrator's own providers (LLM_EXTRA_PROVIDERS ids). */
export interface VaultPolicyOptions {
  llmExtraProviders?: readonly string[];
}

/**
 * VAULT_ACCESS with the LLM orchestrator's extra providers: it reads their keys at
 * `platform/<id>` and `workspaces/<ws>/connectors/<id>` as it does the built-in ones (without,
 * OpenBao answers 403 and every call to them fails). An id naming what another service holds (or
 * the signing key) would hand the orchestrator that service's secrets: refused.
 */
export function vaultAccess(o: VaultPolicyOptions = {}): Record<keyof typeof SERVICES, VaultAccess> {
  const extra = [...new Set(o.llmExtraProviders ?? [])].filter((id) => !LLM_PROVIDERS.includes(id) && id !== 'llm');
  if (!extra.length) return VAULT_ACCESS;
  const others = Object.entries(VAULT_ACCESS).filter(([s]) => s !== 'llm-orchestrator' && s !== 'connector-worker');
  // The worker's own connectors too: the worker is denied every id the orchestrator reads.
  const held = new Set(['approvals', 'webhook', 'platform', ...others.flatMap(([, a]) => [...a.platformRead, ...a.workspaceRead, ...(a.workspaceWrite ?? []), ...[...(a.read ?? []), ...(a.write ?? [])].map((p) => p.replace(/^platform\//, ''))])]);
  const taken = extra.filter((id) => held.has(id));
  if (taken.length) throw new Error(`LLM_EXTRA_PROVIDERS: ${taken.join(', ')} ${taken.length > 1 ? 'name' : 'names'} secrets another service holds; give the provider another id`);
  const llm = VAULT_ACCESS['llm-orchestrator']!;
  return { ...VAULT_ACCESS, 'llm-orchestrator': { ...llm, platformRead: [...llm.platformRead, ...extra], workspaceRead: [...llm.workspaceRead, ...extra] } };
}

/** The HCL policy of one service, for a KV v2 mount. */
export function servicePolicy(service: string, mount = 'secret', o: VaultPolicyOptions = {}): string {
  const access = vaultAccess(o);
  const a = access[service as keyof typeof access];
  if (!a) throw new Error(`no vault access for ${service} in shared/security/vault-policies.ts`);
  // One rule per path; a later, stronger grant replaces an earlier one.
  const rules = new Map<string, string>();
  const path = (p: string, caps: string) => rules.set(p, caps);
  // Command workers verify approval releases with this key (shopify-sync and tiktok-sync also check
  // connect grants with it); the admin creates it. A service without commands (the internet-facing
  // ingester) never holds it: whoever reads it can sign releases of any external write.
  if (SERVICES[service]?.commands.length) path('data/platform/approvals', READ);
  for (const p of a.platformRead) path(`data/platform/${p}`, READ);
  // A `*` reader (the connector worker and its plugins) still cannot read what other services
  // hold under platform/ (what they read, and keys they write, such as the email seal key): an
  // exact path outranks a glob.
  const others = Object.entries(access).filter(([s]) => s !== service);
  if (a.platformRead.includes('*')) {
    const held = others.flatMap(([, o]) => [...o.platformRead.map((p) => `platform/${p}`), ...[...(o.read ?? []), ...(o.write ?? [])].filter((p) => p.startsWith('platform/'))]);
    for (const p of new Set(held)) path(`data/${p}`, DENY);
  }
  if (a.workspaceRead.includes('*')) for (const c of new Set(others.flatMap(([, o]) => o.workspaceRead))) path(`data/workspaces/+/connectors/${c}`, DENY);
  for (const c of a.workspaceRead) path(`data/workspaces/+/connectors/${c}`, READ);
  for (const c of a.workspaceWrite ?? []) {
    path(`data/workspaces/+/connectors/${c}`, WRITE);
    path(`metadata/workspaces/+/connectors/${c}`, WRITE);
  }
  for (const p of a.read ?? []) path(`data/${p}`, READ);
  for (const p of a.write ?? []) {
    path(`data/${p}`, WRITE);
    path(`metadata/${p}`, WRITE);
  }
  return [...rules].map(([p, caps]) => `path "${mount}/${p}" { capabilities = ${caps} }`).join('\n') + '\n';
}

/** The admin (the CLI): every secret, including agents' credentials and the signing key. */
export function adminPolicy(mount = 'secret'): string {
  return [`path "${mount}/data/*" { capabilities = ${WRITE.replace(']', ', "list"]')} }`, `path "${mount}/metadata/*" { capabilities = ${WRITE.replace(']', ', "list"]')} }`, `path "${mount}/metadata/" { capabilities = ${LIST} }`].join('\n') + '\n';
}
