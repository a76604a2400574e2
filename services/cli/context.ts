import { randomUUID } from 'node:crypto';
import { createKafkaBus } from '../../shared/bus/kafka/bus.ts';
import { baseEnv, parseEnv, type BaseEnv } from '../../shared/config.ts';
import { createLogger } from '../../shared/logger.ts';

/**
 * The bus for one CLI invocation; logs go to stderr so stdout stays machine-readable. With
 * `transactional`, publishAtomic is one Kafka transaction (an approval decision and its release).
 * Tables opened from it live in memory (no stateDir): a one-off command reads them and exits.
 */
export function cliContext(env: BaseEnv = parseEnv(baseEnv), opts: { transactional?: boolean } = {}) {
  const logger = createLogger({ service: 'ionflux-cli', level: 'warn', destination: process.stderr });
  const bus = createKafkaBus({
    brokers: env.KAFKA_BROKERS,
    clientId: 'ionflux-cli',
    logger,
    topicDefaults: { partitions: env.KAFKA_TOPIC_PARTITIONS, replicationFactor: env.KAFKA_REPLICATION_FACTOR },
    transactionalId: opts.transactional ? `ionflux-cli-${randomUUID()}` : undefined,
  });
  return { env, logger, bus, close: () => bus.close() };
}
