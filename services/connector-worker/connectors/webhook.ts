import { createHmac } from 'node:crypto';
import { postInput, spec, webhookSettingsSchema as settingsSchema } from '../../../shared/connectors/catalog/webhook.ts';
import { handler, retryAfterMs, VendorError, type Connector } from '../../../shared/connectors/types.ts';
import { ForbiddenDestination, outboundFetch } from '../../../shared/net/outbound.ts';

/**
 * The outbound webhook: POST a JSON body, signed the Standard Webhooks way with the workspace's
 * signing secret, to a URL the workspace registered. `webhook-id` is the command id, so a
 * receiver can dedupe too. The request goes through the outbound policy: a URL reaching loopback,
 * private or reserved addresses fails `forbidden_destination` at once (no retries) unless
 * OUTBOUND_ALLOWLIST names it.
 */
export const connector: Connector = {
  ...spec,
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
        res = await outboundFetch(ctx.params.url, {
          method: 'POST',
          body,
          signal: ctx.signal,
          redirect: 'manual',
          headers: { 'content-type': 'application/json', 'user-agent': 'ionflux-webhooks/1', 'webhook-id': ctx.idempotencyKey, 'webhook-timestamp': String(timestamp), 'webhook-signature': `v1,${signature}` },
        });
      } catch (e) {
        if (e instanceof ForbiddenDestination) throw e;
        throw new VendorError(503, `could not reach ${new URL(ctx.params.url).host}: ${(e as Error).message}`, { cause: e });
      }
      // The result reports only the status: the body is not read. Reading it whole let a receiver
      // that streams without end fill the worker's memory until the action's timeout.
      await res.body?.cancel().catch(() => undefined);
      if (!res.ok) throw new VendorError(res.status, `receiver answered ${res.status}`, { retryAfterMs: retryAfterMs(res.headers.get('retry-after')) });
      return { status: res.status, delivered_at: new Date().toISOString(), webhook_id: ctx.idempotencyKey };
    }),
  },
  preapproved: (_action, params, settings) => settingsSchema.parse(settings).preapproved.includes(String(params.url)),
  healthcheck: spec.healthcheck!,
};
