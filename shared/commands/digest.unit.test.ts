import { describe, expect, it } from 'vitest';
import { commandDigest, dedupeDigest } from './digest.ts';

// Digests are stored (command states' content_digest, approvals' digest): a worker of a newer
// version must compute the very same ones, or commands in flight across an upgrade would be
// refused as idempotency_key_reused / approval_mismatch. These values were computed by the first
// implementation (sorted-key JSON of the whole object, sha256).
const cases = [
  { action: 'noop', params: { n: 1 }, workspace_id: 'acme', reply_to: null, agent_id: 'bench' },
  { action: 'email.send', params: { to: ['a@x.io'], subject: 'Hi "there"', platform_seal: { mac: 'm', expires_at: 1 }, nested: { z: 1, a: [3, { y: null, b: 'é' }] }, u: undefined }, workspace_id: 'ws_1', reply_to: { topic: 'ionflux.custom', key: 'k' }, agent_id: 'agent-9' },
  { action: 'webhook.post', params: {}, workspace_id: 'w', reply_to: undefined, agent_id: 'a' },
];
const expected = [
  ['46737d2abefc50c154efa3aa9684957a1a8491ffd5d0fcbc0632bd38ec60811c', '3kOcK0AKm409LT4GAIVAGkk82UEFLmPIVwGOJTlgjKg'],
  ['9ff0b21c4cc7b7217a50d203c22d6de7632d9beab799d0ef8611c7d7fc5126d0', 'jiuRcpaoVSO3NYQzkXUL4DIW7jv6U1keRv6GI99ArXA'],
  ['ca833619dfd69cb8f73190f3ade0eaf7ebb33fdb73b416cfd1093c4b1c1e34e4', '5pUXayp3aIM61KuH04wdnipYEf8jpAMMfT8c8_ellqg'],
];

describe('command digests', () => {
  it('are the ones stored by earlier versions', () => {
    expect(cases.map((c) => [commandDigest('email', c as never), dedupeDigest('email', c as never)])).toEqual(expected);
  });

  it('leave seals out of the dedupe digest only, and tell other content apart', () => {
    const c = cases[1]!;
    const resealed = { ...c, params: { ...c.params, platform_seal: { mac: 'other', expires_at: 2 } } };
    expect(dedupeDigest('email', resealed as never)).toBe(expected[1]![1]);
    expect(commandDigest('email', resealed as never)).not.toBe(expected[1]![0]);
    expect(dedupeDigest('email', { ...c, agent_id: 'agent-8' } as never)).not.toBe(expected[1]![1]);
  });
});
