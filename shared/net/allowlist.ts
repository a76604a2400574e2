import { isIP } from 'node:net';
import { addressBytes, inCidr } from './addresses.ts';

/**
 * OUTBOUND_ALLOWLIST: comma-separated exceptions to the outbound policy, for tests and on-premise
 * targets. Each entry is a host name (`hooks.internal`), a host and port (`hooks.internal:8443`),
 * an IP (`127.0.0.1`, `::1`, `[::1]:8080`, `127.0.0.1:9000`) or a CIDR (`10.20.0.0/16`, `fd00::/8`).
 * A host name entry trusts whatever that name resolves to; IP and CIDR entries match the address
 * actually connected to.
 */
export type AllowRule =
  | { kind: 'host'; host: string; port?: number }
  | { kind: 'net'; bytes: Uint8Array; bits: number; port?: number; text: string };

const HOST = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))*\.?$/;

const portOf = (s: string | undefined): number | undefined | null => {
  if (s === undefined) return undefined;
  const n = Number(s);
  return /^\d{1,5}$/.test(s) && n > 0 && n < 65536 ? n : null;
};

/** One entry, or a message saying why it is not one. */
export function parseAllowEntry(raw: string): AllowRule | string {
  const entry = raw.trim().toLowerCase();
  const cidr = /^([^/]+)\/(\d{1,3})$/.exec(entry);
  if (cidr) {
    const bytes = addressBytes(cidr[1]!);
    const bits = Number(cidr[2]);
    if (!bytes || bits > bytes.length * 8) return `"${raw}" is not a valid CIDR`;
    return { kind: 'net', bytes, bits, text: entry };
  }
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
  const hostPort = /^([^:]+):(\d+)$/.exec(entry);
  const [host, portText] = bracketed ? [bracketed[1]!, bracketed[2]] : isIP(entry) ? [entry, undefined] : hostPort ? [hostPort[1]!, hostPort[2]] : [entry, undefined];
  const port = portOf(portText);
  if (port === null) return `"${raw}" has an invalid port`;
  const bytes = addressBytes(host);
  if (bytes) return { kind: 'net', bytes, bits: bytes.length * 8, port, text: entry };
  if (bracketed || !HOST.test(host)) return `"${raw}" is not a host, host:port, IP or CIDR`;
  return { kind: 'host', host: host.replace(/\.$/, ''), port };
}

/** Every entry of a comma-separated list; throws naming each bad one. */
export function parseAllowlist(csv: string | undefined): AllowRule[] {
  const rules: AllowRule[] = [];
  const bad: string[] = [];
  for (const raw of (csv ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    const r = parseAllowEntry(raw);
    if (typeof r === 'string') bad.push(r);
    else rules.push(r);
  }
  if (bad.length) throw new Error(bad.join('; '));
  return rules;
}

/** Whether a request to `host`:`port`, connected to `address`, is an allowed exception. */
export function isAllowed(rules: readonly AllowRule[], host: string, port: number, address: string): boolean {
  const name = host.toLowerCase().replace(/\.$/, '');
  return rules.some((r) => (r.port === undefined || r.port === port) && (r.kind === 'host' ? r.host === name : inCidr(address, r)));
}
