import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { AclBinding, AclOperation, AclResource } from '../bus/security.ts';
import { topics } from '../bus/topics.ts';
import { catalog } from '../connectors/catalog/index.ts';
import { agentPlan, agentTopics, commandsOf, servicePlan, type PlanInput } from './acl-plan.ts';
import { agentPrincipal, parseAgentPrincipal, principalKind, SERVICES, servicePrincipal } from './principals.ts';

const input: PlanInput = {
  commandIds: ['email', 'llm', 'platform', 'tiktok', 'webhook'],
  agentCommandIds: ['email', 'llm', 'tiktok', 'webhook'],
  genericSources: [{ workspaceId: 'acme', source: 'crm' }, { workspaceId: 'other', source: 'erp' }],
};
const all: AclBinding[] = [...Object.keys(SERVICES).flatMap((s) => servicePlan(s, input)), ...agentPlan('writer-1', 'acme', input), ...agentPlan('spy', 'other', input)];

/** What Kafka's StandardAuthorizer decides for these allow-only bindings (READ/WRITE imply DESCRIBE). */
function allowed(principal: string, resource: AclResource, name: string, operation: AclOperation): boolean {
  return all.some(
    (b) =>
      b.principal === principal &&
      b.resource === resource &&
      (b.pattern === 'literal' ? b.name === name : name.startsWith(b.name)) &&
      (b.operation === operation || b.operation === 'all' || (operation === 'describe' && ['read', 'write'].includes(b.operation))),
  );
}
const writers = (topic: string) => [...new Set(all.filter((b) => b.resource === 'topic').map((b) => b.principal))].filter((p) => allowed(p, 'topic', topic, 'write')).sort();

describe('ACL plan: an agent principal', () => {
  const agent = agentPrincipal('writer-1', 'acme');

  it('writes commands only to its workspace command topics', () => {
    expect(allowed(agent, 'topic', topics.workspaceCommand('webhook', 'acme'), 'write')).toBe(true);
    expect(allowed(agent, 'topic', topics.workspaceCommand('llm', 'acme'), 'write')).toBe(true);
    for (const t of [topics.workspaceCommand('webhook', 'other'), topics.workspaceCommand('webhook', 'acme-2'), topics.command('webhook'), topics.command('platform'), topics.workspaceCommand('platform', 'acme')]) {
      expect(allowed(agent, 'topic', t, 'write'), t).toBe(false);
    }
  });

  it('reads its workspace topics (vendors, services, its generic sources) and its own outputs, nothing of another workspace', () => {
    for (const t of [topics.event('shopify', 'acme', 'orders', 'created'), topics.event('webhook', 'acme', 'command', 'outcomes'), topics.event('crm', 'acme', 'contact', 'created'), topics.agentOutputs('writer-1', 'acme')]) {
      expect(allowed(agent, 'topic', t, 'read'), t).toBe(true);
    }
    for (const t of [topics.event('shopify', 'other', 'orders', 'created'), topics.event('shopify', 'acme-2', 'orders', 'created'), topics.event('erp', 'other', 'x', 'y'), topics.agentOutputs('spy', 'other'), topics.agentOutputs('someone', 'acme'), topics.command('webhook'), topics.audit, topics.state('approvals'), topics.deadLetter('webhook')]) {
      expect(allowed(agent, 'topic', t, 'read'), t).toBe(false);
    }
  });

  it('writes no state, platform, audit or dead-letter topic, creates no topic and joins only its own groups', () => {
    for (const t of [topics.state('approvals'), topics.state('links'), topics.state('workspace-connectors'), topics.audit, topics.userActivity, topics.deadLetter('webhook'), topics.internal('shopify'), topics.event('shopify', 'acme', 'orders', 'created')]) {
      expect(allowed(agent, 'topic', t, 'write'), t).toBe(false);
    }
    expect(all.some((b) => b.principal === agent && (b.operation === 'create' || b.resource === 'cluster' || b.resource === 'transactional_id'))).toBe(false);
    expect(allowed(agent, 'group', `${agent}.anything`, 'read')).toBe(true);
    expect(allowed(agent, 'group', 'ionflux-webhook-worker', 'read')).toBe(false);
    expect(allowed(agent, 'group', `${agentPrincipal('spy', 'other')}.x`, 'read')).toBe(false);
  });

  it('gets its command, outcome and outputs topics made for it (it may not create them)', () => {
    expect(agentTopics('writer-1', 'acme', input)).toEqual(expect.arrayContaining([topics.workspaceCommand('webhook', 'acme'), topics.event('webhook', 'acme', 'command', 'outcomes'), topics.agentOutputs('writer-1', 'acme')]));
  });
});

