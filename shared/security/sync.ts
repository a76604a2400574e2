import { aclKey, type AclBinding, type SecurityAdmin } from '../bus/security.ts';
import { topics } from '../bus/topics.ts';
import type { Bus } from '../bus/types.ts';
import type { ConnectorSpec } from '../connectors/types.ts';
import { HubError } from '../errors.ts';
import { linkSchema } from '../links.ts';
import { agentPlan, infraPlans, servicePlan, type PlanInput } from './acl-plan.ts';
import { parseAgentPrincipal, principalKind, SERVICES } from './principals.ts';

/** What the plan needs to know of the hub: its connectors and the generic endpoints' sources. */
export async function planInput(bus: Pick<Bus, 'readToEnd'>, connectors: Iterable<ConnectorSpec>): Promise<PlanInput> {
  const specs = [...connectors];
  const latest = new Map<string, { workspaceId: string; source: string } | null>();
  for (const r of await bus.readToEnd(topics.state('links'))) {
    const key = r.key?.toString() ?? '';
    if (!key.startsWith('generic:')) continue;
    const parsed = r.value ? linkSchema.safeParse(JSON.parse(r.value.toString())) : null;
    latest.set(key, parsed?.success && parsed.data.source ? { workspaceId: parsed.data.workspaceId, source: parsed.data.source } : null);
  }
  const genericSources = [...new Map([...latest.values()].filter((g) => g !== null).map((g) => [`${g.workspaceId}/${g.source}`, g])).values()];
  return {
    commandIds: specs.map((s) => s.manifest.id).sort(),
    // A connector whose every action is admin-only (the platform's approval decisions) gets no agent topic.
    agentCommandIds: specs.filter((s) => Object.values(s.manifest.actions).some((a) => (a.invokedBy ?? ['agent', 'admin']).includes('agent'))).map((s) => s.manifest.id).sort(),
    genericSources,
  };
}

/** The ACLs the cluster should hold: every service's, and every agent's whose SCRAM user exists. */
export function desiredAcls(input: PlanInput, users: string[]): AclBinding[] {
  const out = [...Object.keys(SERVICES).flatMap((s) => servicePlan(s, input)), ...infraPlans()];
  for (const u of users) {
    const agent = parseAgentPrincipal(u);
    if (agent) out.push(...agentPlan(agent.agentId, agent.workspaceId, input));
  }
  return out;
}

export interface SyncResult {
  created: number;
  deleted: number;
  kept: number;
}

/**
 * Makes the cluster hold exactly the planned ACLs for the principals the hub manages (services
 * and agents): missing ones are created, others of those principals removed (a revoked agent's
 * leftovers, a grant the plan no longer makes). Other principals' ACLs are left alone.
 */
export async function syncAcls(security: SecurityAdmin, input: PlanInput): Promise<SyncResult> {
  const users = (await security.listScramUsers()).map((u) => u.name);
  const desired = desiredAcls(input, users);
  let existing: AclBinding[];
  try {
    existing = await security.listAcls();
  } catch (e) {
    if ((e as { type?: string }).type === 'SECURITY_DISABLED') throw new HubError('security_disabled', 'the broker has no authorizer (no ACLs): it is not the SASL broker `make up` starts', { cause: e });
    throw e;
  }
  const managed = (principal: string) => ['service', 'agent', 'infra'].includes(principalKind(principal).kind);
  const want = new Set(desired.map(aclKey));
  const have = new Set(existing.map(aclKey));
  const create = desired.filter((b) => !have.has(aclKey(b)));
  const remove = existing.filter((b) => managed(b.principal) && !want.has(aclKey(b)));
  if (create.length) await security.createAcls(create);
  if (remove.length) await security.deleteAcls(remove);
  return { created: create.length, deleted: remove.length, kept: desired.length - create.length };
}
