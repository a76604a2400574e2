import { createHmac } from 'node:crypto';
import { z } from 'zod';
import { handler, retryAfterMs, VendorError, type Connector } from '../../types.ts';

/** Workspace settings of this connector: the URLs it may post to, and those needing no approval. */
const settingsSchema = z.object({ urls: z.array(z.string()).default([]), preapproved: z.array(z.string()).default([]) });

const postInput = z.object({
  url: z.url({ protocol: /^https?$/ }),
  event_type: z.string().min(1).max(200).default('ionflux.webhook'),
  payload: z.record(z.string(), z.unknown()),
});
const postOutput = z.object({ status: z.number().int(), delivered_at: z.string(), webhook_id: z.string() });

/**
 * The outbound webhook: POST a JSON body, signed the Standard Webhooks way with the workspace's
 * signing secret, to a URL the workspace registered. `webhook-id` is the command id, so a
 * receiver can dedupe too.
 */
export const connector: Connector = {
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
  handlers: {
    post: handler(postInput, async (ctx) => {
      const settings = settingsSchema.parse(ctx.settings);
      if (!settings.urls.includes(ctx.params.url)) throw new VendorError(400, `${ctx.params.url} is not registered for this workspace`);
      const body = JSON.stringify({ type: ctx.params.event_type, workspace_id: ctx.workspaceId, data: ctx.params.payload });
      const timestamp = Math.floor(Date.now() / 1000);
      const key = Buffer.from(ctx.credentials.signing_secret!.replace(/^whsec_/, ''), 'base64');
      const signature = createHmac('sha256', key).update(`${ctx.idempotencyKey}.${timestamp}.${body}`).digest('base64');
      let res: Response;
      try {
        res = await fetch(ctx.params.url, {
          method: 'POST',
          body,
          signal: ctx.signal,
          redirect: 'manual',
          headers: { 'content-type': 'application/json', 'user-agent': 'ionflux-webhooks/1', 'webhook-id': ctx.idempotencyKey, 'webhook-timestamp': String(timestamp), 'webhook-signature': `v1,${signature}` },
        });
      } catch (e) {
        throw new VendorError(503, `could not reach ${new URL(ctx.params.url).host}: ${(e as Error).message}`, { cause: e });
      }
      await res.arrayBuffer().catch(() => undefined);
      if (!res.ok) throw new VendorError(res.status, `receiver answered ${res.status}`, { retryAfterMs: retryAfterMs(res.headers.get('retry-after')) });
      return { status: res.status, delivered_at: new Date().toISOString(), webhook_id: ctx.idempotencyKey };
    }),
  },
  preapproved: (_action, params, settings) => settingsSchema.parse(settings).preapproved.includes(String(params.url)),
  async healthcheck(credentials) {
    return credentials.signing_secret ? { ok: true } : { ok: false, detail: 'no signing secret' };
  },
};