describe('ACL plan: services', () => {
  it('lets only the owners write each state topic, ionflux.cmd.platform and the audit topic', () => {
    expect(writers(topics.state('approvals'))).toEqual(['ionflux-connector-worker', 'ionflux-email-dispatcher', 'ionflux-llm-orchestrator', 'ionflux-shopify-sync', 'ionflux-tiktok-sync']);
    expect(writers(topics.state('links'))).toEqual(['ionflux-email-dispatcher', 'ionflux-shopify-sync', 'ionflux-tiktok-sync']);
    expect(writers(topics.state('webhook-deliveries'))).toEqual(['ionflux-webhook-ingester']);
    expect(writers(topics.state('commands-llm'))).toEqual(['ionflux-llm-orchestrator']);
    expect(writers(topics.state('llm-spend'))).toEqual(['ionflux-llm-orchestrator']);
    expect(writers(topics.command('platform'))).toEqual(['ionflux-connector-worker']);
    expect(writers(topics.command('llm'))).toEqual(['ionflux-connector-worker']); // approval releases
    expect(writers(topics.command('email'))).toEqual(['ionflux-connector-worker', 'ionflux-email-dispatcher']);
    expect(writers(topics.audit)).toEqual(Object.keys(SERVICES).map(servicePrincipal).sort());
  });

  it('writes only the event topics it produces', () => {
    expect(writers(topics.event('shopify', 'acme', 'orders', 'created'))).toEqual(['ionflux-shopify-sync', 'ionflux-webhook-ingester']);
    expect(writers(topics.event('llm', 'acme', 'command', 'outcomes'))).toEqual(['ionflux-llm-orchestrator']);
    expect(writers(topics.event('crm', 'acme', 'contact', 'created'))).toEqual(['ionflux-webhook-ingester']);
    expect(writers(topics.event('crm', 'other', 'contact', 'created'))).toEqual([]); // no endpoint with that source there
    expect(writers(topics.agentOutputs('writer-1', 'acme'))).toEqual([agentPrincipal('writer-1', 'acme'), 'ionflux-connector-worker', 'ionflux-email-dispatcher', 'ionflux-llm-orchestrator', 'ionflux-shopify-sync', 'ionflux-tiktok-sync'].sort());
  });

  it('reads its own command topics, the admins\' and every workspace\'s, and no other service\'s', () => {
    const llm = servicePrincipal('llm-orchestrator');
    expect(allowed(llm, 'topic', topics.command('llm'), 'read')).toBe(true);
    expect(allowed(llm, 'topic', topics.workspaceCommand('llm', 'acme'), 'read')).toBe(true);
    expect(allowed(llm, 'topic', topics.command('webhook'), 'read')).toBe(false);
    expect(allowed(llm, 'topic', topics.workspaceCommand('webhook', 'acme'), 'read')).toBe(false);
    expect(allowed(llm, 'group', 'ionflux-llm-worker', 'read')).toBe(true);
    expect(allowed(llm, 'group', 'ionflux-webhook-worker', 'read')).toBe(false);
    expect(allowed(llm, 'transactional_id', 'ionflux-llm-orchestrator-0', 'write')).toBe(true);
    expect(allowed(llm, 'transactional_id', 'ionflux-connector-worker-0', 'write')).toBe(false);
  });

  it('every catalog connector is run by exactly one service; every deployable under services/ has a principal', () => {
    const ids = [...catalog.keys()];
    for (const id of ids) expect(Object.keys(SERVICES).filter((s) => commandsOf(s, { commandIds: ids }).includes(id)), id).toHaveLength(1);
    const deployables = readdirSync(new URL('../../services/', import.meta.url), { withFileTypes: true }).filter((d) => d.isDirectory() && d.name !== 'cli').map((d) => d.name);
    for (const d of deployables) expect(Object.keys(SERVICES), d).toContain(d);
  });
});

describe('principal names', () => {
  it('mirror the agent outputs topic and parse back', () => {
    expect(agentPrincipal('writer_1', 'acme')).toBe('agent.writer_1.ws_acme');
    expect(parseAgentPrincipal('agent.writer_1.ws_acme')).toEqual({ agentId: 'writer_1', workspaceId: 'acme' });
    expect(parseAgentPrincipal('agent.a.ws_b.c')).toBeNull();
    expect(() => agentPrincipal('a.b', 'acme')).toThrow();
    expect(principalKind('ionflux-admin')).toEqual({ kind: 'admin' });
    expect(principalKind('ionflux-llm-orchestrator')).toEqual({ kind: 'service', service: 'llm-orchestrator' });
    expect(principalKind('someone')).toEqual({ kind: 'other' });
  });
});
