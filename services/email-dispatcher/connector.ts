import { emailSettingsSchema, manifest, sendBulkInput, sendInput, spec, templateDigest } from '../../shared/connectors/catalog/email.ts';
import type { Connector } from '../../shared/connectors/types.ts';
import { sendBulk } from './actions/send-bulk.ts';
import { send } from './actions/send.ts';
import type { EmailDeps } from './deps.ts';

/**
 * Sending to people is an external write. Released without an admin: a platform notification
 * sealed by the HTTP API, or content the workspace approved in advance (a template whose digest
 * of subject, text and html is in its settings, `ionflux email templates approve`).
 */
export function isPreapproved(d: Pick<EmailDeps, 'sealer'>, action: string, params: Record<string, unknown>, settings: Record<string, unknown>): boolean {
  if (params.platform_seal !== undefined && d.sealer.verify(params)) return true;
  const approved = emailSettingsSchema.safeParse(settings).data?.approved_templates ?? {};
  if (action === 'send_bulk') {
    const p = sendBulkInput.safeParse(params);
    return p.success && approved[p.data.template.id]?.digest === templateDigest(p.data.template);
  }
  if (action === 'send') {
    const p = sendInput.safeParse(params);
    return p.success && p.data.template_id !== undefined && approved[p.data.template_id]?.digest === templateDigest(p.data);
  }
  return false;
}

/** The email connector served by services/email-dispatcher. */
export function createEmailConnector(d: EmailDeps): Connector {
  return {
    manifest,
    events: spec.events,
    handlers: { send: send(d), send_bulk: sendBulk(d) },
    // Both keep a ledger of units: a command found started after a crash runs again and sends only what was not handed over.
    resumable: new Set(['send', 'send_bulk']),
    preapproved: (action, params, settings) => isPreapproved(d, action, params, settings),
    healthcheck: (credentials, signal) => spec.healthcheck!(credentials, signal),
  };
}
