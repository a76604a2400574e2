import type { Admin, ITopicConfig, Kafka } from 'kafkajs';
import { HubError } from '../../errors.ts';
import { isCommandOutcomesTopic, workspaceOfCommandTopic } from '../topics.ts';

export interface TopicSpec {
  partitions: number;
  replicationFactor: number;
  configs?: Record<string, string>;
}

/** How often a CreateTopics that timed out is asked again, and the wait before the n-th retry (n times this). */
const CREATE_ATTEMPTS = 5;
const CREATE_RETRY_MS = 250;

/** Per-topic overrides: compacted stores, longer retention for dead letters. */
export type TopicSpecFor = (topic: string) => Partial<TopicSpec> | undefined;

/**
 * Creates topics with explicit partitions and replication (broker auto-create is off) and
 * remembers which exist, so publishing to a new workspace topic costs one admin call once.
 */
export class TopicProvisioner {
  /** topic -> partition count, for every topic known to exist. */
  private readonly known = new Map<string, number>();
  private readonly pending = new Map<string, Promise<void>>();
  private admin: Admin | undefined;

  constructor(
    private readonly kafka: Kafka,
    readonly defaults: TopicSpec,
    private readonly specFor: TopicSpecFor = () => undefined,
  ) {}

  async ensure(topicNames: Iterable<string>): Promise<void> {
    const missing = [...new Set(topicNames)].filter((t) => !this.known.has(t));
    if (missing.length === 0) return;
    await Promise.all(missing.map((t) => this.ensureOne(t)));
  }

  private ensureOne(topic: string): Promise<void> {
    let p = this.pending.get(topic);
    if (!p) {
      p = this.create(topic).finally(() => this.pending.delete(topic));
      this.pending.set(topic, p);
    }
    return p;
  }

  private async create(topic: string): Promise<void> {
    if (!this.admin) {
      this.admin = this.kafka.admin();
      await this.admin.connect();
    }
    const spec = { ...this.defaults, ...this.specFor(topic) };
    const config: ITopicConfig = {
      topic,
      numPartitions: spec.partitions,
      replicationFactor: spec.replicationFactor,
      configEntries: Object.entries(spec.configs ?? {}).map(([name, value]) => ({ name, value })),
    };
    for (let attempt = 1; ; attempt++) {
      // Ask first: creating an existing topic works but makes kafkajs log an error.
      if ((await this.admin.listTopics()).includes(topic)) break;
      try {
        await this.admin.createTopics({ topics: [config], waitForLeaders: false });
        break;
      } catch (e) {
        const types = [(e as { type?: string }).type, ...((e as { errors?: { type?: string }[] }).errors ?? []).map((x) => x.type)];
        // Not visible to this principal and not creatable by it: the broker's ACLs keep it out.
        if (types.some((t) => t === 'TOPIC_AUTHORIZATION_FAILED' || t === 'CLUSTER_AUTHORIZATION_FAILED')) {
          throw new HubError('topic_not_authorized', `not authorized to use topic ${topic} (refused by the broker's ACLs)`, { cause: e });
        }
        if (types.includes('TOPIC_ALREADY_EXISTS')) break;
        // A busy controller answers REQUEST_TIMED_OUT (or the request times out) and may still
        // create the topic: kafkajs does not retry that. Look again, and ask again if it is not there.
        const timedOut = types.includes('REQUEST_TIMED_OUT') || (e as Error).name === 'KafkaJSRequestTimeoutError';
        if (!timedOut || attempt >= CREATE_ATTEMPTS) throw e;
        await new Promise((r) => setTimeout(r, CREATE_RETRY_MS * attempt));
      }
    }
    this.known.set(topic, await this.withLeaders(topic));
  }

