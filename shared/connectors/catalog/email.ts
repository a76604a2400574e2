import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { Manifest } from '../manifest.ts';
import type { ConnectorSpec } from '../types.ts';

/**
 * The email connector's contract, readable by any process (CLI, registry, other workers): the
 * manifest, the zod schemas of `send` and `send_bulk`, and the template digest that pre-approval
 * checks. The behaviour lives in services/email-dispatcher.
 */

/** Most recipients one `send_bulk` command may carry; keeps a command well under Kafka's record limit. */
export const MAX_BULK_RECIPIENTS = 1000;
/** Serialized params of one command at most (the broker takes 1 MiB records by default). */
export const MAX_PARAMS_BYTES = 512 * 1024;
/** Inline attachment bytes at most; anything larger goes by URL or stored artifact. */
export const MAX_INLINE_ATTACHMENT_BYTES = 64 * 1024;

const noNewline = (what: string) => z.string().refine((s) => !/[\r\n]/.test(s), `${what} must not contain line breaks`);
const email = z.email().max(320);
/** `a@b.c` or `{ email, name }`. */
export const mailbox = z.union([email, z.object({ email, name: noNewline('name').pipe(z.string().max(200)).optional() })]);
export type Mailbox = z.infer<typeof mailbox>;
export const addressOf = (m: Mailbox) => (typeof m === 'string' ? m : m.email).toLowerCase();

// Headers the dispatcher sets itself; a caller may add others (X-*, Precedence, ...).
const RESERVED_HEADERS = new Set(['from', 'to', 'cc', 'bcc', 'subject', 'reply-to', 'sender', 'date', 'message-id', 'content-type', 'content-transfer-encoding', 'mime-version', 'list-unsubscribe', 'list-unsubscribe-post']);
const headers = z
  .record(z.string().regex(/^[A-Za-z0-9-]{1,76}$/, 'header names are letters, digits and -'), noNewline('header values').pipe(z.string().max(998)))
  .refine((h) => Object.keys(h).length <= 20, 'at most 20 headers')
  .refine((h) => Object.keys(h).every((k) => !RESERVED_HEADERS.has(k.toLowerCase())), `these headers are set by the dispatcher: ${[...RESERVED_HEADERS].join(', ')}`);

/** By reference (an http(s) URL, e.g. a stored artifact of the LLM orchestrator) or small inline bytes. */
const attachment = z.union([
  z.object({ filename: noNewline('filename').pipe(z.string().min(1).max(255)), url: z.url({ protocol: /^https?$/ }), content_type: z.string().max(100).optional() }),
  z.object({
    filename: noNewline('filename').pipe(z.string().min(1).max(255)),
    content_base64: z.base64().refine((s) => Math.floor((s.length * 3) / 4) <= MAX_INLINE_ATTACHMENT_BYTES, `inline attachments are at most ${MAX_INLINE_ATTACHMENT_BYTES} bytes; pass a url instead`),
    content_type: z.string().max(100).optional(),
  }),
]);

/**
 * Proof that the dispatcher's HTTP API accepted this command with the platform token: an HMAC
 * over the command id, workspace, expiry and params, keyed by a secret only the dispatcher reads.
 */
export const platformSeal = z.object({ command_id: z.string(), workspace_id: z.string(), expires_at: z.number().int(), mac: z.string().regex(/^[a-f0-9]{64}$/) });

const content = {
  subject: noNewline('subject').pipe(z.string().min(1).max(998)),
  text: z.string().max(200_000).optional(),
  html: z.string().max(500_000).optional(),
};
const hasBody = (p: { text?: string; html?: string }) => Boolean(p.text || p.html);
const common = {
  from: mailbox.optional(),
  reply_to: mailbox.optional(),
  headers: headers.optional(),
  attachments: z.array(attachment).max(10).optional(),
  platform_seal: platformSeal.optional(),
};
const fitsRecord = (p: unknown) => Buffer.byteLength(JSON.stringify(p)) <= MAX_PARAMS_BYTES;

export const sendInput = z
  .object({
    ...common,
    to: z.array(mailbox).min(1).max(50),
    cc: z.array(mailbox).max(50).optional(),
    bcc: z.array(mailbox).max(50).optional(),
    ...content,
    /** Names a workspace-approved template whose subject/text/html this message carries verbatim; pre-approved only with nothing but that template and its recipients (services/email-dispatcher/connector.ts). */
    template_id: z.string().regex(/^[A-Za-z0-9_.-]{1,100}$/).optional(),
  })
  .refine(hasBody, { message: 'text or html is required', path: ['text'] })
  .refine(fitsRecord, `params larger than ${MAX_PARAMS_BYTES} bytes; send attachments by url`);

export const templateSchema = z.object({ id: z.string().regex(/^[A-Za-z0-9_.-]{1,100}$/), ...content }).refine(hasBody, { message: 'text or html is required', path: ['text'] });
export type EmailTemplate = z.infer<typeof templateSchema>;

