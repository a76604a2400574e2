import { afterEach, describe, expect, it } from 'vitest';
import { parseAllowlist } from '../../shared/net/allowlist.ts';
import { configureOutbound } from '../../shared/net/outbound.ts';
import { checkHost } from './hosts.ts';

describe('the SMTP host a workspace chooses', () => {
  afterEach(() => configureOutbound([]));

  it('refuses loopback, private and link-local addresses unless allowed', async () => {
    for (const h of ['127.0.0.1', '10.1.2.3', '192.168.0.10', '169.254.169.254', '[::1]', 'localhost']) expect(await checkHost(h, false), h).toMatch(/refusing to connect|did not resolve/);
    expect(await checkHost('127.0.0.1', true)).toBeNull();
    expect(await checkHost('93.184.216.34', false)).toBeNull();
  });

  it("follows the service's parsed OUTBOUND_ALLOWLIST (configureOutbound), not the environment at call time", async () => {
    configureOutbound(parseAllowlist('10.1.2.3'));
    process.env.OUTBOUND_ALLOWLIST = '192.168.0.10';
    try {
      expect(await checkHost('10.1.2.3', false)).toBeNull();
      expect(await checkHost('192.168.0.10', false)).toMatch(/refusing to connect/);
    } finally {
      delete process.env.OUTBOUND_ALLOWLIST;
    }
  });
});
