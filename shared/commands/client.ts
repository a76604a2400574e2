import { randomUUID } from 'node:crypto';
import type { Consumer } from 'kafkajs';
import { createKafka } from '../bus/kafka.ts';
import { KafkaBus } from '../bus/producer.ts';
import { TopicProvisioner, defaultTopicSpecFor } from '../bus/provision.ts';
import { topicPattern, topics } from '../bus/topics.ts';
import { HubError } from '../errors.ts';
import { createEventCodec, type EventCodec } from '../events/codec.ts';
import type { PlatformEvent } from '../events/platform-event.ts';
import { createRegistry } from '../events/registry.ts';
import { createLogger, type Logger } from '../logger.ts';
import { encodeCommandJson, type CommandInput } from './envelope.ts';
import { outcomeTopic, type OutcomePayload } from './outcome.ts';

export interface Outcome extends OutcomePayload {
  event: PlatformEvent;
}

export interface HubClient {
  /** Sends a command (command_id defaults to a new uuid) and resolves with its outcome. */
  send(command: Omit<CommandInput, 'command_id'> & { command_id?: string }, opts?: { timeoutMs?: number }): Promise<Outcome>;
  /** Decoded events of every topic matching `pattern` (a name or a regex), from now on. */
  subscribe(pattern: string, handler: (event: PlatformEvent, topic: string) => Promise<void> | void): Promise<{ close(): Promise<void> }>;
  close(): Promise<void>;
}

/** The agent-side client: one call sends a command and awaits the correlated outcome. */
export async function createHubClient(o: { brokers: string[]; registryUrl: string; clientId?: string; logger?: Logger }): Promise<HubClient> {
  const logger = o.logger ?? createLogger({ service: 'hub-client', level: 'warn' });
  const kafka = createKafka({ brokers: o.brokers, clientId: o.clientId ?? 'ionflux-hub-client', logger });
  const provisioner = new TopicProvisioner(kafka, { partitions: 3, replicationFactor: 1 }, defaultTopicSpecFor);
  const bus = new KafkaBus({ kafka, provisioner, logger });
  const codec: EventCodec = await createEventCodec(createRegistry(o.registryUrl));
  const consumers: Consumer[] = [];
  const listening = new Map<string, Promise<void>>();
  const waiting = new Map<string, (outcome: Outcome) => void>();

  /** Reads `topic` from its current end (seeked explicitly, so nothing written after this is missed). */
  async function tail(pattern: string | RegExp | string[], fixed: string[] | null, onEvent: (e: PlatformEvent, topic: string) => Promise<void> | void): Promise<Consumer> {
    const consumer = kafka.consumer({ groupId: `ionflux-client-${randomUUID()}`, allowAutoTopicCreation: false, maxWaitTimeInMs: 100 });
    consumers.push(consumer);
    await consumer.connect();
    await consumer.subscribe(Array.isArray(pattern) ? { topics: pattern, fromBeginning: false } : { topic: pattern, fromBeginning: false });
    const admin = kafka.admin();
    await admin.connect();
    // Topics that already match are seeked to their current end, so "from now on" starts at this call, not at the group join.
    const existing = fixed ?? (await admin.listTopics()).filter((t) => (typeof pattern === 'string' ? t === pattern : !Array.isArray(pattern) && pattern.test(t)));
    const ends = await Promise.all(existing.map(async (t) => ({ t, offsets: await admin.fetchTopicOffsets(t) })));
    await admin.disconnect();
    // A throwaway group that never needs its offsets: no OffsetCommit between fetches (each one
    // costs 7-25 ms on Kafka 4 and would delay every outcome behind it).
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ topic, message }) => {
        if (!message.value) return;
        try {
          await onEvent(await codec.decode(message.value), topic);
        } catch (e) {
          logger.warn({ topic, err: e }, 'undecodable record skipped');
        }
      },
    });
    for (const { t, offsets } of ends) for (const p of offsets) consumer.seek({ topic: t, partition: p.partition, offset: p.high });
    return consumer;
  }

  /**
   * Outcome topics asked for in the same tick share one consumer (a client serving many
   * workspaces would otherwise run a consumer, a group and a fetch loop per workspace).
   */
  let batch: { topics: string[]; started: Promise<void> } | undefined;
  function listen(topic: string): Promise<void> {
    let p = listening.get(topic);
    if (!p) {
      if (!batch) {
        const b = { topics: [] as string[], started: Promise.resolve() };
        b.started = new Promise<void>((r) => setImmediate(r)).then(async () => {
          batch = undefined;
          await provisioner.ensure(b.topics);
          await tail(b.topics, b.topics, (event) => {
            const payload = JSON.parse(event.payload_json) as OutcomePayload;
            waiting.get(payload.command_id)?.({ ...payload, event });
          });
        });
        batch = b;
      }
      batch.topics.push(topic);
      p = batch.started;
      listening.set(topic, p);
      p.catch(() => listening.delete(topic)); // a failed start is retried by the next send
    }
    return p;
  }

  return {
    async send(command, opts = {}) {
      const full = { ...command, command_id: command.command_id ?? randomUUID() };
      const topic = outcomeTopic({ reply_to: full.reply_to ?? null, service: full.service, workspace_id: full.workspace_id });
      await listen(topic);
      const outcome = new Promise<Outcome>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(full.command_id);
          reject(new HubError('command_timeout', `no outcome for ${full.command_id} within ${opts.timeoutMs ?? 30_000} ms`, { retryable: true }));
        }, opts.timeoutMs ?? 30_000);
        waiting.set(full.command_id, (out) => {
          clearTimeout(timer);
          waiting.delete(full.command_id);
          resolve(out);
        });
      });
      await bus.publish({ topic: topics.command(full.service), key: full.workspace_id, value: encodeCommandJson(full) });
      return outcome;
    },
    async subscribe(pattern, handler) {
      const consumer = await tail(topicPattern(pattern), null, handler);
      return { close: () => consumer.disconnect() };
    },
    async close() {
      await Promise.all(consumers.map((c) => c.disconnect().catch(() => undefined)));
      await bus.close();
    },
  };
}