const mergeValue = z.union([z.string().max(2000), z.number(), z.boolean()]);
const recipient = z.object({
  email,
  name: noNewline('name').pipe(z.string().max(200)).optional(),
  /** `{{field}}` in the template's subject, text and html; `{{unsubscribe_url}}` is always there. */
  merge: z.record(z.string().regex(/^[A-Za-z0-9_]{1,50}$/), mergeValue).refine((m) => Object.keys(m).length <= 50, 'at most 50 merge fields').optional(),
});

export const sendBulkInput = z
  .object({ ...common, template: templateSchema, recipients: z.array(recipient).min(1).max(MAX_BULK_RECIPIENTS) })
  .superRefine((p, ctx) => {
    const seen = new Set<string>();
    p.recipients.forEach((r, i) => {
      const a = r.email.toLowerCase();
      if (seen.has(a)) ctx.addIssue({ code: 'custom', path: ['recipients', i, 'email'], message: `${a} appears twice; each recipient once per command` });
      seen.add(a);
    });
    if (!fitsRecord(p)) ctx.addIssue({ code: 'custom', path: [], message: `params larger than ${MAX_PARAMS_BYTES} bytes; fewer recipients or smaller merge fields per command` });
  });

const suppressed = z.object({ email: z.string(), reason: z.string() });
export const sendOutput = z.object({
  status: z.enum(['sent', 'suppressed', 'unknown']),
  provider: z.enum(['smtp', 'sendgrid']),
  /** The provider's id (SendGrid X-Message-Id; SMTP: the Message-ID the dispatcher set). */
  message_id: z.string().optional(),
  accepted: z.array(z.string()),
  rejected: z.array(z.string()),
  suppressed: z.array(suppressed),
});

export const sendBulkOutput = z.object({
  provider: z.enum(['smtp', 'sendgrid']),
  total: z.number().int(),
  sent: z.array(z.object({ email: z.string(), message_id: z.string() })),
  suppressed: z.array(suppressed),
  /**
   * `retry_safe`: true when the provider certainly took nothing for this recipient (never handed
   * over, or refused temporarily), so a re-send mails it once; false when refused for good.
   */
  failed: z.array(z.object({ email: z.string(), code: z.string(), message: z.string(), retry_safe: z.boolean() })),
  /** The dispatcher stopped between handing these to the provider and hearing back: not sent again (never retry_safe). */
  unknown: z.array(z.object({ email: z.string(), message_id: z.string().optional(), retry_safe: z.literal(false) })),
});

/** What pre-approval compares: a digest of the content people read, so an edited template needs a new approval. */
export function templateDigest(t: { subject: string; text?: string; html?: string }): string {
  return createHash('sha256').update(JSON.stringify([t.subject, t.text ?? null, t.html ?? null])).digest('hex');
}

/** Workspace settings of the email connector (ionflux.state.workspace-connectors, key `<ws>:email`). */
export const emailSettingsSchema = z.object({
  approved_templates: z.record(z.string(), z.object({ digest: z.string(), approved_at: z.string(), approved_by: z.string() })).default({}),
});

const external = (description: string, input: z.ZodType, output: z.ZodType) => ({ description, input, output, approvalGate: 'external_write', permission: 'external_write', auditRequired: true }) as const;

export const manifest: Manifest = {
  id: 'email',
  name: 'Email dispatcher',
  category: 'communication',
  version: '1.0.0',
  authType: 'api_key',
  permissionsRequested: ['external_write'],
  riskLevel: 'high',
  authHelp:
    'The platform account comes from EMAIL_PROVIDER with EMAIL_SMTP_URL or SENDGRID_API_KEY, and EMAIL_FROM (or platform/email in the secret store). A workspace uses its own with `ionflux connect email --workspace <ws>`: provider (smtp or sendgrid), credential (an smtp:// or smtps:// URL with user and password, or a SendGrid API key) and from (a verified sender). See docs/email.md.',
  credentialFields: ['provider', 'credential', 'from'],
  healthcheck: { description: 'SMTP: connects, STARTTLS or TLS, logs in (no message sent). SendGrid: GET /v3/scopes answers and includes mail.send.' },
  disconnectPolicy: 'delete_credentials',
  dataRetentionPolicy:
    'Message content exists only in the command and outcome records; per-recipient send records (address, state, provider message id) are kept 7 days in ionflux.state.email-units; suppressed addresses are kept until removed.',
  actions: {
    send: external('One message to up to 50 to/cc/bcc recipients, text and/or html, attachments by URL.', sendInput, sendOutput),
    send_bulk: external(`A template with per-recipient merge fields to up to ${MAX_BULK_RECIPIENTS} recipients, each sent at most once, with List-Unsubscribe.`, sendBulkInput, sendBulkOutput),
  },
};

/** Catalog entry: manifest, extra events (none), and the healthcheck `ionflux connect email` runs. */
export const spec: ConnectorSpec = {
  manifest,
  events: {},
  /** Loaded on first use so reading the catalog does not load nodemailer. */
  async healthcheck(credentials: Record<string, string>, signal: AbortSignal): Promise<{ ok: boolean; detail?: string }> {
    const { checkProvider } = await import('../../../services/email-dispatcher/providers/healthcheck.ts');
    return checkProvider(credentials, signal);
  },
};
