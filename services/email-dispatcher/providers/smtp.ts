import { createHash } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import nodemailer from 'nodemailer';
import type { Mailbox } from '../../../shared/connectors/catalog/email.ts';
import type { AllowRule } from '../../../shared/net/allowlist.ts';
import { checkedAddress, FORBIDDEN_DESTINATION, type LookupAll } from '../../../shared/net/outbound.ts';
import { redactString, registerSecret } from '../../../shared/redact.ts';
import type { OutgoingMessage, Provider, SendResult } from './types.ts';

/** Pool and TLS settings of every SMTP transport (EMAIL_SMTP_* settings). */
export interface SmtpSettings {
  maxConnections: number;
  /** Refuse to send unless the server offers STARTTLS (smtp://); smtps:// is TLS from the start. */
  requireTls: boolean;
  rejectUnauthorized: boolean;
  timeoutMs: number;
}

export const toAddress = (m: Mailbox) => (typeof m === 'string' ? m : { name: m.name ?? '', address: m.email });

/**
 * For a workspace's own SMTP server: every pooled connection goes to an address checked against
 * the outbound policy just before (as outboundFetch does), never to what nodemailer resolves later.
 */
export interface SmtpGuard {
  /** The OUTBOUND_ALLOWLIST rules at connect time. */
  allow(): readonly AllowRule[];
  /** DNS resolution (tests substitute their own). */
  lookup?: LookupAll;
}

type SocketCallback = (err: Error | null, socketOptions?: { connection: Socket }) => void;

/**
 * nodemailer's getSocket: resolves the host, checks every answer (checkedAddress) and opens the
 * socket to the checked address itself, so a DNS answer that changes after the check (rebinding)
 * reaches nothing. nodemailer keeps the host name for TLS (SNI, certificate) and EHLO.
 */
export function guardedSocket(guard: SmtpGuard, timeoutMs: number) {
  return (options: { host?: string; port?: number | string; secure?: boolean }, callback: SocketCallback) => {
    let done = false;
    const once: SocketCallback = (err, socketOptions) => void (done || ((done = true), callback(err, socketOptions)));
    const port = Number(options.port) || (options.secure ? 465 : 587);
    checkedAddress(options.host ?? 'localhost', port, { allow: guard.allow(), lookup: guard.lookup }).then(({ address }) => {
      const socket = connect({ host: address, port });
      const failed = (e: Error) => (clearTimeout(timer), once(e));
      const timer = setTimeout(() => (socket.destroy(), once(Object.assign(new Error('Connection timeout'), { code: 'ETIMEDOUT', timeoutType: 'CONNECT_TIMEOUT' }))), timeoutMs);
      socket.once('error', failed);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', failed);
        once(null, { connection: socket });
      });
    }, (e: Error) => once(e));
  };
}

/** nodemailer's error fields we classify on. */
type SmtpError = Error & { code?: string; responseCode?: number; command?: string; rejected?: string[]; timeoutType?: string };

/**
 * nodemailer's timeouts (all ETIMEDOUT) of the phases before any command: connecting, waiting for
 * the greeting, the TLS handshake. The message was not handed over; SOCKET_TIMEOUT (later) may have.
 */
const SETUP_TIMEOUTS = new Set(['CONNECT_TIMEOUT', 'GREETING_TIMEOUT', 'UPGRADE_TIMEOUT']);

const isTemporary = (replyCode: number | undefined) => typeof replyCode === 'number' && replyCode >= 400 && replyCode < 500;

/**
 * nodemailer's pool gives a message back to its queue, unsent, when its connection closes before
 * the greeting, or when a reused connection fails transiently (a 421, a reset) before a byte of the
 * message was read; after `maxRequeues` (5) such closes it fails with this, without the server's
 * reply. Seen when a relay answers 421 to one recipient while the pool's other connections serve:
 * each try lands on a reused connection. Nothing was handed over. A close of the pool by us (at
 * shutdown) fails a message in flight with the same text: that one may have been taken.
 */
const REQUEUES_SPENT = /Reached maximum number of retries after connection was closed/;

/**
 * Whether the server could have taken the message. A reply code means the server answered (and
 * refused); a failure to connect, resolve, greet, secure or log in happens before any message is
 * handed over. Anything else (a socket that broke or timed out mid-transaction) is ambiguous.
 */
