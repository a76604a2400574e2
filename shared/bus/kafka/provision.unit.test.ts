import { describe, expect, it } from 'vitest';
import { topics } from '../topics.ts';
import { defaultTopicSpecFor } from './provision.ts';

describe('defaultTopicSpecFor: what a topic is created with', () => {
  it('gives a workspace command topic and its command outcomes one partition (both keyed by the workspace)', () => {
    expect(defaultTopicSpecFor(topics.workspaceCommand('llm', 'acme'))).toEqual({ partitions: 1, configs: { 'retention.ms': String(7 * 24 * 3600_000), 'message.timestamp.type': 'LogAppendTime' } });
    expect(defaultTopicSpecFor(topics.event('llm', 'acme', 'command', 'outcomes'))).toEqual({ partitions: 1 });
  });

  it("keeps the default partitions for a service's command topic and for other event topics", () => {
    expect(defaultTopicSpecFor(topics.command('llm'))?.partitions).toBeUndefined();
    expect(defaultTopicSpecFor(topics.event('shopify', 'acme', 'orders', 'created'))).toBeUndefined();
    expect(defaultTopicSpecFor(topics.event('shopify', 'acme', 'command', 'created'))).toBeUndefined();
  });
});
