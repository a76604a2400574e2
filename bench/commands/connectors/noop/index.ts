// The benchmark's connector: one read-only action that returns its input. Loaded by the worker
// through EXTRA_CONNECTORS_DIR=bench/commands/connectors (bench/commands/run.sh), so what is
// measured is the hub's command path and nothing a vendor does.
import { z } from 'zod';
import type { Connector } from '../../../../shared/connectors/types.ts';

export const connector: Connector = {
  manifest: {
    id: 'noop',
    name: 'No-op (benchmark)',
    category: 'developer',
    version: '0.1.0',
    authType: 'local',
    permissionsRequested: ['read'],
    riskLevel: 'low',
    authHelp: 'nothing to connect',
    credentialFields: [],
    healthcheck: { description: 'always ok' },
    disconnectPolicy: 'delete_credentials',
    dataRetentionPolicy: 'none',
    actions: {
      noop: {
        description: 'Returns its input unchanged.',
        input: z.object({ n: z.number() }),
        output: z.object({ n: z.number() }),
        approvalGate: 'read_only',
        permission: 'read',
        auditRequired: false,
      },
    },
  },
  handlers: { noop: async (ctx) => ctx.params },
  healthcheck: async () => ({ ok: true }),
};
