/**
 * bench/llm's floor: the least any kafkajs service can do for the same request, as its own
 * process beside the orchestrator. It consumes JSON commands (keyed by workspace) from
 * BARE_IN, makes the same openai call (through the same lean fetch as the orchestrator's openai
 * clients, shared/net/lean-fetch.ts), and produces a JSON outcome (header `command_id`) to
 * BARE_OUT with an idempotent producer (acks=all), no transaction, no schema, no state, no
 * dedupe, no budget. Every record of a fetched batch runs at once (the driver keeps one command
 * in flight per workspace, so no key has two). Offsets are committed every second in the
 * background, as the hub does: kafkajs's auto-commit would await an OffsetCommit between fetches,
 * which Kafka 4's group coordinator answers only after its 5 ms append linger.
 * It is generous on purpose: the hub cannot be faster than this on the same machine, so the
 * hub's rate next to it shows what is the hub's own cost, and the floor's rate next to the direct
 * call shows what crossing Kafka twice costs on this machine at all.
 * Env: KAFKA_BROKERS (+ SASL), OPENAI_BASE_URL, OPENAI_API_KEY, BARE_IN, BARE_OUT, BARE_GROUP.
 * Prints `ready` on stdout once its consumer joined its group.
 */
import OpenAI from 'openai';
import { createKafka } from '../../shared/bus/kafka/client.ts';
import { baseEnv, kafkaAuth, parseEnv } from '../../shared/config.ts';
import { createLogger } from '../../shared/logger.ts';
import { createLeanFetch } from '../../shared/net/lean-fetch.ts';

const env = process.env;
const kafka = createKafka({ brokers: (env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(','), auth: kafkaAuth(parseEnv(baseEnv)), clientId: 'bench-llm-bare', logger: createLogger({ service: 'bench-llm-bare', level: 'warn' }) });
const openai = new OpenAI({ apiKey: env.OPENAI_API_KEY!, baseURL: env.OPENAI_BASE_URL!, maxRetries: 0, fetch: createLeanFetch() });
const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
const consumer = kafka.consumer({ groupId: env.BARE_GROUP!, maxWaitTimeInMs: 1000 });
await producer.connect();
await consumer.connect();
await consumer.subscribe({ topic: env.BARE_IN!, fromBeginning: true });
consumer.on(consumer.events.GROUP_JOIN, () => process.stdout.write('ready\n'));

type Command = { command_id: string; workspace_id: string; params: { model: string; prompt: string; max_tokens: number } };

const done = new Map<string, { topic: string; partition: number; offset: string }>();
setInterval(() => {
  const offsets = [...done.values()];
  done.clear();
  if (offsets.length) void consumer.commitOffsets(offsets).catch(() => undefined);
}, 1000).unref();

await consumer.run({
  autoCommit: false,
  partitionsConsumedConcurrently: 3,
  eachBatch: async ({ batch }) => {
    const outcomes = await Promise.all(
      batch.messages.map(async (m) => {
        const c = JSON.parse(m.value!.toString()) as Command;
        const res = await openai.chat.completions.create({ model: c.params.model, messages: [{ role: 'user', content: c.params.prompt }], max_tokens: c.params.max_tokens });
        const outcome = { command_id: c.command_id, status: 'succeeded', result: { text: res.choices[0]?.message.content ?? '', usage: res.usage } };
        return { key: c.workspace_id, value: JSON.stringify(outcome), headers: { command_id: c.command_id } };
      }),
    );
    await producer.send({ topic: env.BARE_OUT!, acks: -1, messages: outcomes });
    const next = String(BigInt(batch.lastOffset()) + 1n);
    done.set(`${batch.topic}|${batch.partition}`, { topic: batch.topic, partition: batch.partition, offset: next });
  },
});

const stop = () => void Promise.all([consumer.disconnect(), producer.disconnect()]).finally(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
