/**
 * bench/ingest's design floor: the Kafka work the hub's ingest design (issue 14) has for each
 * delivery, written as plainly as Node and kafkajs allow, with none of the hub's logic. It is to
 * the hub what bare.ts is to the peer: the rate the hub's shape of work reaches here at all.
 *  - The edge (main thread): node:http; the Shopify HMAC of the raw body checked (401 otherwise);
 *    the raw body, keyed by the order id, appended with the headers the hub keeps (topic, shop,
 *    webhook id, received at) to FLOOR_INBOX by an idempotent acks=all producer; 200 once Kafka
 *    acknowledged, 503 when it did not (records arriving during a send go in the next request).
 *  - The processor (a worker thread, as the hub's): a consumer group on the inbox; each fetched
 *    batch of a partition becomes one Kafka transaction, by a transactional producer of that
 *    partition, holding per delivery the event (the raw body, with the hub's three event headers)
 *    on FLOOR_TOPIC, a delivery marker (~90 bytes, keyed by webhook id) and an entity version
 *    (~80 bytes, keyed by the order id) on the compacted FLOOR_STATE, and the batch's offsets
 *    (sendOffsets). A third consumer reads FLOOR_STATE back into a Map (read_committed), as the
 *    hub's tables read their topics.
 * Left out, on purpose: the dedupe and version lookups, the link lookup, the schema check, the
 * Avro encoding, the mapping, the metrics; any of them only adds to the floor.
 * Env: KAFKA_BROKERS (+ SASL), FLOOR_PORT, FLOOR_INBOX, FLOOR_TOPIC, FLOOR_STATE, FLOOR_GROUP,
 * FLOOR_SHOPIFY_SECRET. Prints `ready` once the processor joined its group.
 */
import { isMainThread, parentPort, Worker } from 'node:worker_threads';
import type { Message, Producer } from 'kafkajs';
import { createKafka } from '../../shared/bus/kafka/client.ts';
import { baseEnv, kafkaAuth, parseEnv } from '../../shared/config.ts';
import { createLogger } from '../../shared/logger.ts';
import { floorEdge } from './floor-edge.ts';

const env = process.env;
const kafka = createKafka({ brokers: (env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(','), auth: kafkaAuth(parseEnv(baseEnv)), clientId: 'bench-ingest-design-floor', logger: createLogger({ service: 'bench-ingest-design-floor', level: 'warn' }) });

if (isMainThread) await edge();
else await processor();

async function edge(): Promise<void> {
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  await producer.connect();
  const server = floorEdge({
    producer,
    topic: env.FLOOR_INBOX!,
    secret: env.FLOOR_SHOPIFY_SECRET!,
    headers: (req) => {
      const h = (name: string) => String(req.headers[name] ?? '');
      return { 'x-shopify-topic': h('x-shopify-topic'), 'x-shopify-shop-domain': h('x-shopify-shop-domain'), 'x-shopify-webhook-id': h('x-shopify-webhook-id'), 'received-at': String(Date.now()) };
    },
  });
  // The processor thread loads TypeScript as this one does (tsx registers its loader per thread).
  const boot = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((tsx) => { tsx.register(); return import(${JSON.stringify(import.meta.url)}); })`;
  const worker = new Worker(boot, { eval: true });
  await new Promise<void>((resolve, reject) => {
    worker.once('message', () => resolve());
    worker.once('error', reject);
  });
  server.listen(Number(env.FLOOR_PORT), '127.0.0.1', () => process.stdout.write('ready\n'));
  // The processor leaves its groups before the process ends, so the bench can delete them.
  const stopped = new Promise<void>((resolve) => {
    worker.on('message', (m) => m === 'stopped' && resolve());
    worker.once('exit', () => resolve());
  });
  const stop = () =>
    server.close(() => {
      worker.postMessage('stop');
      const late = new Promise((r) => setTimeout(r, 15_000).unref());
      void Promise.all([producer.disconnect(), Promise.race([stopped, late])]).finally(() => process.exit(0));
    });
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

async function processor(): Promise<void> {
  const group = env.FLOOR_GROUP!;
  const inbox = env.FLOOR_INBOX!;
  const producers = new Map<number, Promise<Producer>>();
  const producerOf = (partition: number) => {
    let p = producers.get(partition);
    if (!p) {
      const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, transactionalId: `${group}-${partition}`, allowAutoTopicCreation: false });
      producers.set(partition, (p = producer.connect().then(() => producer)));
    }
    return p;
  };
  // The state read back, as the hub's tables do.
  const state = new Map<string, Buffer>();
  const reader = kafka.consumer({ groupId: `${group}-state`, maxWaitTimeInMs: 100, readUncommitted: false });
  await reader.connect();
  await reader.subscribe({ topic: env.FLOOR_STATE!, fromBeginning: false });
  await reader.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      if (state.size > 500_000) state.clear();
      for (const m of batch.messages) if (m.key && m.value) state.set(m.key.toString(), m.value);
    },
  });

  const consumer = kafka.consumer({ groupId: group, maxWaitTimeInMs: 100, sessionTimeout: 10_000, heartbeatInterval: 1000 });
  await consumer.connect();
  await consumer.subscribe({ topic: inbox, fromBeginning: true });
  consumer.on(consumer.events.GROUP_JOIN, () => parentPort!.postMessage('ready'));
  parentPort!.on('message', (m) => {
    if (m !== 'stop') return;
    void Promise.allSettled([consumer.disconnect(), reader.disconnect()])
      .then(() => Promise.allSettled([...producers.values()].map(async (p) => (await p).disconnect())))
      .finally(() => parentPort!.postMessage('stopped'));
  });
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    partitionsConsumedConcurrently: 64,
    eachBatch: async ({ batch, resolveOffset }) => {
      if (batch.messages.length === 0) return;
      const events: Message[] = [];
      const states: Message[] = [];
      for (const m of batch.messages) {
        const id = String(m.headers?.['x-shopify-webhook-id'] ?? '');
        const order = m.key!.toString();
        const at = new Date().toISOString();
        events.push({ key: m.key, value: m.value, headers: { 'ionflux.event_id': id, 'ionflux.event_type': 'shopify.orders.created', 'ionflux.workspace_id': 'bench' } });
        states.push({ key: `d:${id}`, value: Buffer.from(JSON.stringify({ status: 'published', event_id: id, at })) });
        states.push({ key: `v:${order}`, value: Buffer.from(JSON.stringify({ version: at, event_id: id })) });
      }
      const txn = await (await producerOf(batch.partition)).transaction();
      try {
        await txn.sendBatch({ acks: -1, topicMessages: [{ topic: env.FLOOR_TOPIC!, messages: events }, { topic: env.FLOOR_STATE!, messages: states }] });
        await txn.sendOffsets({ consumerGroupId: group, topics: [{ topic: inbox, partitions: [{ partition: batch.partition, offset: String(BigInt(batch.lastOffset()) + 1n) }] }] });
        await txn.commit();
      } catch (e) {
        await txn.abort().catch(() => undefined);
        throw e;
      }
      resolveOffset(batch.lastOffset());
    },
  });
}
