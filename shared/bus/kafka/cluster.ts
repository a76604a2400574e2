import type { Kafka } from 'kafkajs';

/** The parts of kafkajs's internal Cluster (and its brokers) used in this folder. */
export interface Cluster {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  addTargetTopic(topic: string): Promise<void>;
  refreshMetadata(): Promise<void>;
  refreshMetadataIfNecessary(): Promise<void>;
  findTopicPartitionMetadata(topic: string): { partitionId: number }[];
  fetchTopicsOffset(q: { topic: string; fromBeginning: boolean; partitions: { partition: number }[] }[]): Promise<{ topic: string; partitions: { partition: number; offset: string }[] }[]>;
  findControllerBroker(): Promise<{ connectionPool: { send(request: RawRequest): Promise<unknown> } }>;
}

/** A protocol request kafkajs's connection can send: it writes the v1 header, then `encode()`'s bytes. */
export interface RawRequest {
  request: { apiKey: number; apiVersion: number; apiName: string; encode: () => Promise<{ buf: Buffer; buffer: Buffer }> };
  response: { decode: (payload: Buffer) => Promise<unknown>; parse: (decoded: unknown) => Promise<unknown> };
}

/**
 * A kafkajs Cluster built from the client's own settings (brokers, SASL, TLS). Kafka keeps its
 * cluster factory under a private symbol; it is the one function-valued one (looked up along the
 * prototype chain, so a wrapped client works too).
 */
export function createCluster(kafka: Kafka, opts: Record<string, unknown>): Cluster {
  const symbols: symbol[] = [];
  for (let o: object | null = kafka; o && o !== Object.prototype; o = Object.getPrototypeOf(o) as object | null) symbols.push(...Object.getOwnPropertySymbols(o));
  const create = symbols.map((s) => (kafka as unknown as Record<symbol, unknown>)[s]).find((v): v is (o: object) => Cluster => typeof v === 'function');
  if (!create) throw new Error('kafkajs changed: no cluster factory on the client');
  return create(opts);
}
