import { z } from 'zod';
import type { ConnectorSpec } from '../types.ts';

/** Workspace settings of this connector: the URLs it may post to, and those needing no approval. */
export const webhookSettingsSchema = z.object({ urls: z.array(z.string()).default([]), preapproved: z.array(z.string()).default([]) });

export const postInput = z.object({
  url: z.url({ protocol: /^https?$/ }),
  event_type: z.string().min(1).max(200).default('ionflux.webhook'),
  payload: z.record(z.string(), z.unknown()),
});
export const postOutput = z.object({ status: z.number().int(), delivered_at: z.string(), webhook_id: z.string() });

/** The outbound webhook's contract; its handler runs in services/connector-worker/connectors/webhook.ts. */
export const spec: ConnectorSpec = {
  manifest: {
    id: 'webhook',
    name: 'Outbound webhook',
    category: 'automation',
    version: '1.0.0',
    authType: 'webhook_secret',
    permissionsRequested: ['external_write'],
    riskLevel: 'high',
    authHelp: 'Run `ionflux connect webhook --workspace <id>` to create the signing secret, then `ionflux webhooks add-url --workspace <id> <url>` to register where it may post.',
    credentialFields: ['signing_secret'],
    healthcheck: { description: 'A signing secret exists for the workspace.' },
    disconnectPolicy: 'delete_credentials',
    dataRetentionPolicy: 'Keeps nothing; the posted body exists only in the command and outcome records.',
    actions: {
      post: {
        description: 'POST a signed JSON body to a registered URL.',
        input: postInput,
        output: postOutput,
        approvalGate: 'external_write',
        permission: 'external_write',
        auditRequired: true,
      },
    },
  },
  async healthcheck(credentials) {
    return credentials.signing_secret ? { ok: true } : { ok: false, detail: 'no signing secret' };
  },
};
