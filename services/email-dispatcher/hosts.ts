import { checkedAddress, outboundAllowlist } from '../../shared/net/outbound.ts';

/**
 * Null when `hostname` resolves only to addresses the hub's outbound policy allows (or private ones
 * are allowed here), else why not. Guards the SMTP server a workspace chooses, which nodemailer
 * connects to itself; HTTP fetches go through outboundFetch, which checks the connected address.
 */
export async function checkHost(hostname: string, allowPrivate: boolean, port = 25): Promise<string | null> {
  if (allowPrivate) return null;
  try {
    await checkedAddress(hostname, port, { allow: outboundAllowlist() });
    return null;
  } catch (e) {
    return `${(e as Error).message} (or EMAIL_ALLOW_PRIVATE_HOSTS=true)`;
  }
}
