import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import type { Kafka } from 'kafkajs';
import { createKafka } from '../../shared/bus/kafka.ts';
import { KafkaBus } from '../../shared/bus/producer.ts';
import { TopicProvisioner, defaultTopicSpecFor } from '../../shared/bus/provision.ts';
import { headersToStrings, type IncomingRecord } from '../../shared/bus/types.ts';
import { createEventCodec, type EventCodec } from '../../shared/events/codec.ts';
import { createRegistry } from '../../shared/events/registry.ts';
import { createLogger, type Logger } from '../../shared/logger.ts';
import { infraEnv } from '../global-setup.ts';

export { infraEnv };

/** A short unique id for topics, groups and workspaces of one test. */
export const uid = (prefix = 't') => `${prefix}${randomUUID().replace(/-/g, '').slice(0, 12)}`;

/** A logger whose lines are kept in memory, so tests can grep them for secrets. */
export function capturingLogger(service = 'test'): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      cb();
    },
  });
  return { logger: createLogger({ service, level: 'debug', destination }), lines };
}

/** Real Kafka, registry and codec for one test file; `close` releases everything it opened. */
export async function realInfra(service = 'test'): Promise<{
  kafka: Kafka;
  bus: KafkaBus;
  provisioner: TopicProvisioner;
  codec: EventCodec;
  logger: Logger;
  lines: string[];
  registryUrl: string;
  close: () => Promise<void>;
}> {
  const env = infraEnv();
  const { logger, lines } = capturingLogger(service);
  const kafka = createKafka({ brokers: env.brokers, clientId: `test-${service}`, logger });
  const provisioner = new TopicProvisioner(kafka, { partitions: 3, replicationFactor: 1 }, defaultTopicSpecFor);
  const bus = new KafkaBus({ kafka, provisioner, logger });
  const codec = await createEventCodec(createRegistry(env.registryUrl));
  return {
    kafka,
    bus,
    provisioner,
    codec,
    logger,
    lines,
    registryUrl: env.registryUrl,
    close: () => bus.close(),
  };
}

/**
 * Everything in `topic` right now (up to the high watermarks), waiting first until it holds at
 * least `atLeast` records or `timeoutMs` passed. Exact: tests can assert "exactly one".
 */
export async function readAll(kafka: Kafka, topic: string, opts: { atLeast?: number; timeoutMs?: number } = {}): Promise<IncomingRecord[]> {
  const admin = kafka.admin();
  await admin.connect();
  let ends: { partition: number; high: number; low: number }[] = [];
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
  try {
    for (;;) {
      // Asking offsets of a missing topic makes kafkajs retry for ~10 s; ask whether it exists first.
      const exists = (await admin.listTopics()).includes(topic);
      const offsets = exists ? await admin.fetchTopicOffsets(topic) : [];
      ends = offsets.map((o) => ({ partition: o.partition, high: Number(o.high), low: Number(o.low) }));
      const total = ends.reduce((n, e) => n + e.high - e.low, 0);
      if (total >= (opts.atLeast ?? 0) || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await admin.disconnect();
  }
  const wanted = ends.filter((e) => e.high > e.low);
  if (wanted.length === 0) return [];
  const consumer = kafka.consumer({ groupId: uid('reader-'), allowAutoTopicCreation: false, maxWaitTimeInMs: 250 });
  const out: IncomingRecord[] = [];
  const remaining = new Set(wanted.map((e) => e.partition));
  let finished: () => void = () => undefined;
  const done = new Promise<void>((resolve, reject) => {
    finished = resolve;
    setTimeout(() => reject(new Error(`timed out reading ${topic}`)), 20_000).unref();
  });
  // Transactional writes end in commit markers that consumers never see as records: a
  // partition is read to its end when a batch's last offset (markers included) reaches it.
  consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
    const end = wanted.find((e) => e.partition === payload.partition);
    if (end && Number(payload.lastOffset) >= end.high - 1) remaining.delete(payload.partition);
    if (remaining.size === 0) finished();
  });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ topic: t, partition, message }) => {
        const end = wanted.find((e) => e.partition === partition);
        if (!end || Number(message.offset) >= end.high) return;
        out.push({ topic: t, partition, offset: message.offset, key: message.key, value: message.value, headers: headersToStrings(message.headers), timestamp: message.timestamp });
      },
    });
    await done;
  } finally {
    await consumer.disconnect();
  }
  return out.sort((a, b) => a.partition - b.partition || Number(a.offset) - Number(b.offset));
}
