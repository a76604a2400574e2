/**
 * The yardstick of `make bench-commands`: a bare kafkajs relay, "a Kafka round trip with no hub
 * logic". Consumes RELAY_IN with eachBatch and produces every record unchanged (key, value,
 * headers) to RELAY_OUT with acks=all from an idempotent producer, committing the consumed offsets.
 *
 *   RELAY_MODE=plain (default)  idempotent producer; offsets auto-committed every second, as the
 *                               hub's consumer runner does (shared/bus/consumer.ts)
 *   RELAY_MODE=txn              the exactly-once shape the hub has: every batch is one Kafka
 *                               transaction holding the produced records and the consumed offsets
 *                               (sendOffsets), read by read_committed consumers
 *   RELAY_MODE=floor            the Kafka traffic of the hub's worker for a read-only command, with
 *                               none of its logic: per command an outcome record (276 bytes and
 *                               the hub's 4 headers) to RELAY_OUT.<key> and a state record (336
 *                               bytes, keyed <key>:<command_id>) to the compacted RELAY_STATE, in
 *                               one idempotent acks=all request per batch; a second consumer reads
 *                               the state topic back into a Map, in fetches of up to 1 MB or 500 ms
 *                               as the worker's table does (OWNERS_TABLE_FETCH; its LMDB store
 *                               left out); offsets auto-committed by kafkajs every 500 ms
 *                               (the worker commits at that interval too, but in the background).
 *                               The sizes are the hub's records' in this bench.
 * Env: RELAY_IN, RELAY_OUT, RELAY_GROUP, RELAY_CONCURRENCY (partitionsConsumedConcurrently; default
 * 3 = the partitions for plain, 1 for txn: a producer has one open transaction at a time, as in
 * the hub's runner), KAFKA_BROKERS. The producer retries as KafkaBus's does (100 ms initial). Prints "relay ready" on stdout once it joined its group.
 */
import { Kafka, logLevel, type EachBatchPayload, type Message } from 'kafkajs';

const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
const IN = need('RELAY_IN');
const OUT = need('RELAY_OUT');
const GROUP = need('RELAY_GROUP');
const MODE = process.env.RELAY_MODE === 'txn' || process.env.RELAY_MODE === 'floor' ? process.env.RELAY_MODE : 'plain';
const CONCURRENCY = Number(process.env.RELAY_CONCURRENCY ?? (MODE === 'txn' ? 1 : 3));
const STATE = MODE === 'floor' ? need('RELAY_STATE') : '';

