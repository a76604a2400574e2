import { z } from 'zod';
import { isReservedSource } from '../bus/topics.ts';

/** How risky an action is, and so what it needs before it runs (SPEC.md, seeds 000/004). */
export const APPROVAL_GATES = ['read_only', 'artifact_generation', 'workspace_write', 'external_write', 'blocked_by_default'] as const;
export const PERMISSIONS = ['read', 'write_draft', 'external_write', 'financial_action', 'secret_management'] as const;
export const CATEGORIES = ['ai', 'social', 'storage', 'data', 'communication', 'commerce', 'automation', 'analytics', 'productivity', 'developer'] as const;
export const AUTH_TYPES = ['oauth', 'api_key', 'service_account', 'webhook_secret', 'local'] as const;

export type ApprovalGate = (typeof APPROVAL_GATES)[number];
export type Permission = (typeof PERMISSIONS)[number];

/**
 * The least strict gate an action of each permission may carry (APPROVAL_GATES runs from least to
 * most strict). A gate below it would let the worker run the action with less than its permission
 * needs: external writes wait for an admin's approval (SPEC: "explicit approval"), and financial
 * actions, riskier still, need that approval too once the workspace has enabled them.
 */
export const MIN_GATE: Readonly<Record<Permission, ApprovalGate>> = Object.freeze({
  read: 'read_only',
  write_draft: 'artifact_generation',
  secret_management: 'workspace_write',
  external_write: 'external_write',
  financial_action: 'external_write',
});
/** Permissions whose every use must be audited (SPEC: secret_management is "high: audited"). */
const AUDITED: ReadonlySet<Permission> = new Set(['external_write', 'financial_action', 'secret_management']);

const strictness = (g: ApprovalGate) => APPROVAL_GATES.indexOf(g);

const zodType = z.custom<z.ZodType>((v) => v instanceof z.ZodType, 'expected a zod schema');

export const actionSchema = z.object({
  description: z.string().min(1),
  input: zodType,
  output: zodType,
  approvalGate: z.enum(APPROVAL_GATES),
  /** The permission level this action exercises; financial_action is refused unless the workspace enabled it. */
  permission: z.enum(PERMISSIONS),
  auditRequired: z.boolean(),
  /** Who may send it: agents and admins (unset), or admins only (e.g. deciding approvals). */
  invokedBy: z.array(z.enum(['agent', 'admin'])).min(1).readonly().optional(),
});

export const manifestSchema = z.object({
  // The id names its topics (ionflux.cmd.<id>, ionflux.<id>.ws_<ws>.*) and its worker gets write
  // ACLs on `ionflux.<id>.`: an id such as state, inbox, dlq or cmd would hand it the hub's own topics.
  id: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/).refine((id) => !isReservedSource(id), { message: 'reserved: cmd, agent, dlq, state, internal and inbox name the hub\'s own topics' }),
  name: z.string().min(1),
  category: z.enum(CATEGORIES),
  version: z.string().regex(/^\d+\.\d+\.\d+$/, 'semver'),
  authType: z.enum(AUTH_TYPES),
  permissionsRequested: z.array(z.enum(PERMISSIONS)).min(1),
  riskLevel: z.enum(['low', 'medium', 'high', 'critical']),
  /** Shown when credentials are missing: where to get them and how to connect. */
  authHelp: z.string().min(1),
  /** Credential fields the connector needs (e.g. ["api_key"]); a workspace's own values override the platform's. */
  credentialFields: z.array(z.string().regex(/^[a-z0-9_]+$/)).default([]),
  healthcheck: z.object({ description: z.string() }),
  disconnectPolicy: z.enum(['delete_credentials', 'revoke_and_delete', 'keep_credentials_disabled']),
  dataRetentionPolicy: z.string().min(1),
  actions: z.record(z.string().regex(/^[a-z0-9_.-]+$/), actionSchema).refine((a) => Object.keys(a).length > 0, 'at least one action'),
});

export type ActionManifest = z.infer<typeof actionSchema>;
export type Manifest = z.infer<typeof manifestSchema>;

/** Validates a manifest at load; the error names every problem. */
export function validateManifest(m: unknown): Manifest {
  const parsed = manifestSchema.safeParse(m);
  if (!parsed.success) throw new Error(`invalid connector manifest${(m as { id?: string })?.id ? ` ${(m as { id: string }).id}` : ''}: ${z.prettifyError(parsed.error)}`);
  const problems: string[] = [];
  for (const [name, action] of Object.entries(parsed.data.actions)) {
    if (!parsed.data.permissionsRequested.includes(action.permission)) problems.push(`action ${name} uses ${action.permission}, not in permissionsRequested`);
    const min = MIN_GATE[action.permission];
    if (strictness(action.approvalGate) < strictness(min)) problems.push(`action ${name}: a ${action.permission} action needs approvalGate ${min} or stricter, not ${action.approvalGate}`);
    if (AUDITED.has(action.permission) && !action.auditRequired) problems.push(`action ${name}: a ${action.permission} action must set auditRequired`);
  }
  if (problems.length) throw new Error(`invalid connector manifest ${parsed.data.id}: ${problems.join('; ')}`);
  return parsed.data;
}
