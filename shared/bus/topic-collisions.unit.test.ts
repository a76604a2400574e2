import { describe, expect, it } from 'vitest';
import { topics } from './topics.ts';

/** What Kafka compares when it checks a new topic against existing ones ('.' and '_' alike). */
const kafkaKey = (topic: string) => topic.replace(/\./g, '_');

const attempt = (fn: () => string): string | null => {
  try {
    return fn();
  } catch {
    return null;
  }
};

describe('topic names cannot collide across workspaces (Kafka reads . and _ alike)', () => {
  it('refuses the second half of the documented example: ws_acme.x_y vs ws_acme_x.y', () => {
    expect(topics.event('shopify', 'acme', 'x_y', 'created')).toBe('ionflux.shopify.ws_acme.x_y.created');
    expect(() => topics.event('shopify', 'acme_x', 'y', 'created')).toThrow(/workspace id/);
    expect(() => topics.agentOutputs('writer', 'acme_x')).toThrow(/workspace id/);
    // A source holding '_' could shift the workspace boundary the same way.
    expect(() => topics.event('my_zap', 'acme', 'a', 'b')).toThrow(/source/);
  });

  it('keeps the documented names valid', () => {
    for (const [s, ws, e, a] of [['shopify', 'acme', 'orders', 'created'], ['shopify', 'acme', 'draft_orders', 'created'], ['email', 'acme', 'delivery', 'spam_reported'],
      ['whatsapp', 'acme', 'messages', 'received'], ['tiktok', 'acme', 'video', 'upload_failed'], ['llm', 'acme', 'command', 'outcomes'], ['shopify', 'acme-eu-2', 'inventory_levels', 'updated']] as const) {
      expect(topics.event(s, ws, e, a)).toBe(`ionflux.${s}.ws_${ws}.${e}.${a}`);
    }
    expect(topics.agentOutputs('writer_1', 'acme')).toBe('ionflux.agent.writer_1.ws_acme.outputs');
  });

  it('no two names built from different workspaces or sources are equal as Kafka compares them (exhaustive over a small alphabet)', () => {
    // Every word the grammar could confuse: the fixed parts (ws, outputs, agent, ...) with _ and - around them.
    const words = ['a', 'b', 'ws', 'a_b', 'a-b', 'ws_a', 'a_ws', 'a_ws_b', 'outputs', 'x_outputs', 'agent', 'cmd', 'platform', 'audit', 'state', 'a-ws', 'ws-a'];
    const owner = new Map<string, string>();
    const clash: string[] = [];
    const add = (topic: string | null, who: string) => {
      if (topic === null) return;
      const k = kafkaKey(topic);
      const seen = owner.get(k);
      if (seen !== undefined && seen !== who) clash.push(`${topic} (${who}) vs ${seen}`);
      owner.set(k, who);
    };
    for (const s of words) for (const ws of words) {
      for (const e of words) for (const a of words) add(attempt(() => topics.event(s, ws, e, a)), `event ${s}/${ws}/${e}.${a}`.replace(/\/[^/]*$/, ''));
      add(attempt(() => topics.agentOutputs(s, ws)), `agent ${s}/${ws}`);
    }
    for (const w of words) {
      add(attempt(() => topics.command(w)), `command ${w}`);
      add(attempt(() => topics.deadLetter(w)), `dlq ${w}`);
      add(attempt(() => topics.state(w)), `state ${w}`);
      add(attempt(() => topics.internal(w)), `internal ${w}`);
    }
    add(topics.audit, 'audit');
    add(topics.userActivity, 'user_activity');
    // Same source and workspace may still share a Kafka key (entity/action split); different ones never.
    expect(clash.filter((c) => !sameOwner(c))).toEqual([]);
    expect(owner.size).toBeGreaterThan(10_000);
  });
});

/** `event s/ws` labels equal on both sides: a collision inside one workspace's own names. */
function sameOwner(c: string): boolean {
  const m = /\((event [^)]*)\) vs (event .*)$/.exec(c);
  return !!m && m[1] === m[2];
}
