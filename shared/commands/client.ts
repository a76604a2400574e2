import { randomUUID } from 'node:crypto';
import { createKafkaBus } from '../bus/kafka/bus.ts';
import { topicPattern, topics } from '../bus/topics.ts';
import type { Bus, Reader } from '../bus/types.ts';
import { baseEnv, kafkaAuth, parseEnv, withLocalHubEnv, type KafkaAuth } from '../config.ts';
import { HubError } from '../errors.ts';
import { createEventCodec, type EventCodec } from '../events/codec.ts';
import type { PlatformEvent } from '../events/platform-event.ts';
import { createRegistry } from '../events/registry.ts';
import { createLogger, type Logger } from '../logger.ts';
import { parseAgentPrincipal } from '../security/principals.ts';
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

export interface HubClientOptions {
  /** Default: KAFKA_BROKERS, KAFKA_SASL_* and KAFKA_SSL* from the environment, else from `.ionflux/kafka.env` (written by `make up`). */
  brokers?: string[];
  auth?: KafkaAuth;
  /** Default: SCHEMA_REGISTRY_URL, else `.ionflux/hub.env`, else the local registry. */
  registryUrl?: string;
  clientId?: string;
  logger?: Logger;
  /**
   * Where commands go: `workspace` = `ionflux.cmd.<service>.ws_<workspace>`, the only command
   * topics an agent principal may write; `service` = `ionflux.cmd.<service>` (admins and
   * services). Default: `workspace` when the SASL user is an agent principal (`agent.<id>.ws_<ws>`).
   */
  commandTopics?: 'service' | 'workspace';
}

/** The agent-side client: one call sends a command and awaits the correlated outcome. */
export async function createHubClient(o: HubClientOptions = {}): Promise<HubClient> {
  const logger = o.logger ?? createLogger({ service: 'hub-client', level: 'warn' });
  // With brokers given, the credentials (unless given too) are the environment's own; without,
  // both come from the environment or, when it sets none, from what `make up` wrote.
  const env = parseEnv(baseEnv, o.brokers ? process.env : withLocalHubEnv());
  const auth = o.auth ?? kafkaAuth(env);
  const bus = createKafkaBus({ brokers: o.brokers ?? env.KAFKA_BROKERS, clientId: o.clientId ?? 'ionflux-hub-client', logger, auth });
  const commandTopics = o.commandTopics ?? (auth.sasl && parseAgentPrincipal(auth.sasl.username) ? 'workspace' : 'service');
  return hubClientOn(bus, await createEventCodec(createRegistry(o.registryUrl ?? env.SCHEMA_REGISTRY_URL)), logger, { commandTopics });
}

/** The same client on any bus (the in-memory one in unit tests); closing it closes the bus. */
export function hubClientOn(bus: Bus, codec: EventCodec, logger: Logger, clientOpts: { commandTopics?: 'service' | 'workspace' } = {}): HubClient {
  const readers: Reader[] = [];
  const listening = new Map<string, Promise<void>>();
  const waiting = new Map<string, (outcome: Outcome) => void>();

  /** Decoded events of `pattern` from its current end on (each partition seeked there at this call). */
  async function tail(pattern: string | RegExp, onEvent: (e: PlatformEvent, topic: string) => Promise<void> | void): Promise<Reader> {
    const reader = await bus.read({
      topic: pattern,
      from: 'end',
      onBatch: async ({ records }) => {
        for (const r of records) {
          if (!r.value) continue;
          try {
            await onEvent(await codec.decode(r.value), r.topic);
          } catch (e) {
            logger.warn({ topic: r.topic, err: e }, 'undecodable record skipped');
          }
        }
      },
    });
    readers.push(reader);
    return reader;
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
          await bus.ensureTopics(b.topics);
          await tail(exactly(b.topics), (event) => {
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
      let timer: NodeJS.Timeout | undefined;
      const outcome = new Promise<Outcome>((resolve, reject) => {
        timer = setTimeout(() => {
          waiting.delete(full.command_id);
          reject(new HubError('command_timeout', `no outcome for ${full.command_id} within ${opts.timeoutMs ?? 30_000} ms`, { retryable: true }));
        }, opts.timeoutMs ?? 30_000);
        waiting.set(full.command_id, (out) => {
          clearTimeout(timer);
          waiting.delete(full.command_id);
          resolve(out);
        });
      });
      const commandTopic = clientOpts.commandTopics === 'workspace' ? topics.workspaceCommand(full.service, full.workspace_id) : topics.command(full.service);
      try {
        await bus.publish({ topic: commandTopic, key: full.workspace_id, value: encodeCommandJson(full) });
      } catch (e) {
        // Not sent, so no outcome will come: stop waiting now. Left running, the timer would
        // reject a promise nobody holds, and Node ends the caller's process for that.
        clearTimeout(timer);
        waiting.delete(full.command_id);
        throw e;
      }
      return outcome;
    },
    async subscribe(pattern, handler) {
      const reader = await tail(topicPattern(pattern), handler);
      return { close: () => reader.close() };
    },
    async close() {
      await Promise.all(readers.map((r) => r.close().catch(() => undefined)));
      await bus.close();
    },
  };
}

/** A pattern matching exactly these topic names. */
const exactly = (names: string[]) => new RegExp(`^(?:${names.map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})$`);
