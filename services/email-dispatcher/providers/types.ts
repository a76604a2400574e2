import type { Mailbox } from '../../../shared/connectors/catalog/email.ts';

/** An attachment with its bytes, fetched once per command. */
export interface ResolvedAttachment {
  filename: string;
  contentType: string;
  content: Buffer;
}

/** One message as a provider sends it; the handler has rendered templates and set every header. */
export interface OutgoingMessage {
  from: Mailbox;
  to: Mailbox[];
  cc?: Mailbox[];
  bcc?: Mailbox[];
  replyTo?: Mailbox;
  subject: string;
  text?: string;
  html?: string;
  headers: Record<string, string>;
  attachments: ResolvedAttachment[];
  /** Our Message-ID (`<...@domain>`): the id an SMTP send is known by. */
  messageId: string;
  /** SendGrid custom_args (workspace, command, recipient), so delivery events correlate back. */
  customArgs: Record<string, string>;
}

/**
 * How one provider call ended, as a value. The difference that matters is whether the provider may
 * have taken the message: `not_sent` and `rejected` are certain it did not, `ambiguous` is not.
 */
export type SendResult =
  | { ok: true; messageId: string; accepted: string[]; rejected: string[] }
  /** Refused for good (bad address, 5xx reply, 400): do not retry this message. */
  | { ok: false; kind: 'rejected'; code: string; message: string }
  /**
   * Not taken, worth retrying later (4xx, 429, 5xx, no connection). `recipient`: the refusal was
   * of this recipient (an SMTP 4xx to RCPT TO), the server itself is serving; `closing`: the server
   * closed the channel (SMTP 421), so the account backs off, not only this message.
   */
  | { ok: false; kind: 'not_sent'; code: string; message: string; status?: number; retryAfterMs?: number; recipient?: boolean; closing?: boolean }
  /** The credentials were refused: no message of this account goes out until re-connected. */
  | { ok: false; kind: 'unauthorized'; code: string; message: string }
  /** The connection broke after the message was handed over: it may have gone out. */
  | { ok: false; kind: 'ambiguous'; code: string; message: string };

/** One personalization of a SendGrid batch: one recipient with its own values. */
export interface Personalization {
  to: Mailbox;
  substitutions: Record<string, string>;
  headers: Record<string, string>;
  customArgs: Record<string, string>;
}

export interface Provider {
  readonly name: 'smtp' | 'sendgrid';
  /** Identifies the account (for rate limits and throttling), never the credential itself. */
  readonly account: string;
  send(msg: OutgoingMessage, signal: AbortSignal): Promise<SendResult>;
  /** Providers that take many recipients with their own values in one request (SendGrid personalizations). */
  sendBatch?(base: Omit<OutgoingMessage, 'to' | 'cc' | 'bcc' | 'customArgs'>, recipients: Personalization[], signal: AbortSignal): Promise<SendResult>;
}
