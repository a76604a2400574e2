import type { Admin, Kafka } from 'kafkajs';
import type { KafkaAuth } from '../../config.ts';
import { withDeadline } from '../../deadline.ts';
import { HubError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import type { Bus, IncomingRecord, OutgoingRecord, Ownership, OwnershipOptions, PartitionOffsets, PublishOptions, PublishOutcome, Reader, ReadOptions, RecordAck, SubscribeOptions, Subscription, TransformOptions } from '../types.ts';
import { createKafka, type SocketFactory } from './client.ts';
import { runConsumer } from './consumer.ts';
import { OffsetsClient } from './offsets.ts';
import { KafkaProducer } from './producer.ts';
import { defaultTopicSpecFor, TopicProvisioner, type TopicSpec } from './provision.ts';
import { startOwnership } from './ownership.ts';
import { startReader } from './reader.ts';
import { startTransform } from './transform.ts';

export interface KafkaBusOptions {
  kafka: Kafka;
  logger: Logger;
  /** Partitions and replication of the topics the bus creates (default 3 and 1). */
  topicDefaults?: TopicSpec;
  /** Shares one provisioner (and its cache of known topics) between buses of one process. */
  provisioner?: TopicProvisioner;
  /** See ProducerOptions: with an id, every produce request is one Kafka transaction. */
  transactionalId?: string;
  lanes?: number;
  maxBatch?: number;
  /**
   * Readers join throwaway consumer groups named `<prefix><uuid>`. Under SASL a principal may
   * join only groups under its own prefix (`<principal>.`), so nobody can join another's readers.
   */
  readerGroupPrefix?: string;
}

/** The prefix of a principal's throwaway reader groups (see KafkaBusOptions.readerGroupPrefix). */
export function readerGroupPrefix(auth: KafkaAuth | undefined): string {
  return auth?.sasl ? `${auth.sasl.username}.reader-` : 'ionflux-reader-';
}

/** The Bus on Kafka (kafkajs): the only place outside this folder's files that knows kafkajs. */
export class KafkaBus implements Bus {
  private readonly producer: KafkaProducer;
  private readonly provisioner: TopicProvisioner;
  private readonly offsetsClient: OffsetsClient;
  private readonly open = new Set<{ stop?: () => Promise<void>; close?: () => Promise<void> }>();
  private admin: Promise<Admin> | undefined;
  private cluster: Promise<string> | undefined;
  private readonly logger: Logger;

  constructor(private readonly opts: KafkaBusOptions) {
    this.logger = opts.logger;
    this.provisioner = opts.provisioner ?? new TopicProvisioner(opts.kafka, opts.topicDefaults ?? { partitions: 3, replicationFactor: 1 }, defaultTopicSpecFor);
    this.producer = new KafkaProducer({ kafka: opts.kafka, provisioner: this.provisioner, logger: opts.logger, transactionalId: opts.transactionalId, lanes: opts.lanes, maxBatch: opts.maxBatch });
    this.offsetsClient = new OffsetsClient(opts.kafka);
  }

  /** Connects the producers now instead of at the first publish. */
  connect(): Promise<void> {
    return this.producer.connect();
  }

  publish(record: OutgoingRecord, opts?: PublishOptions): Promise<RecordAck> {
    return this.producer.publish(record, opts);
  }

  publishAtomic(records: OutgoingRecord[], opts?: PublishOptions): Promise<RecordAck[]> {
    return this.producer.publishAtomic(records, opts);
  }

  publishBatch(records: OutgoingRecord[], opts?: PublishOptions): Promise<PublishOutcome[]> {
    return this.producer.publishBatch(records, opts);
  }

  async subscribe(opts: SubscribeOptions): Promise<Subscription> {
    const sub = await runConsumer(this.opts.kafka, { publish: (r) => this.publish(r), listTopics: () => this.listTopics(), logger: this.logger }, opts);
    return this.track({ stop: () => sub.stop() });
  }

  async transform(opts: TransformOptions): Promise<Subscription> {
    const sub = await startTransform({ kafka: this.opts.kafka, logger: this.logger, requestOf: (r) => this.producer.requestOf(r) }, opts);
    return this.track({ stop: () => sub.stop() });
  }

  async own<V>(opts: OwnershipOptions<V>): Promise<Ownership> {
    const ownership = await startOwnership({ kafka: this.opts.kafka, logger: this.logger, requestOf: (r) => this.producer.requestOf(r), offsets: (t) => this.offsets(t) }, opts);
    return this.track({ stop: () => ownership.stop() });
  }

  async read(opts: ReadOptions): Promise<Reader> {
    const reader = await startReader({ kafka: this.opts.kafka, logger: this.logger, groupPrefix: this.opts.readerGroupPrefix, offsets: (t) => this.offsets(t), listTopics: () => this.listTopics() }, opts);
    const tracked = this.track({ close: () => reader.close() });
    return { caughtUp: reader.caughtUp, close: () => tracked.close() };
  }

  async readToEnd(topic: string, opts: { timeoutMs?: number } = {}): Promise<IncomingRecord[]> {
    const ends = new Map((await this.offsets(topic)).map((e) => [e.partition, BigInt(e.high)]));
    if (![...ends.values()].some((high) => high > 0n)) return [];
    const out: IncomingRecord[] = [];
    const reached = new Map<number, string>();
    const reader = await this.read({
      topic,
      from: 'beginning',
      onBatch: (b) => {
        reached.set(b.partition, b.next);
        for (const r of b.records) if (BigInt(r.offset) < (ends.get(r.partition) ?? 0n)) out.push(r);
      },
    });
    const timeoutMs = opts.timeoutMs ?? 30_000;
    // Where each partition stands against its end: a partition stuck below it waits on an open transaction.
    const progress = () => [...ends].filter(([, high]) => high > 0n).map(([p, high]) => `${p}: ${reached.get(p) ?? 'nothing'} of ${high}`).join(', ');
    try {
      await withDeadline(reader.caughtUp, timeoutMs, () => new HubError('read_timeout', `${topic} was not read to its end within ${timeoutMs} ms (partition: read to / end: ${progress()})`, { retryable: true }));
    } finally {
      await reader.close();
    }
    return out.sort((a, b) => a.partition - b.partition || Number(BigInt(a.offset) - BigInt(b.offset)));
  }

  offsets(topic: string): Promise<PartitionOffsets[]> {
    return this.offsetsClient.offsets(topic, async (t) => (await this.listTopics()).includes(t));
  }

  async listTopics(): Promise<string[]> {
    return (await this.adminClient()).listTopics();
  }

  ensureTopics(topics: Iterable<string>): Promise<void> {
    return this.provisioner.ensure(topics);
  }

  async clusterId(): Promise<string> {
    return (this.cluster ??= this.adminClient().then((a) => a.describeCluster()).then((c) => c.clusterId)).catch((e: unknown) => {
      this.cluster = undefined;
      throw e;
    });
  }

  async healthy(): Promise<boolean> {
    try {
      await (await this.adminClient()).describeCluster();
      return true;
    } catch {
      this.admin = undefined;
      return false;
    }
  }

  async close(): Promise<void> {
    // Consumers first (they may still dead-letter through the producer), then the producer.
    await Promise.all([...this.open].map((c) => (c.stop ?? c.close)!().catch((e: unknown) => this.logger.warn({ err: e }, 'closing a consumer failed'))));
    await this.producer.close();
    await this.offsetsClient.close();
    if (!this.opts.provisioner) await this.provisioner.close();
    const admin = this.admin;
    this.admin = undefined;
    await admin?.then((a) => a.disconnect()).catch(() => undefined);
  }

  /** Remembers what must be closed with the bus; closing it by hand forgets it. */
  private track<T extends { stop?: () => Promise<void>; close?: () => Promise<void> }>(c: T): T {
    this.open.add(c);
    const done = (fn?: () => Promise<void>) => fn && (() => (this.open.delete(c), fn()));
    return { ...c, stop: done(c.stop), close: done(c.close) };
  }

  private adminClient(): Promise<Admin> {
    this.admin ??= (async () => {
      const admin = this.opts.kafka.admin({ retry: { retries: 2 } });
      await admin.connect();
      return admin;
    })().catch((e: unknown) => {
      this.admin = undefined;
      throw e;
    });
    return this.admin;
  }
}

/** A KafkaBus with its own kafkajs client. */
export function createKafkaBus(o: Omit<KafkaBusOptions, 'kafka'> & { brokers: string[]; clientId: string; auth?: KafkaAuth; connectionTimeoutMs?: number; socketFactory?: SocketFactory }): KafkaBus {
  const kafka = createKafka({ brokers: o.brokers, clientId: o.clientId, logger: o.logger, auth: o.auth, connectionTimeoutMs: o.connectionTimeoutMs, socketFactory: o.socketFactory });
  return new KafkaBus({ readerGroupPrefix: readerGroupPrefix(o.auth), ...o, kafka });
}
