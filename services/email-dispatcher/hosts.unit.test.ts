import { afterEach, describe, expect, it } from 'vitest';
import { parseAllowlist } from '../../shared/net/allowlist.ts';
import { configureOutbound } from '../../shared/net/outbound.ts';
import type { ActionContext } from '../../shared/connectors/types.ts';
import { prepare } from './actions/prepare.ts';
import type { EmailDeps } from './deps.ts';
import { checkHost } from './hosts.ts';

describe('the SMTP host a workspace chooses', () => {
  afterEach(() => configureOutbound([]));

  it('refuses loopback, private and link-local addresses unless allowed', async () => {
    for (const h of ['127.0.0.1', '10.1.2.3', '192.168.0.10', '169.254.169.254', '[::1]', 'localhost']) expect(await checkHost(h, false, 587), h).toMatch(/refusing to connect|did not resolve/);
    expect(await checkHost('127.0.0.1', true, 587)).toBeNull();
    expect(await checkHost('93.184.216.34', false, 587)).toBeNull();
  });

  it("follows the service's parsed OUTBOUND_ALLOWLIST (configureOutbound), not the environment at call time", async () => {
    configureOutbound(parseAllowlist('10.1.2.3'));
    process.env.OUTBOUND_ALLOWLIST = '192.168.0.10';
    try {
      expect(await checkHost('10.1.2.3', false, 587)).toBeNull();
      expect(await checkHost('192.168.0.10', false, 587)).toMatch(/refusing to connect/);
    } finally {
      delete process.env.OUTBOUND_ALLOWLIST;
    }
  });

  it("checks the port the workspace's URL names: an allowlist rule for port 25 does not admit another port of that host", async () => {
    configureOutbound(parseAllowlist('10.1.2.3:25'));
    const prepared = (credential: string) =>
      prepare({ platformCredential: async () => 'smtp://platform.test', providerFor: () => ({ name: 'smtp', account: 'smtp:1', send: async () => ({ ok: true }) }), attachments: { maxBytes: 1, trustedPrefixes: [], allowPrivate: false } } as unknown as EmailDeps, {
        params: {},
        workspaceId: 'ws1',
        idempotencyKey: 'c1',
        credentials: { provider: 'smtp', credential, from: 'news@shop.test' },
        signal: new AbortController().signal,
      } as unknown as ActionContext);
    await expect(prepared('smtp://u:p@10.1.2.3:25')).resolves.toMatchObject({ platform: false });
    await expect(prepared('smtp://u:p@10.1.2.3:6379')).rejects.toMatchObject({ code: 'smtp_host_forbidden' });
    await expect(prepared('smtp://u:p@10.1.2.3')).rejects.toMatchObject({ code: 'smtp_host_forbidden' }); // 587
  });
});
