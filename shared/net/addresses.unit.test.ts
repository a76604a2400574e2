import { describe, expect, it } from 'vitest';
import { forbiddenRange, ipv6Bytes, isForbiddenAddress } from './addresses.ts';

describe('isForbiddenAddress', () => {
  it.each([
    ['127.0.0.1', 'loopback'], ['127.255.255.254', 'loopback'], ['10.0.0.1', 'private'], ['10.255.255.255', 'private'],
    ['172.16.0.1', 'private'], ['172.31.255.255', 'private'], ['192.168.1.1', 'private'], ['169.254.169.254', 'link-local'],
    ['100.64.0.1', 'shared (CGNAT)'], ['100.127.255.255', 'shared (CGNAT)'], ['0.0.0.0', 'this network'], ['0.1.2.3', 'this network'],
    ['224.0.0.1', 'multicast'], ['239.255.255.250', 'multicast'], ['240.0.0.1', 'reserved'], ['255.255.255.255', 'reserved'],
    ['192.0.0.8', 'IETF protocol assignments'], ['192.0.2.1', 'documentation'], ['198.18.0.1', 'benchmarking'], ['198.51.100.7', 'documentation'], ['203.0.113.9', 'documentation'],
    ['::1', 'unspecified, loopback or IPv4-compatible'], ['::', 'unspecified, loopback or IPv4-compatible'], ['::127.0.0.1', 'unspecified, loopback or IPv4-compatible'],
    ['fc00::1', 'unique local'], ['fd12:3456::1', 'unique local'], ['fe80::1', 'link-local'], ['fe80::1%eth0', 'link-local'], ['febf::1', 'link-local'], ['fec0::1', 'site-local'], ['ff02::1', 'multicast'],
    ['::ffff:127.0.0.1', 'loopback (v4-mapped)'], ['::ffff:7f00:1', 'loopback (v4-mapped)'], ['::ffff:10.1.2.3', 'private (v4-mapped)'], ['::ffff:a9fe:a9fe', 'link-local (v4-mapped)'],
    ['64:ff9b::7f00:1', 'loopback (NAT64)'], ['64:ff9b::192.168.0.1', 'private (NAT64)'], ['64:ff9b::a9fe:a9fe', 'link-local (NAT64)'], ['64:ff9b:1::1', 'local-use NAT64'],
    ['2002:7f00:1::', 'loopback (6to4)'], ['2002:c0a8:101::1', 'private (6to4)'], ['2002:a9fe:a9fe::1', 'link-local (6to4)'], ['2002:0a00:0001:1234::1', 'private (6to4)'],
    ['2001::1', 'Teredo'], ['2001:db8::1', 'documentation'], ['100::1', 'discard-only'], ['::ffff:0:7f00:1', 'IPv4-translated'],
  ])('refuses %s (%s)', (ip, range) => {
    expect(forbiddenRange(ip)).toBe(range);
    expect(isForbiddenAddress(ip)).toBe(true);
  });

  it.each([
    '8.8.8.8', '1.1.1.1', '93.184.216.34', '172.15.255.255', '172.32.0.1', '192.169.0.1', '100.63.255.255', '100.128.0.1', '169.253.1.1', '223.255.255.255', '11.0.0.1',
    '2606:4700:4700::1111', '2001:4860:4860::8888', '::ffff:8.8.8.8', '64:ff9b::808:808', '2002:808:808::1', 'fbff::1', 'fe00::1',
  ])('lets %s through (public)', (ip) => {
    expect(forbiddenRange(ip)).toBeNull();
  });

  it('refuses anything that is not an address', () => {
    for (const junk of ['', 'localhost', '127.1', '0x7f000001', '2130706433', '::g', '1.2.3.4.5']) expect(isForbiddenAddress(junk)).toBe(true);
  });

  it('parses IPv6 forms to bytes', () => {
    expect(Buffer.from(ipv6Bytes('::1')!).toString('hex')).toBe('00000000000000000000000000000001');
    expect(Buffer.from(ipv6Bytes('::ffff:1.2.3.4')!).toString('hex')).toBe('00000000000000000000ffff01020304');
    expect(Buffer.from(ipv6Bytes('2001:db8::8:800:200c:417a')!).toString('hex')).toBe('20010db80000000000080800200c417a');
    expect(Buffer.from(ipv6Bytes('1::')!).toString('hex')).toBe('00010000000000000000000000000000');
    expect(ipv6Bytes('1.2.3.4')).toBeNull();
  });
});
