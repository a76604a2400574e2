import { isIPv4, isIPv6 } from 'node:net';

/**
 * Which addresses outbound requests may not reach: loopback, private, link-local (cloud metadata
 * at 169.254.169.254), shared (CGNAT), multicast and the reserved and documentation ranges, in
 * IPv4 and IPv6. IPv6 forms that carry an IPv4 address (v4-mapped, NAT64 64:ff9b::/96, 6to4
 * 2002::/16) are judged by the IPv4 address they carry, because that is where packets go.
 */
type Range = readonly [prefix: number[], bits: number, name: string];

const V4: readonly Range[] = [
  [[0, 0, 0, 0], 8, 'this network'],
  [[10, 0, 0, 0], 8, 'private'],
  [[100, 64, 0, 0], 10, 'shared (CGNAT)'],
  [[127, 0, 0, 0], 8, 'loopback'],
  [[169, 254, 0, 0], 16, 'link-local'],
  [[172, 16, 0, 0], 12, 'private'],
  [[192, 0, 0, 0], 24, 'IETF protocol assignments'],
  [[192, 0, 2, 0], 24, 'documentation'],
  [[192, 88, 99, 0], 24, '6to4 relay'],
  [[192, 168, 0, 0], 16, 'private'],
  [[198, 18, 0, 0], 15, 'benchmarking'],
  [[198, 51, 100, 0], 24, 'documentation'],
  [[203, 0, 113, 0], 24, 'documentation'],
  [[224, 0, 0, 0], 4, 'multicast'],
  [[240, 0, 0, 0], 4, 'reserved'], // includes 255.255.255.255
];

// Prefixes as 16 bytes; the embedding forms (mapped, NAT64, 6to4) are handled before these.
const V6: readonly Range[] = [
  [[], 96, 'unspecified, loopback or IPv4-compatible'], // ::, ::1, ::a.b.c.d
  [[0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0], 96, 'IPv4-translated'],
  [[0, 0x64, 0xff, 0x9b, 0, 1], 48, 'local-use NAT64'],
  [[1, 0, 0, 0, 0, 0, 0, 0], 64, 'discard-only'],
  [[0x20, 0x01, 0, 0], 32, 'Teredo'],
  [[0x20, 0x01, 0, 2, 0, 0], 48, 'benchmarking'],
  [[0x20, 0x01, 0, 0x10], 28, 'ORCHID'],
  [[0x20, 0x01, 0, 0x20], 28, 'ORCHIDv2'],
  [[0x20, 0x01, 0x0d, 0xb8], 32, 'documentation'],
  [[0x3f, 0xff], 20, 'documentation'],
  [[0x5f, 0x00], 16, 'segment routing'],
  [[0xfc], 7, 'unique local'],
  [[0xfe, 0x80], 10, 'link-local'],
  [[0xfe, 0xc0], 10, 'site-local'],
  [[0xff], 8, 'multicast'],
];

function inPrefix(bytes: Uint8Array, prefix: number[], bits: number): boolean {
  for (let i = 0; i < bits; i += 8) {
    const mask = bits - i >= 8 ? 0xff : (0xff << (8 - (bits - i))) & 0xff;
    if ((bytes[i / 8]! & mask) !== ((prefix[i / 8] ?? 0) & mask)) return false;
  }
  return true;
}

/** The 16 bytes of an IPv6 address (zone id ignored), or null. */
export function ipv6Bytes(ip: string): Uint8Array | null {
  const addr = ip.replace(/%.*$/, '');
  if (!isIPv6(addr)) return null;
  let text = addr;
  const tail: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(addr);
  if (v4) {
    tail.push(...v4[1]!.split('.').map(Number));
    text = addr.slice(0, -v4[1]!.length) + '0:0';
  }
  const [head, rest] = text.includes('::') ? text.split('::') as [string, string] : [text, undefined];
  const groups = (s: string) => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
  const left = groups(head);
  const right = rest === undefined ? [] : groups(rest);
  const all = rest === undefined ? left : [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  const out = new Uint8Array(16);
  all.forEach((g, i) => ((out[i * 2] = g >> 8), (out[i * 2 + 1] = g & 0xff)));
  if (tail.length) out.set(tail, 12);
  return out;
}

function v4Range(bytes: Uint8Array): string | null {
  for (const [prefix, bits, name] of V4) if (inPrefix(bytes, prefix, bits)) return name;
  return null;
}

/** Why `ip` may not be reached ('loopback', 'private', ...), or null for a public address; anything unparseable is refused. */
export function forbiddenRange(ip: string): string | null {
  if (isIPv4(ip)) return v4Range(Uint8Array.from(ip.split('.').map(Number)));
  const b = ipv6Bytes(ip);
  if (!b) return 'not an IP address';
  const embedded = (from: number, via: string) => {
    const name = v4Range(b.subarray(from, from + 4));
    return name ? `${name} (${via})` : null;
  };
  if (inPrefix(b, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff], 96)) return embedded(12, 'v4-mapped');
  if (inPrefix(b, [0, 0x64, 0xff, 0x9b], 96)) return embedded(12, 'NAT64');
  if (inPrefix(b, [0x20, 0x02], 16)) return embedded(2, '6to4');
  for (const [prefix, bits, name] of V6) if (inPrefix(b, prefix, bits)) return name;
  return null;
}

/** True for loopback, private, link-local, reserved and other non-public addresses (see forbiddenRange). */
export const isForbiddenAddress = (ip: string): boolean => forbiddenRange(ip) !== null;

/** True when `ip` lies in `cidr`'s network (same family; v4-mapped IPv6 compares as IPv4). */
export function inCidr(ip: string, cidr: { bytes: Uint8Array; bits: number }): boolean {
  const b = addressBytes(ip);
  if (!b) return false;
  const v = b.length === cidr.bytes.length ? b : b.length === 16 && cidr.bytes.length === 4 && inPrefix(b, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff], 96) ? b.subarray(12) : null;
  return v !== null && inPrefix(v, [...cidr.bytes], cidr.bits);
}

/** 4 bytes for IPv4, 16 for IPv6, null otherwise. */
export function addressBytes(ip: string): Uint8Array | null {
  return isIPv4(ip) ? Uint8Array.from(ip.split('.').map(Number)) : ipv6Bytes(ip);
}
