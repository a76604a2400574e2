import { describe, expect, it } from 'vitest';
import { checkHost } from './hosts.ts';

describe('hosts a workspace chooses (its SMTP server, attachment URLs)', () => {
  it('refuses loopback, private and link-local addresses unless allowed', async () => {
    for (const h of ['127.0.0.1', '10.1.2.3', '192.168.0.10', '169.254.169.254', '[::1]', 'localhost']) expect(await checkHost(h, false), h).toMatch(/private or loopback|cannot resolve/);
    expect(await checkHost('127.0.0.1', true)).toBeNull();
    expect(await checkHost('93.184.216.34', false)).toBeNull();
  });
});
