import { createHash } from 'node:crypto';
import type { Mailbox } from '../../../shared/connectors/catalog/email.ts';
import { retryAfterMs } from '../../../shared/connectors/types.ts';
import { redactString } from '../../../shared/redact.ts';
import type { OutgoingMessage, Personalization, Provider, SendResult } from './types.ts';

/** SendGrid v3 settings: the API base (a simulator in tests) and a per-request timeout. */
export interface SendgridSettings {
  baseUrl: string;
  timeoutMs: number;
}

const box = (m: Mailbox) => (typeof m === 'string' ? { email: m } : { email: m.email, ...(m.name ? { name: m.name } : {}) });

/** The content array: SendGrid requires text/plain before text/html. */
const contentOf = (m: { text?: string; html?: string }) => [...(m.text ? [{ type: 'text/plain', value: m.text }] : []), ...(m.html ? [{ type: 'text/html', value: m.html }] : [])];

/**
 * When to try again after a 429: Retry-After if given, else X-RateLimit-Reset (epoch seconds,
 * per SendGrid's rate-limit reference), else a second.
 */
export function throttleWaitMs(h: Headers, now = Date.now()): number {
  const after = retryAfterMs(h.get('retry-after'), now);
  if (after !== undefined) return after;
  const reset = Number(h.get('x-ratelimit-reset'));
  return Number.isFinite(reset) && reset > 0 ? Math.max(0, reset * 1000 - now) : 1000;
}

/**
 * SendGrid's limits on one personalization's substitutions (v3 mail/send reference): at most 100,
 * and at most 10,000 bytes in all. Past them it refuses the whole request (400).
 */
export const SUBSTITUTION_LIMITS = { count: 100, bytes: 10_000 };

/** Whether SendGrid takes these substitutions in one personalization (keys and values counted, UTF-8). */
export function fitsPersonalization(substitutions: Record<string, string>): boolean {
  const entries = Object.entries(substitutions);
  const bytes = entries.reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v), 0);
  return entries.length <= SUBSTITUTION_LIMITS.count && bytes <= SUBSTITUTION_LIMITS.bytes;
}

/** SendGrid's 401 body when the account is out of credits (`{"errors":[{"message":"Maximum credits exceeded"}]}`). */
const CREDITS_EXCEEDED = /Maximum credits exceeded/i;

async function errorText(res: Response): Promise<string> {
  const body = await res.text().catch(() => '');
  try {
    const errors = (JSON.parse(body) as { errors?: { message?: string; field?: string | null }[] }).errors ?? [];
    if (errors.length) return errors.map((e) => (e.field ? `${e.field}: ${e.message}` : String(e.message))).join('; ');
  } catch {
    // not JSON: fall through to the status line
  }
  return `SendGrid answered ${res.status}`;
}

/**
 * A request to SendGrid that got no answer. Refused, unresolvable or not connected in time (undici's
 * connect timeout): the request never left, so it is certainly not sent. A timeout or a reset once
 * connected: it may have been taken.
 */
function classifyFetchError(e: unknown): SendResult {
  const cause = (e as { cause?: { code?: string } }).cause?.code ?? '';
  const message = redactString(`could not reach SendGrid: ${(e as Error).message}${cause ? ` (${cause})` : ''}`);
  return /ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|UND_ERR_CONNECT_TIMEOUT/.test(cause) ? { ok: false, kind: 'not_sent', code: 'sendgrid_unreachable', message } : { ok: false, kind: 'ambiguous', code: 'sendgrid_no_answer', message };
}

/**
 * The personalizations of one message. SendGrid requires a `to` in each: with every `to` gone
 * (suppressed), the cc addresses, already shown to everyone, become the `to` (bcc stay bcc); with
 * only bcc left, each gets a copy of its own addressed to it, so none sees another.
 */
export function personalizationsOf(msg: Pick<OutgoingMessage, 'to' | 'cc' | 'bcc' | 'customArgs'>) {
  const [cc, bcc] = [msg.cc ?? [], msg.bcc ?? []];
  const hidden = bcc.length ? { bcc: bcc.map(box) } : {};
  if (msg.to.length) return [{ to: msg.to.map(box), ...(cc.length ? { cc: cc.map(box) } : {}), ...hidden, custom_args: msg.customArgs }];
  if (cc.length) return [{ to: cc.map(box), ...hidden, custom_args: msg.customArgs }];
  return bcc.map((b) => ({ to: [box(b)], custom_args: msg.customArgs }));
}

/** SendGrid's v3 `POST /v3/mail/send`; one call per message or per batch of personalizations. */
export function sendgridProvider(apiKey: string, s: SendgridSettings): Provider {
  const account = `sendgrid:${createHash('sha256').update(apiKey).digest('hex').slice(0, 16)}`;

  async function post(body: unknown, signal: AbortSignal): Promise<SendResult> {
    let res: Response;
    try {
      res = await fetch(`${s.baseUrl.replace(/\/$/, '')}/v3/mail/send`, {
        method: 'POST',
        headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.any([signal, AbortSignal.timeout(s.timeoutMs)]),
      });
    } catch (e) {
      return classifyFetchError(e);
    }
    if (res.status === 202 || res.status === 200) {
      await res.arrayBuffer().catch(() => undefined);
      return { ok: true, messageId: res.headers.get('x-message-id') ?? '', accepted: [], rejected: [] };
    }
    const message = redactString(await errorText(res)).slice(0, 500);
    const code = `sendgrid_${res.status}`;
    // SendGrid answers 401 also when the account has used up its credits: the key is fine, so the
    // connection is not to be re-authorized; nothing goes out until the credits renew or the plan grows.
    if (res.status === 401 && CREDITS_EXCEEDED.test(message)) return { ok: false, kind: 'rejected', code: 'sendgrid_credits_exceeded', message };
    if (res.status === 401) return { ok: false, kind: 'unauthorized', code, message };
    if (res.status === 429 || res.status >= 500) return { ok: false, kind: 'not_sent', code, message, status: res.status, retryAfterMs: res.status === 429 ? throttleWaitMs(res.headers) : retryAfterMs(res.headers.get('retry-after')) };
    return { ok: false, kind: 'rejected', code, message };
  }

  const base = (m: Omit<OutgoingMessage, 'to' | 'cc' | 'bcc' | 'customArgs'>) => ({
    from: box(m.from),
    ...(m.replyTo ? { reply_to: box(m.replyTo) } : {}),
    subject: m.subject,
    content: contentOf(m),
    ...(Object.keys(m.headers).length ? { headers: m.headers } : {}),
    ...(m.attachments.length ? { attachments: m.attachments.map((a) => ({ content: a.content.toString('base64'), filename: a.filename, type: a.contentType, disposition: 'attachment' })) } : {}),
  });

  return {
    name: 'sendgrid',
    account,
    async send(msg, signal) {
      const r = await post({ personalizations: personalizationsOf(msg), ...base(msg) }, signal);
      return r.ok ? { ...r, accepted: [...msg.to, ...(msg.cc ?? []), ...(msg.bcc ?? [])].map((m) => (typeof m === 'string' ? m : m.email).toLowerCase()) } : r;
    },
    async sendBatch(msg, recipients: Personalization[], signal) {
      const personalizations = recipients.map((p) => ({ to: [box(p.to)], substitutions: p.substitutions, headers: p.headers, custom_args: p.customArgs }));
      return post({ personalizations, ...base(msg) }, signal);
    },
  };
}
