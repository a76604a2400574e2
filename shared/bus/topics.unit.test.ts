import { describe, expect, it } from 'vitest';
import { topicPattern, topics, workspaceCommandPattern, workspaceOfCommandTopic, workspaceOfTopic } from './topics.ts';

describe('topic naming', () => {
  it('builds the documented names', () => {
    expect(topics.event('shopify', 'acme', 'orders', 'created')).toBe('ionflux.shopify.ws_acme.orders.created');
    expect(topics.command('llm')).toBe('ionflux.cmd.llm');
    expect(topics.agentOutputs('writer-1', 'acme')).toBe('ionflux.agent.writer-1.ws_acme.outputs');
    expect(topics.deadLetter('webhook-ingester')).toBe('ionflux.dlq.webhook-ingester');
    expect(topics.audit).toBe('ionflux.platform.audit');
    expect(topics.internal('shopify')).toBe('ionflux.internal.shopify');
  });

  it('refuses event sources that would read as another family', () => {
    for (const source of ['cmd', 'state', 'internal', 'inbox']) expect(() => topics.event(source, 'acme', 'x', 'y')).toThrow(/reserved/);
  });

  const crafted = [
    ['a dot', 'acme.orders'],
    ['a slash', 'acme/other'],
    ['dot-dot', '..'],
    ['a leading dot-dot', '../acme'],
    ['unicode', 'acmé'],
    ['a lookalike', 'аcme'], // Cyrillic a
    ['empty', ''],
    ['over-long', 'a'.repeat(64)],
    ['uppercase', 'Acme'],
    ['whitespace', 'ac me'],
    ['a wildcard', 'acme*'],
    ['a leading dash', '-acme'],
    ['a newline', 'acme\n'],
    ['not a string', 42],
  ] as const;

  it.each(crafted)('refuses a workspace id with %s', (_label, id) => {
    expect(() => topics.event('shopify', id as string, 'orders', 'created')).toThrow(/workspace id/);
    expect(() => topics.agentOutputs('agent', id as string)).toThrow(/workspace id/);
  });

  it('refuses crafted entity, action, source and service segments', () => {
    expect(() => topics.event('shopify', 'acme', 'orders.x', 'created')).toThrow();
    expect(() => topics.event('shopify', 'acme', 'orders', 'ws_other.orders')).toThrow();
    expect(() => topics.event('sho/pify', 'acme', 'orders', 'created')).toThrow();
    expect(() => topics.command('llm.x')).toThrow();
    expect(() => topics.deadLetter('')).toThrow();
  });

  it('refuses reserved sources, which would make topics ambiguous', () => {
    for (const s of ['cmd', 'agent', 'dlq', 'state']) expect(() => topics.event(s, 'acme', 'a', 'b')).toThrow(/reserved/);
  });

  it('tells which workspace a topic belongs to', () => {
    expect(workspaceOfTopic('ionflux.shopify.ws_acme.orders.created')).toBe('acme');
    expect(workspaceOfTopic('ionflux.agent.writer.ws_beta.outputs')).toBe('beta');
    expect(workspaceOfTopic('ionflux.cmd.llm')).toBeNull();
    expect(workspaceOfTopic('ionflux.shopify.ws_acme.orders.created.extra')).toBeNull();
  });

  it('treats plain names literally and regex patterns as anchored regexes', () => {
    expect(topicPattern('ionflux.cmd.llm')).toBe('ionflux.cmd.llm');
    const re = topicPattern('ionflux.shopify.ws_.*.orders.created') as RegExp;
    expect(re.test('ionflux.shopify.ws_acme.orders.created')).toBe(true);
    expect(re.test('x.ionflux.shopify.ws_acme.orders.created.y')).toBe(false);
  });

  it('names each workspace\'s command topic and tells its workspace back; the pattern matches only those of one service', () => {
    expect(topics.workspaceCommand('webhook', 'acme')).toBe('ionflux.cmd.webhook.ws_acme');
    expect(() => topics.workspaceCommand('webhook', 'a.b')).toThrow();
    expect(workspaceOfCommandTopic('ionflux.cmd.webhook.ws_acme')).toBe('acme');
    expect(workspaceOfCommandTopic('ionflux.cmd.webhook')).toBeNull();
    expect(workspaceOfCommandTopic('ionflux.webhook.ws_acme.command.outcomes')).toBeNull();
    const re = workspaceCommandPattern('webhook');
    expect(re.test('ionflux.cmd.webhook.ws_acme')).toBe(true);
    expect(re.test('ionflux.cmd.webhook')).toBe(false);
    expect(re.test('ionflux.cmd.webhookx.ws_acme')).toBe(false);
    expect(re.test('ionflux.cmd.webhook.ws_acme.x')).toBe(false);
  });
});
