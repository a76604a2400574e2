import { createKafkaBus } from '../../shared/bus/kafka/bus.ts';
import { baseEnv, parseEnv, type BaseEnv } from '../../shared/config.ts';
import { createLogger } from '../../shared/logger.ts';

/**
 * The bus for one CLI invocation; logs go to stderr so stdout stays machine-readable. Tables
 * opened from it live in memory (no stateDir): a one-off command reads them and exits.
 */
export function cliContext(env: BaseEnv = parseEnv(baseEnv)) {
  const logger = createLogger({ service: 'ionflux-cli', level: 'warn', destination: process.stderr });
  const bus = createKafkaBus({ brokers: env.KAFKA_BROKERS, clientId: 'ionflux-cli', logger, topicDefaults: { partitions: env.KAFKA_TOPIC_PARTITIONS, replicationFactor: env.KAFKA_REPLICATION_FACTOR } });
  return { env, logger, bus, close: () => bus.close() };
}