function need(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is required`);
  return v;
}

process.env.KAFKAJS_NO_PARTITIONER_WARNING ??= '1';
const kafka = new Kafka({ brokers, clientId: `bench-relay-${MODE}`, logLevel: logLevel.WARN, connectionTimeout: 1000, requestTimeout: 10_000, ...(process.env.KAFKA_SASL_USERNAME ? { sasl: { mechanism: 'scram-sha-256' as const, username: process.env.KAFKA_SASL_USERNAME, password: process.env.KAFKA_SASL_PASSWORD ?? '' } } : {}) });
const producer = kafka.producer({
  idempotent: true,
  maxInFlightRequests: 1,
  allowAutoTopicCreation: false,
  retry: { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 100, maxRetryTime: 1000 },
  ...(MODE === 'txn' ? { transactionalId: `${GROUP}-txn` } : {}),
});
// The same consumer settings as the hub's runner (shared/bus/consumer.ts).
const consumer = kafka.consumer({ groupId: GROUP, allowAutoTopicCreation: false, sessionTimeout: 10_000, heartbeatInterval: 1000, maxWaitTimeInMs: 1000 });

async function relayPlain({ batch, resolveOffset, heartbeat }: EachBatchPayload): Promise<void> {
  if (batch.messages.length === 0) return;
  await producer.send({ topic: OUT, acks: -1, messages: batch.messages.map((m) => ({ key: m.key, value: m.value, headers: m.headers })) });
  resolveOffset(batch.lastOffset());
  await heartbeat();
}

// floor: bytes of the hub's records' sizes (outcome event 276, state 336 with the command's 128 in each).
const OUTCOME_PAD = Buffer.alloc(276 - 128, 'o');
const STATE_PAD = Buffer.alloc(336 - 128, 's');
async function relayFloor({ batch, resolveOffset, heartbeat }: EachBatchPayload): Promise<void> {
  if (batch.messages.length === 0) return;
  const outcomes = new Map<string, Message[]>();
  const states: Message[] = [];
  for (const m of batch.messages) {
    const key = m.key?.toString() ?? '';
    const id = String(m.headers?.command_id ?? '');
    const list = outcomes.get(key) ?? [];
    list.push({ key: m.key, value: Buffer.concat([OUTCOME_PAD, m.value ?? Buffer.alloc(0)]), headers: { 'ionflux.event_id': id, 'ionflux.event_type': 'noop.command.succeeded', 'ionflux.workspace_id': key, command_id: id } });
    outcomes.set(key, list);
    states.push({ key: `${key}:${id}`, value: Buffer.concat([STATE_PAD, m.value ?? Buffer.alloc(0)]) });
  }
  await producer.sendBatch({ acks: -1, topicMessages: [...[...outcomes].map(([key, messages]) => ({ topic: `${OUT}.${key}`, messages })), { topic: STATE, messages: states }] });
  resolveOffset(batch.lastOffset());
  await heartbeat();
}

/** floor: the worker's table reads its state topic back (from the end: this run's records). */
const readBack = new Map<string, Buffer>();
async function startStateReader(): Promise<void> {
  const reader = kafka.consumer({ groupId: `${GROUP}-state`, allowAutoTopicCreation: false, sessionTimeout: 10_000, heartbeatInterval: 1000, minBytes: 1 << 20, maxWaitTimeInMs: 500, readUncommitted: false });
  await reader.connect();
  await reader.subscribe({ topic: STATE, fromBeginning: false });
  await reader.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      if (readBack.size > 200_000) readBack.clear();
      for (const m of batch.messages) if (m.key && m.value) readBack.set(m.key.toString(), m.value);
    },
  });
}

async function relayTxn({ batch, resolveOffset, heartbeat }: EachBatchPayload): Promise<void> {
  if (batch.messages.length === 0) return;
  const txn = await producer.transaction();
  try {
    await txn.send({ topic: OUT, acks: -1, messages: batch.messages.map((m) => ({ key: m.key, value: m.value, headers: m.headers })) });
    await txn.sendOffsets({ consumerGroupId: GROUP, topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset: String(Number(batch.lastOffset()) + 1) }] }] });
    await txn.commit();
  } catch (e) {
    await txn.abort().catch(() => undefined);
    throw e;
  }
  resolveOffset(batch.lastOffset());
  await heartbeat();
}

await producer.connect();
if (MODE === 'floor') await startStateReader();
await consumer.connect();
await consumer.subscribe({ topic: IN, fromBeginning: true });
consumer.on(consumer.events.GROUP_JOIN, () => process.stdout.write('relay ready\n'));
await consumer.run({
  partitionsConsumedConcurrently: CONCURRENCY,
  eachBatchAutoResolve: false,
  // txn: offsets travel inside the transaction; plain: committed every second; floor: every 500 ms (the hub's interval).
  autoCommit: MODE !== 'txn',
  autoCommitInterval: MODE === 'floor' ? 500 : 1000,
  eachBatch: MODE === 'txn' ? relayTxn : MODE === 'floor' ? relayFloor : relayPlain,
});

let stopping = false;
const stop = async () => {
  if (stopping) process.exit(130);
  stopping = true;
  await consumer.disconnect().catch(() => undefined);
  await producer.disconnect().catch(() => undefined);
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
