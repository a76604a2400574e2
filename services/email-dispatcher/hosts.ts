import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';

// Loopback, private, link-local (cloud metadata), CGNAT, unspecified and their IPv6 forms.
const PRIVATE = new BlockList();
for (const [net, bits] of [['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12], ['192.168.0.0', 16]] as const) PRIVATE.addSubnet(net, bits, 'ipv4');
for (const [net, bits] of [['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10]] as const) PRIVATE.addSubnet(net, bits, 'ipv6');

/**
 * Null when `hostname` resolves only to public addresses (or private ones are allowed), else why
 * not. Guards the hosts a workspace chooses (its SMTP server, attachment URLs) against reaching
 * the hub's own network.
 */
export async function checkHost(hostname: string, allowPrivate: boolean): Promise<string | null> {
  if (allowPrivate) return null;
  const host = hostname.replace(/^\[|\]$/g, '');
  const addresses = isIP(host) ? [{ address: host, family: isIP(host) }] : await lookup(host, { all: true }).catch(() => []);
  if (addresses.length === 0) return `cannot resolve ${hostname}`;
  for (const a of addresses) {
    const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a.address)?.[1];
    if (PRIVATE.check(v4 ?? a.address, v4 || a.family === 4 ? 'ipv4' : 'ipv6')) return `${hostname} resolves to a private or loopback address (EMAIL_ALLOW_PRIVATE_HOSTS=true allows it)`;
  }
  return null;
}
