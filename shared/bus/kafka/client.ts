import { createRequire } from 'node:module';
import { Kafka, logLevel, type LogEntry, type SASLOptions } from 'kafkajs';
import type { KafkaAuth } from '../../config.ts';
import type { Logger } from '../../logger.ts';

const levels: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [logLevel.ERROR]: 'error',
  [logLevel.WARN]: 'warn',
  [logLevel.INFO]: 'info',
  [logLevel.DEBUG]: 'debug',
};

// kafkajs logs every failed request at ERROR, including the ones it retries by itself (a topic
// whose leader is still being elected, CONCURRENT_TRANSACTIONS after each commit, a rebalance).
// Those say nothing to an operator: they go to debug; what kafkajs gives up on still surfaces
// as an error from the call that failed.
const retriableMessages: ReadonlySet<string> = new Set(
  (createRequire(import.meta.url)('kafkajs/src/protocol/error.js') as { errorCodes: { retriable: boolean; message: string }[] }).errorCodes
    .filter((e) => e.retriable)
    .map((e) => e.message),
);

function levelOf(entry: LogEntry): 'error' | 'warn' | 'info' | 'debug' {
  const level = levels[entry.level] ?? 'info';
  if (level !== 'error' && level !== 'warn') return level;
  const error = (entry.log as { error?: unknown }).error;
  if (typeof error === 'string' && retriableMessages.has(error)) return 'debug';
  // A consumer that crashed on a retriable error (a fresh broker's group coordinator still
  // loading) restarts by itself; only what it gives up on matters.
  const crash = /^Crash: KafkaJS\w+: (.*)$/.exec(entry.log.message ?? '');
  if (crash && retriableMessages.has(crash[1]!)) return 'debug';
  if (entry.log.message?.startsWith('Restarting the consumer in')) return 'debug';
  // The producer retries a send whose partition leader moved (a topic just created, a broker
  // restarting); what it gives up on reaches the caller as publish_failed.
  const send = /^Failed to send messages: (.*)$/.exec(entry.log.message ?? '');
  if (send && retriableMessages.has(send[1]!)) return 'debug';
  // Two services creating the same topic at once: the loser's TOPIC_ALREADY_EXISTS is expected, and
  // a refusal by the ACLs surfaces as a HubError from the provisioner (provision.ts).
  if (entry.log.message?.startsWith('Response CreateTopics')) return 'debug';
  return level;
}

/** A kafkajs client whose own logs go through our (redacting) pino logger. */
export function createKafka(opts: { brokers: string[]; clientId: string; logger: Logger; auth?: KafkaAuth; connectionTimeoutMs?: number }): Kafka {
  process.env.KAFKAJS_NO_PARTITIONER_WARNING ??= '1';
  const { sasl, ssl } = opts.auth ?? {};
  return new Kafka({
    brokers: opts.brokers,
    clientId: opts.clientId,
    ...(sasl ? { sasl: { mechanism: sasl.mechanism, username: sasl.username, password: sasl.password } as SASLOptions } : {}),
    ...(ssl ? { ssl: ssl.ca ? { ca: [ssl.ca] } : true } : {}),
    connectionTimeout: opts.connectionTimeoutMs ?? 1000,
    requestTimeout: 10_000,
    logLevel: logLevel.WARN,
    logCreator: () => (entry: LogEntry) => {
      const { message, ...rest } = entry.log;
      opts.logger[levelOf(entry)]({ kafkajs: entry.namespace, ...rest }, message);
    },
  });
}
