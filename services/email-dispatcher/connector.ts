import { emailSettingsSchema, manifest, sendBulkInput, sendInput, spec, templateDigest } from '../../shared/connectors/catalog/email.ts';
import type { Connector } from '../../shared/connectors/types.ts';
import { sendBulk } from './actions/send-bulk.ts';
import { send } from './actions/send.ts';
import type { EmailDeps } from './deps.ts';

/**
 * The fields a template-approved command may carry, by action: the template itself (its id, and
 * subject/text/html equal to the approved digest) and its recipients (`send`: `to`; `send_bulk`:
 * `recipients` with their name and merge fields). Every other field of the schema (`from`,
 * `reply_to`, `headers`, `attachments`, `cc`, `bcc`, `platform_seal`, and any field added later)
 * is content or recipients the admin never saw, so it must be absent or empty.
 */
const TEMPLATE_FIELDS: Record<string, ReadonlySet<string>> = {
  send: new Set(['template_id', 'subject', 'text', 'html', 'to']),
  send_bulk: new Set(['template', 'recipients']),
};

/** True when `v` adds nothing to a message: undefined, [] or {}. */
const empty = (v: unknown) => v === undefined || (Array.isArray(v) ? v.length === 0 : typeof v === 'object' && v !== null && Object.keys(v).length === 0);

/** The parsed params of `action` carry nothing beyond its TEMPLATE_FIELDS. */
const onlyTemplate = (action: string, p: Record<string, unknown>) => Object.entries(p).every(([k, v]) => TEMPLATE_FIELDS[action]!.has(k) || empty(v));

/**
 * Sending to people is an external write. Released without an admin: a platform notification
 * sealed by the HTTP API, or content the workspace approved in advance (a template whose digest
 * of subject, text and html is in its settings, `ionflux email templates approve`) sent with
 * nothing but that template and its recipients (TEMPLATE_FIELDS).
 */
export function isPreapproved(d: Pick<EmailDeps, 'sealer'>, action: string, params: Record<string, unknown>, settings: Record<string, unknown>): boolean {
  if (params.platform_seal !== undefined && d.sealer.verify(params)) return true;
  const approved = emailSettingsSchema.safeParse(settings).data?.approved_templates ?? {};
  if (action === 'send_bulk') {
    const p = sendBulkInput.safeParse(params);
    return p.success && onlyTemplate(action, p.data) && approved[p.data.template.id]?.digest === templateDigest(p.data.template);
  }
  if (action === 'send') {
    const p = sendInput.safeParse(params);
    return p.success && onlyTemplate(action, p.data) && p.data.template_id !== undefined && approved[p.data.template_id]?.digest === templateDigest(p.data);
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
