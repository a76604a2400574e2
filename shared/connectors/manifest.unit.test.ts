import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { catalog } from './catalog/index.ts';
import { APPROVAL_GATES, MIN_GATE, PERMISSIONS, validateManifest, type ApprovalGate, type Permission } from './manifest.ts';

const manifest = (permission: Permission, approvalGate: ApprovalGate, auditRequired = true) => ({
  id: 'demo', name: 'Demo', category: 'developer', version: '1.0.0', authType: 'local', permissionsRequested: [permission], riskLevel: 'high',
  authHelp: 'nothing', healthcheck: { description: 'ok' }, disconnectPolicy: 'delete_credentials', dataRetentionPolicy: 'none',
  actions: { act: { description: 'd', input: z.object({}), output: z.object({}), approvalGate, permission, auditRequired } },
});

describe('validateManifest: an approval gate at least as strict as the permission', () => {
  it('refuses a read_only gate on a financial or external-write action, naming the gate it needs', () => {
    expect(() => validateManifest(manifest('financial_action', 'read_only'))).toThrow(/financial_action action needs approvalGate external_write or stricter, not read_only/);
    expect(() => validateManifest(manifest('external_write', 'read_only'))).toThrow(/external_write action needs approvalGate external_write/);
    expect(() => validateManifest(manifest('external_write', 'workspace_write'))).toThrow(/needs approvalGate external_write/);
    expect(() => validateManifest(manifest('financial_action', 'workspace_write'))).toThrow(/needs approvalGate external_write/);
    expect(() => validateManifest(manifest('write_draft', 'read_only'))).toThrow(/needs approvalGate artifact_generation/);
    expect(() => validateManifest(manifest('secret_management', 'artifact_generation'))).toThrow(/needs approvalGate workspace_write/);
  });

  it('accepts every gate from the minimum up, and refuses every gate below it', () => {
    for (const p of PERMISSIONS) {
      const min = APPROVAL_GATES.indexOf(MIN_GATE[p]);
      APPROVAL_GATES.forEach((g, i) => {
        if (i >= min) expect(() => validateManifest(manifest(p, g)), `${p} with ${g}`).not.toThrow();
        else expect(() => validateManifest(manifest(p, g)), `${p} with ${g}`).toThrow(/needs approvalGate/);
      });
    }
  });

  it('requires auditing of external writes, financial actions and secret management', () => {
    for (const p of ['external_write', 'financial_action', 'secret_management'] as const) expect(() => validateManifest(manifest(p, 'blocked_by_default', false))).toThrow(/must set auditRequired/);
    expect(() => validateManifest(manifest('read', 'read_only', false))).not.toThrow();
  });

  it('the built-in catalog passes', () => {
    expect(catalog.size).toBeGreaterThan(0);
  });

  it('refuses ids that name the hub\'s own topics (ionflux.state., .inbox., .dlq., ...): the worker would get write ACLs on them', () => {
    for (const id of ['state', 'inbox', 'dlq', 'cmd', 'agent', 'internal']) expect(() => validateManifest({ ...manifest('read', 'read_only'), id }), id).toThrow(/reserved/);
    expect(validateManifest({ ...manifest('read', 'read_only'), id: 'states' }).id).toBe('states');
  });
});
