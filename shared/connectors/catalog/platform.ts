import { z } from 'zod';
import type { ConnectorSpec } from '../types.ts';

export const decisionInput = z.object({ approval_id: z.string().min(1).max(200), reason: z.string().max(500).optional() });
export const decisionOutput = z.object({ approval_id: z.string(), status: z.enum(['approved', 'denied']) });

const decide = (description: string) =>
  ({ description, input: decisionInput, output: decisionOutput, approvalGate: 'workspace_write', permission: 'write_draft', auditRequired: true, invokedBy: ['admin'] }) as const;

/**
 * `ionflux.cmd.platform`: decisions on approvals. Only an admin principal may decide (agents never
 * approve): the broker lets only the admin and the services write this topic, and whatever comes
 * on a workspace's command topic is an agent's and refused (docs/security.md).
 */
export const spec: ConnectorSpec = {
  manifest: {
    id: 'platform',
    name: 'Platform',
    category: 'developer',
    version: '1.0.0',
    authType: 'local',
    permissionsRequested: ['write_draft'],
    riskLevel: 'high',
    authHelp: 'Approvals are decided by an admin: `ionflux approvals approve|deny <id>`.',
    credentialFields: [],
    healthcheck: { description: 'Nothing to check: the platform needs no credentials.' },
    disconnectPolicy: 'keep_credentials_disabled',
    dataRetentionPolicy: 'Decisions are kept in ionflux.state.approvals and ionflux.platform.audit.',
    actions: {
      'approvals.approve': decide('Approves a pending external write: releases exactly the command the admin saw.'),
      'approvals.deny': decide('Denies a pending external write; its command is answered approval_denied.'),
    },
  },
};
