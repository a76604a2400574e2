import { checkedAddress, outboundAllowlist } from '../../shared/net/outbound.ts';

/** The port an smtp:// or smtps:// URL connects to, as nodemailer picks it (587, or 465 for smtps). */
export const smtpPortOf = (url: URL) => Number(url.port) || (url.protocol === 'smtps:' ? 465 : 587);

/**
 * Null when `hostname` resolves only to addresses the hub's outbound policy allows (or private ones
 * are allowed here), else why not, for a connection to `port` (an allowlist rule may name one).
 * Checks the SMTP server a workspace chooses before a command sends anything; its transport then
 * checks each connection again (providers/smtp.ts, guardedSocket); HTTP fetches go through outboundFetch.
 */
export async function checkHost(hostname: string, allowPrivate: boolean, port: number): Promise<string | null> {
  if (allowPrivate) return null;
  try {
    await checkedAddress(hostname, port, { allow: outboundAllowlist() });
    return null;
  } catch (e) {
    return `${(e as Error).message} (or EMAIL_ALLOW_PRIVATE_HOSTS=true)`;
  }
}