export function classifySmtpError(e: SmtpError, o: { poolClosed?: boolean } = {}): SendResult {
  const message = redactString(e.message).slice(0, 300);
  if (e.code === 'ECONNECTION' && REQUEUES_SPENT.test(e.message) && !o.poolClosed) {
    return { ok: false, kind: 'not_sent', code: 'smtp_connection_closed', message: `the SMTP server closed the connection before the message was sent, on every try (${message})`, closing: true };
  }
  // The guard refused the address the host resolves to now: nothing was sent, nor will be.
  if (e.code === FORBIDDEN_DESTINATION) return { ok: false, kind: 'rejected', code: 'smtp_host_forbidden', message };
  if (e.code === 'dns_no_answer') return { ok: false, kind: 'not_sent', code: 'smtp_edns', message };
  // A 4xx reply to AUTH is temporary (454 4.7.0; SendGrid's relay answers 451 "Authentication
  // failed: Maximum credits exceeded"): the account is fine, the message was not taken.
  if (e.code === 'EAUTH' && !isTemporary(e.responseCode)) return { ok: false, kind: 'unauthorized', code: 'smtp_auth_failed', message };
  if (typeof e.responseCode === 'number') {
    const code = `smtp_${e.responseCode}`;
    if (e.responseCode >= 500) return { ok: false, kind: 'rejected', code, message };
    // RFC 5321 3.8: 421 is the server closing the channel, whatever the command (nodemailer closes
    // the connection); another 4xx to RCPT TO is about that recipient (a greylisted or full mailbox).
    if (e.responseCode === 421) return { ok: false, kind: 'not_sent', code, message, closing: true };
    return { ok: false, kind: 'not_sent', code, message, ...(e.command === 'RCPT TO' ? { recipient: true } : {}) };
  }
  const beforeHandover = ['EDNS', 'ETLS', 'ECONNREFUSED'].includes(e.code ?? '') || SETUP_TIMEOUTS.has(e.timeoutType ?? '') || /ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|Greeting never received/i.test(e.message) || e.code === 'EENVELOPE';
  if (beforeHandover) return { ok: false, kind: 'not_sent', code: `smtp_${(e.code ?? 'error').toLowerCase()}`, message };
  return { ok: false, kind: 'ambiguous', code: `smtp_${(e.code ?? 'error').toLowerCase()}`, message };
}

const transports = new Map<string, ReturnType<typeof nodemailer.createTransport>>();
/** Transports closed by closeSmtpTransports: what they fail may have been in flight. */
const closed = new WeakSet<object>();

/**
 * A pooled nodemailer transport per SMTP URL (kept for the process: connections are reused); with
 * a guard (a workspace's own server), each connection goes to a checked address (guardedSocket).
 */
export function smtpProvider(url: string, s: SmtpSettings, guard?: SmtpGuard): Provider {
  const account = `smtp:${createHash('sha256').update(url).digest('hex').slice(0, 16)}`;
  const cacheKey = guard ? `${account}:guarded` : account;
  let transport = transports.get(cacheKey);
  if (!transport) {
    // The password alone may show up in an error text; the whole URL is registered by the store.
    registerSecret(URL.canParse(url) ? decodeURIComponent(new URL(url).password) : undefined);
    transport = nodemailer.createTransport({
      url,
      pool: true,
      maxConnections: s.maxConnections,
      maxMessages: Infinity,
      requireTLS: s.requireTls,
      tls: { rejectUnauthorized: s.rejectUnauthorized },
      connectionTimeout: s.timeoutMs,
      greetingTimeout: s.timeoutMs,
      socketTimeout: s.timeoutMs,
      ...(guard ? { getSocket: guardedSocket(guard, s.timeoutMs) } : {}),
    });
    transports.set(cacheKey, transport);
  }
  const t = transport;
  return {
    name: 'smtp',
    account,
    async send(msg: OutgoingMessage): Promise<SendResult> {
      try {
        const info = (await t.sendMail({
          from: toAddress(msg.from),
          to: msg.to.map(toAddress),
          cc: msg.cc?.map(toAddress),
          bcc: msg.bcc?.map(toAddress),
          replyTo: msg.replyTo ? toAddress(msg.replyTo) : undefined,
          subject: msg.subject,
          text: msg.text,
          html: msg.html,
          headers: msg.headers,
          messageId: msg.messageId,
          attachments: msg.attachments.map((a) => ({ filename: a.filename, content: a.content, contentType: a.contentType })),
        })) as { accepted?: (string | { address: string })[]; rejected?: (string | { address: string })[] };
        const plain = (l?: (string | { address: string })[]) => (l ?? []).map((a) => (typeof a === 'string' ? a : a.address).toLowerCase());
        return { ok: true, messageId: msg.messageId, accepted: plain(info.accepted), rejected: plain(info.rejected) };
      } catch (e) {
        return classifySmtpError(e as SmtpError, { poolClosed: closed.has(t) });
      }
    },
  };
}

/** Closes every pooled connection (shutdown). */
export function closeSmtpTransports(): void {
  for (const t of transports.values()) (closed.add(t), t.close());
  transports.clear();
}
