import { describe, expect, it } from 'vitest';
import { checkHost } from './hosts.ts';

describe('the SMTP host a workspace chooses', () => {
  it('refuses loopback, private and link-local addresses unless allowed', async () => {
    for (const h of ['127.0.0.1', '10.1.2.3', '192.168.0.10', '169.254.169.254', '[::1]', 'localhost']) expect(await checkHost(h, false), h).toMatch(/refusing to connect|did not resolve/);
    expect(await checkHost('127.0.0.1', true)).toBeNull();
    expect(await checkHost('93.184.216.34', false)).toBeNull();
  });
});
