import { createHash } from 'node:crypto';
import { addressOf, type Mailbox } from '../../shared/connectors/catalog/email.ts';
import { HubError } from '../../shared/errors.ts';

/** The custom arg the ingester reads the workspace from (services/webhook-ingester/vendors/sendgrid.ts). */
export const WORKSPACE_ARG = 'ionflux_workspace';

/** `Name <a@b>` or `a@b`, as the `from` credential field holds it. */
export function parseMailbox(s: string): Mailbox {
  const m = /^\s*(.*?)\s*<([^<>\s]+@[^<>\s]+)>\s*$/.exec(s);
  if (m) return m[1] ? { email: m[2]!, name: m[1].replace(/^"|"$/g, '') } : m[2]!;
  return s.trim();
}

const domainOf = (m: Mailbox) => addressOf(m).split('@')[1] ?? 'ionflux.local';

/**
 * The sender: the account's `from`, or the command's if it is on the same domain. A workspace may
 * pick its sender name and mailbox, not send as another domain through the account.
 */
export function senderFor(accountFrom: string, requested: Mailbox | undefined): Mailbox {
  const account = parseMailbox(accountFrom);
  if (!requested) return account;
  if (domainOf(requested) !== domainOf(account)) throw new HubError('invalid_from', `from must be an address at ${domainOf(account)}, the sending account's domain`);
  return requested;
}

/** A Message-ID fixed by (workspace, command, unit): the same unit always carries the same id. */
export function messageIdFor(workspaceId: string, commandId: string, unit: string, from: Mailbox): string {
  return `<${createHash('sha256').update(`${workspaceId}:${commandId}:${unit}`).digest('hex').slice(0, 32)}@${domainOf(from)}>`;
}

/** SendGrid custom_args (strings only): delivery events carry them back. */
export const customArgs = (workspaceId: string, commandId: string, recipient?: string): Record<string, string> => ({
  [WORKSPACE_ARG]: workspaceId,
  ionflux_command: commandId,
  ...(recipient ? { ionflux_recipient: recipient } : {}),
});

/** RFC 8058 one-click unsubscribe headers. */
export const unsubscribeHeaders = (url: string): Record<string, string> => ({ 'List-Unsubscribe': `<${url}>`, 'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click' });
