import { Kafka, logLevel, type LogEntry } from 'kafkajs';
import type { Logger } from '../logger.ts';

const levels: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [logLevel.ERROR]: 'error',
  [logLevel.WARN]: 'warn',
  [logLevel.INFO]: 'info',
  [logLevel.DEBUG]: 'debug',
};

/** A kafkajs client whose own logs go through our (redacting) pino logger. */
export function createKafka(opts: { brokers: string[]; clientId: string; logger: Logger; connectionTimeoutMs?: number }): Kafka {
  process.env.KAFKAJS_NO_PARTITIONER_WARNING ??= '1';
  return new Kafka({
    brokers: opts.brokers,
    clientId: opts.clientId,
    connectionTimeout: opts.connectionTimeoutMs ?? 1000,
    requestTimeout: 10_000,
    logLevel: logLevel.WARN,
    logCreator: () => (entry: LogEntry) => {
      const { message, ...rest } = entry.log;
      opts.logger[levels[entry.level] ?? 'info']({ kafkajs: entry.namespace, ...rest }, message);
    },
  });
}
