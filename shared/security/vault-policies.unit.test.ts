import { describe, expect, it } from 'vitest';
import { SERVICES } from './principals.ts';
import { adminPolicy, servicePolicy } from './vault-policies.ts';

const rules = (hcl: string) => new Map([...hcl.matchAll(/path "([^"]+)" \{ capabilities = (\[[^\]]*\]) \}/g)].map((m) => [m[1]!, JSON.parse(m[2]!) as string[]]));

describe('OpenBao policies', () => {
  it('give the services that run commands the approval signing key to read, never to write, and the webhook ingester not at all', () => {
    for (const s of ['connector-worker', 'llm-orchestrator', 'email-dispatcher', 'tiktok-sync', 'shopify-sync']) expect(rules(servicePolicy(s)).get('secret/data/platform/approvals'), s).toEqual(['read']);
    const ingester = rules(servicePolicy('webhook-ingester'));
    expect([...ingester.keys()].filter((p) => p.includes('approvals'))).toEqual([]);
    expect(SERVICES['webhook-ingester']!.commands).toEqual([]);
  });

  it('keep agents\' credentials and other services\' keys out of a service\'s reach', () => {
    const worker = rules(servicePolicy('connector-worker'));
    expect(worker.get('secret/data/workspaces/+/connectors/*')).toEqual(['read']);
    expect(worker.get('secret/data/platform/shopify')).toEqual(['deny']);
    // Keys another service writes are not the `*` reader's either (the email seal key forges approval-free sends).
    expect(worker.get('secret/data/platform/email-seal')).toEqual(['deny']);
    expect(rules(servicePolicy('email-dispatcher')).get('secret/data/platform/email-seal')).toEqual(['create', 'read', 'update', 'delete']);
    expect(worker.get('secret/data/workspaces/+/connectors/llm')).toEqual(['deny']);
    expect([...worker.keys()].some((p) => p.includes('/agents/'))).toBe(false);
    const ingester = rules(servicePolicy('webhook-ingester'));
    expect(ingester.get('secret/data/webhooks/endpoints/*')).toEqual(['read']);
    expect([...ingester.keys()].some((p) => p.includes('workspaces/'))).toBe(false);
    const tiktok = rules(servicePolicy('tiktok-sync'));
    expect(tiktok.get('secret/data/workspaces/+/connectors/tiktok')).toEqual(['create', 'read', 'update', 'delete']);
  });

  it('let the LLM orchestrator read the keys of its LLM_EXTRA_PROVIDERS, which the connector worker may not', () => {
    const o = { llmExtraProviders: ['ollama', 'openai'] };
    const llm = rules(servicePolicy('llm-orchestrator', 'secret', o));
    expect(llm.get('secret/data/platform/ollama')).toEqual(['read']);
    expect(llm.get('secret/data/workspaces/+/connectors/ollama')).toEqual(['read']);
    const worker = rules(servicePolicy('connector-worker', 'secret', o));
    expect(worker.get('secret/data/platform/ollama')).toEqual(['deny']);
    expect(worker.get('secret/data/workspaces/+/connectors/ollama')).toEqual(['deny']);
    // Without the setting nothing changes.
    expect(rules(servicePolicy('llm-orchestrator')).has('secret/data/platform/ollama')).toBe(false);
    // An id naming another service's secrets (or the worker's own connectors) would hand them over.
    for (const id of ['shopify', 'email-seal', 'approvals', 'webhook']) expect(() => servicePolicy('llm-orchestrator', 'secret', { llmExtraProviders: [id] }), id).toThrow(/another service holds/);
  });

  it('one rule per path (the stronger grant wins), and the admin gets everything', () => {
    for (const s of Object.keys(SERVICES)) {
      const paths = [...servicePolicy(s).matchAll(/path "([^"]+)"/g)].map((m) => m[1]);
      expect(new Set(paths).size, s).toBe(paths.length);
    }
    expect(rules(adminPolicy()).get('secret/data/*')).toContain('create');
  });
});
