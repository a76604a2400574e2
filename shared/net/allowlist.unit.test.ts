import { describe, expect, it } from 'vitest';
import { isAllowed, parseAllowlist } from './allowlist.ts';

describe('OUTBOUND_ALLOWLIST', () => {
  it('parses hosts, host:port, IPs, [v6]:port and CIDRs', () => {
    const rules = parseAllowlist(' 127.0.0.1 , hooks.internal:8443,localhost, ::1,[::1]:9000, 10.20.0.0/16, fd00::/8, 127.0.0.2:81 ');
    expect(rules.map((r) => (r.kind === 'host' ? `host ${r.host}:${r.port ?? '*'}` : `net ${r.text} ${r.bits}:${r.port ?? '*'}`))).toEqual([
      'net 127.0.0.1 32:*', 'host hooks.internal:8443', 'host localhost:*', 'net ::1 128:*', 'net [::1]:9000 128:9000', 'net 10.20.0.0/16 16:*', 'net fd00::/8 8:*', 'net 127.0.0.2:81 32:81',
    ]);
    expect(parseAllowlist('')).toEqual([]);
    expect(parseAllowlist(undefined)).toEqual([]);
  });

  it('names every bad entry', () => {
    expect(() => parseAllowlist('ok.example, 10.0.0.0/33, a b, host:0, http://x, [nothost]')).toThrow(/10\.0\.0\.0\/33.*"a b".*host:0.*http:\/\/x.*\[nothost\]/);
  });

  it('matches host entries by name (and port), IP and CIDR entries by the address connected to', () => {
    const rules = parseAllowlist('hooks.internal:8443,127.0.0.1,10.20.0.0/16,fd00::/8,127.0.0.2:81');
    expect(isAllowed(rules, 'hooks.internal', 8443, '10.9.9.9')).toBe(true);
    expect(isAllowed(rules, 'HOOKS.internal.', 8443, '10.9.9.9')).toBe(true);
    expect(isAllowed(rules, 'hooks.internal', 443, '10.9.9.9')).toBe(false);
    expect(isAllowed(rules, 'anything', 80, '127.0.0.1')).toBe(true);
    expect(isAllowed(rules, 'anything', 80, '::ffff:127.0.0.1')).toBe(true);
    expect(isAllowed(rules, 'anything', 80, '127.0.0.3')).toBe(false);
    expect(isAllowed(rules, 'x', 1, '10.20.255.1')).toBe(true);
    expect(isAllowed(rules, 'x', 1, '10.21.0.1')).toBe(false);
    expect(isAllowed(rules, 'x', 1, 'fd12::1')).toBe(true);
    expect(isAllowed(rules, 'x', 81, '127.0.0.2')).toBe(true);
    expect(isAllowed(rules, 'x', 80, '127.0.0.2')).toBe(false);
    expect(isAllowed([], 'localhost', 80, '127.0.0.1')).toBe(false);
  });
});
