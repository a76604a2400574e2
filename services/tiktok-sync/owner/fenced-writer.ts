import type { Kafka, Producer, TopicMessages } from 'kafkajs';
import type { KafkaBus } from '../../../shared/bus/producer.ts';
import type { OutgoingRecord } from '../../../shared/bus/types.ts';
import { HubError } from '../../../shared/errors.ts';
import type { Logger } from '../../../shared/logger.ts';

/** A record and, when it must not follow its key's hash, the partition it goes to. */
export interface Placed {
  record: OutgoingRecord;
  partition?: number;
}

const FENCED = new Set(['INVALID_PRODUCER_EPOCH', 'PRODUCER_FENCED', 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED', 'INVALID_PRODUCER_ID_MAPPING']);

/**
 * The only producer allowed to write for one partition of the connections topic: its
 * transactional id is `<prefix>-<partition>`, so connecting it fences the previous owner's (Kafka
 * aborts what that one left open and refuses its later commits). Every write that claims or
 * records work goes through here in a transaction; once fenced, the writer is dead and says so.
 */
export class FencedWriter {
  private producer: Producer;
  private chain: Promise<unknown> = Promise.resolve();
  dead = false;

  constructor(private readonly o: { kafka: Kafka; bus: KafkaBus; logger: Logger; transactionalId: string }) {
    this.producer = this.newProducer();
  }

  private newProducer(): Producer {
    return this.o.kafka.producer({ transactionalId: this.o.transactionalId, idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false, transactionTimeout: 30_000, retry: { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 5, maxRetryTime: 1000 } });
  }

  /** Initializes the transactional id: from here on, the previous holder's writes fail. */
  async connect(): Promise<void> {
    await this.producer.connect();
  }

  /** Sends the records in one transaction, one transaction at a time. Throws `ownership_lost` once fenced. */
  send(placed: Placed[]): Promise<void> {
    const run = this.chain.then(() => this.sendNow(placed));
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async sendNow(placed: Placed[]): Promise<void> {
    if (this.dead) throw new HubError('ownership_lost', `${this.o.transactionalId} was fenced by another instance`);
    const { topicMessages } = await this.o.bus.requestOf(placed.map((p) => p.record));
    // requestOf placed each record by its key; move the ones with an explicit partition.
    const byTopic = new Map(topicMessages.map((t) => [t.topic, t]));
    const seen = new Map<string, number>();
    for (const p of placed) {
      const t = byTopic.get(p.record.topic)!;
      const idx = seen.get(t.topic) ?? 0;
      seen.set(t.topic, idx + 1);
      if (p.partition !== undefined) t.messages[idx]!.partition = p.partition;
    }
    const txn = await this.producer.transaction();
    try {
      await txn.sendBatch({ topicMessages: topicMessages as TopicMessages[], acks: -1 });
      await txn.commit();
    } catch (e) {
      const type = (e as { type?: string }).type ?? '';
      if (FENCED.has(type) || /fenced|epoch/i.test((e as Error).message)) {
        this.dead = true;
        await this.producer.disconnect().catch(() => undefined);
        throw new HubError('ownership_lost', `${this.o.transactionalId} was fenced by another instance`, { cause: e });
      }
      await txn.abort().catch(async () => {
        // The producer is unusable (broker gone mid-transaction): a new one with the same id.
        await this.producer.disconnect().catch(() => undefined);
        this.producer = this.newProducer();
        await this.producer.connect();
      });
      throw new HubError('publish_failed', `transaction of ${this.o.transactionalId} failed: ${(e as Error).message}`, { retryable: true, cause: e });
    }
  }

  async close(): Promise<void> {
    this.dead = true;
    await this.chain;
    await this.producer.disconnect().catch(() => undefined);
  }
}
