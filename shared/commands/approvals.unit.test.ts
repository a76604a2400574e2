import { describe, expect, it } from 'vitest';
import { releaseTopic } from './approvals.ts';

describe('where an approved command is released', () => {
  const command = { command_id: 'c1', workspace_id: 'acme', agent_id: 'a1', service: 'webhook', action: 'post', params: {} };
  const of = (topic?: string) => releaseTopic({ service: 'webhook', command, ...(topic ? { topic } : {}) });

  it("back on the workspace's own command topic when it came from there", () => {
    expect(of('ionflux.cmd.webhook.ws_acme')).toBe('ionflux.cmd.webhook.ws_acme');
  });

  it("on the service's topic when it came from there, from another workspace's or service's topic, or was asked before approvals kept their topic", () => {
    expect(of('ionflux.cmd.webhook')).toBe('ionflux.cmd.webhook');
    expect(of('ionflux.cmd.webhook.ws_other')).toBe('ionflux.cmd.webhook');
    expect(of('ionflux.cmd.email.ws_acme')).toBe('ionflux.cmd.webhook');
    expect(of()).toBe('ionflux.cmd.webhook');
  });
});
