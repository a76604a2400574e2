import { KafkaJSAggregateError, KafkaJSProtocolError, type Kafka } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { topics } from '../topics.ts';
import { defaultTopicSpecFor, TopicProvisioner } from './provision.ts';

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

describe('TopicProvisioner: creating a topic', () => {
  /** An admin whose CreateTopics answers as `answers` say, in turn (then creates), over the topics it holds. */
  function cluster(answers: ((topic: string, held: Set<string>) => void)[]) {
    const held = new Set<string>();
    let creates = 0;
    const admin = {
      connect: async () => undefined,
      disconnect: async () => undefined,
      listTopics: async () => [...held],
      createTopics: async ({ topics: [t] }: { topics: { topic: string }[] }) => {
        creates++;
        const answer = answers.shift();
        if (answer) return answer(t!.topic, held);
        held.add(t!.topic);
      },
      fetchTopicMetadata: async ({ topics: names }: { topics: string[] }) => ({ topics: names.map((name) => ({ name, partitions: [{ partitionId: 0, leader: 1 }] })) }),
    };
    const provisioner = new TopicProvisioner({ admin: () => admin } as unknown as Kafka, { partitions: 1, replicationFactor: 1 });
    return { provisioner, held, creates: () => creates };
  }
  // As kafkajs parses a CreateTopics answer with a topic error (its KafkaJSCreateTopicError is a KafkaJSProtocolError).
  const brokerSays = (type: string, code: number) => new KafkaJSAggregateError('Topic creation errors', [new KafkaJSProtocolError({ type, code, retriable: true, message: type } as unknown as Error)]);
  const timedOut = () => {
    throw brokerSays('REQUEST_TIMED_OUT', 7);
  };

  it('asks again when the controller timed out and the topic is not there', async () => {
    const c = cluster([timedOut, timedOut]);
    await c.provisioner.ensure(['ionflux.cmd.x.ws_acme']);
    expect(c.creates()).toBe(3);
    expect(c.provisioner.partitionCount('ionflux.cmd.x.ws_acme')).toBe(1);
  });

  it('does not ask again when the timed-out request created the topic after all', async () => {
    const c = cluster([(topic, held) => (held.add(topic), timedOut())]);
    await c.provisioner.ensure(['ionflux.cmd.x.ws_acme']);
    expect(c.creates()).toBe(1);
  });

  it('gives up after five timeouts, and at once on anything else', async () => {
    const always = cluster(Array.from({ length: 5 }, () => timedOut));
    await expect(always.provisioner.ensure(['a.b'])).rejects.toThrow('Topic creation errors');
    expect(always.creates()).toBe(5);
    const invalid = cluster([() => { throw brokerSays('INVALID_REPLICATION_FACTOR', 38); }]);
    await expect(invalid.provisioner.ensure(['a.b'])).rejects.toThrow('Topic creation errors');
    expect(invalid.creates()).toBe(1);
    const refused = cluster([() => { throw brokerSays('TOPIC_AUTHORIZATION_FAILED', 29); }]);
    await expect(refused.provisioner.ensure(['a.b'])).rejects.toMatchObject({ code: 'topic_not_authorized' });
  }, 15_000);
});
