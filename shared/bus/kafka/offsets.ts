import type { Kafka } from 'kafkajs';
import type { PartitionOffsets } from '../types.ts';
import { createCluster, type Cluster } from './cluster.ts';

const READ_UNCOMMITTED = 0;

/**
 * Low and high watermarks, the high one as Kafka's high watermark. kafkajs's admin lists offsets
 * READ_COMMITTED, which answers the last stable offset instead: right after a transaction's
 * commit is acknowledged its markers may still be on their way, so that offset can sit before
 * records that are already acknowledged, and a reader stopping there misses them (the
 * "597 of 600" flake of the lanes test). kafkajs builds its clients on a Cluster created with an
 * isolation level; the admin never passes one, so this asks for a READ_UNCOMMITTED one.
 */
export class OffsetsClient {
  private cluster: Cluster | undefined;
  private connected: Promise<void> | undefined;

  constructor(private readonly kafka: Kafka) {}

  private async ready(): Promise<Cluster> {
    if (!this.cluster) {
      this.cluster = createCluster(this.kafka, { allowAutoTopicCreation: false, isolationLevel: READ_UNCOMMITTED });
    }
    const cluster = this.cluster;
    this.connected ??= cluster.connect().catch((e: unknown) => {
      this.connected = undefined;
      throw e;
    });
    await this.connected;
    return cluster;
  }

  /** [] for a topic that does not exist (kafkajs would otherwise retry it for seconds). */
  async offsets(topic: string, exists: (topic: string) => Promise<boolean>): Promise<PartitionOffsets[]> {
    if (!(await exists(topic))) return [];
    const cluster = await this.ready();
    for (let attempt = 1; ; attempt++) {
      try {
        await cluster.addTargetTopic(topic);
        await cluster.refreshMetadataIfNecessary();
        const partitions = cluster.findTopicPartitionMetadata(topic).map((p) => ({ partition: p.partitionId }));
        const [[high], [low]] = await Promise.all([
          cluster.fetchTopicsOffset([{ topic, fromBeginning: false, partitions }]),
          cluster.fetchTopicsOffset([{ topic, fromBeginning: true, partitions }]),
        ]);
        const lows = new Map(low!.partitions.map((p) => [p.partition, p.offset]));
        return high!.partitions.map((p) => ({ partition: p.partition, low: lows.get(p.partition) ?? '0', high: p.offset })).sort((a, b) => a.partition - b.partition);
      } catch (e) {
        // A topic created a moment ago may have no leader yet; metadata catches up within a second.
        if (attempt >= 10) throw e;
        await cluster.refreshMetadata().catch(() => undefined);
        await new Promise((r) => setTimeout(r, 100 * attempt));
      }
    }
  }

  async close(): Promise<void> {
    if (this.connected) await this.cluster?.disconnect();
    this.connected = undefined;
  }
}