  /**
   * Waits until every partition of a topic has a leader; returns how many it has. kafkajs's own
   * `waitForLeaders` gives up with UNKNOWN_TOPIC_OR_PARTITION when a broker that just started
   * has not yet spread the new topic's metadata (seen on the first topics of a fresh test broker).
   */
  private async withLeaders(topic: string): Promise<number> {
    for (let attempt = 1; ; attempt++) {
      try {
        const meta = await this.admin!.fetchTopicMetadata({ topics: [topic] });
        const partitions = meta.topics[0]?.partitions ?? [];
        if (partitions.length > 0 && partitions.every((p) => p.leader >= 0)) return partitions.length;
      } catch (e) {
        if (attempt >= 50) throw e;
      }
      if (attempt >= 50) throw new Error(`topic ${topic} has no leader for every partition after 10 s`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** The partition count of a topic that `ensure` has seen. */
  partitionCount(topic: string): number {
    const n = this.known.get(topic);
    if (n === undefined) throw new Error(`topic ${topic} was not provisioned`);
    return n;
  }

  async close(): Promise<void> {
    await this.admin?.disconnect();
    this.admin = undefined;
  }
}

const DAY = 24 * 3600 * 1000;
// Stores of delivery ids and of email send units only need to outlive their dedupe windows.
// The dlq replay ledger (services/cli/dlq-guard.ts) must outlive the dead letters it guards: a
// dead letter stays on its ionflux.dlq.* topic for the topic's 30 days plus up to a segment's
// roll (the broker deletes whole segments; log.roll.hours, 7 days), and its entry is written
// when it is replayed, never before it was dead-lettered.
const STATE_RETENTION_MS: Record<string, number> = { 'ionflux.state.webhook-deliveries': 7 * DAY, 'ionflux.state.email-units': 7 * DAY, 'ionflux.state.dlq-replays': (30 + 7) * DAY };

/** Dead letters are kept longer than events so an admin has time to replay them. */
export const defaultTopicSpecFor: TopicSpecFor = (topic): Partial<TopicSpec> | undefined => {
  // Commands are kept as long as the workers' dedupe window (DEFAULT_DEDUPE_WINDOW_MS), timestamped
  // by the broker, so a record's age cannot be set by whoever wrote it.
  // A workspace's command topic and its command outcomes are keyed by the workspace, so only one
  // partition of each is ever written: they get one. Every fetch of a worker (or of a client
  // awaiting outcomes) lists each partition of every workspace's topic, and the broker
  // authorizes and reads each of them, empty or not.
  const oneWorkspace = workspaceOfCommandTopic(topic) !== null || isCommandOutcomesTopic(topic) ? { partitions: 1 } : {};
  if (topic.startsWith('ionflux.cmd.')) return { ...oneWorkspace, configs: { 'retention.ms': String(7 * DAY), 'message.timestamp.type': 'LogAppendTime' } };
  if (oneWorkspace.partitions) return oneWorkspace;
  // The ingest inbox holds deliveries until processed; a week covers any processor outage.
  if (topic.startsWith('ionflux.inbox.')) return { configs: { 'retention.ms': String(7 * DAY) } };
  if (topic.startsWith('ionflux.dlq.')) return { configs: { 'retention.ms': String(30 * 24 * 3600 * 1000) } };
  // Hub state (links, dedupe markers, completed commands): latest value per key. Stores of
  // delivery ids only need to outlive the vendors' retry windows, so they also expire.
  // A separate inbox's markers (`ionflux.state.webhook-deliveries-<inbox>`) expire like the hub's.
  const window = STATE_RETENTION_MS[topic] ?? (topic.startsWith('ionflux.state.webhook-deliveries-') ? STATE_RETENTION_MS['ionflux.state.webhook-deliveries'] : undefined);
  if (window) return { configs: { 'cleanup.policy': 'compact,delete', 'retention.ms': String(window), 'min.compaction.lag.ms': '60000' } };
  if (topic.startsWith('ionflux.state.')) return { configs: { 'cleanup.policy': 'compact', 'min.compaction.lag.ms': '60000' } };
  return undefined;
};
