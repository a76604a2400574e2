import { randomUUID } from 'node:crypto';
import { createKafka } from '../../shared/bus/kafka/client.ts';
import { createKafkaBus, readerGroupPrefix } from '../../shared/bus/kafka/bus.ts';
import { createKafkaSecurityAdmin } from '../../shared/bus/kafka/security.ts';
import type { SecurityAdmin } from '../../shared/bus/security.ts';
import { baseEnv, kafkaAuth, parseEnv, withLocalHubEnv, type BaseEnv } from '../../shared/config.ts';
import { createLogger } from '../../shared/logger.ts';

/** The CLI's environment: the process's, completed from what `make up` wrote (see withLocalHubEnv). */
export const cliEnv = (env: NodeJS.ProcessEnv = process.env): BaseEnv => parseEnv(baseEnv, withLocalHubEnv(env));

/**
 * The bus for one CLI invocation; logs go to stderr so stdout stays machine-readable. With
 * `transactional`, publishAtomic is one Kafka transaction (an approval decision and its release).
 * Tables opened from it live in memory (no stateDir): a one-off command reads them and exits.
 */
export function cliContext(env: BaseEnv = cliEnv(), opts: { transactional?: boolean } = {}) {
  const logger = createLogger({ service: 'ionflux-cli', level: 'warn', destination: process.stderr });
  const auth = kafkaAuth(env);
  const bus = createKafkaBus({
    brokers: env.KAFKA_BROKERS,
    clientId: 'ionflux-cli',
    logger,
    auth,
    readerGroupPrefix: readerGroupPrefix(auth),
    topicDefaults: { partitions: env.KAFKA_TOPIC_PARTITIONS, replicationFactor: env.KAFKA_REPLICATION_FACTOR },
    transactionalId: opts.transactional ? `ionflux-cli-${randomUUID()}` : undefined,
  });
  let security: SecurityAdmin | undefined;
  return {
    env,
    logger,
    bus,
    /** Principals and ACLs (needs the admin's credentials). */
    security(): SecurityAdmin {
      security ??= createKafkaSecurityAdmin(createKafka({ brokers: env.KAFKA_BROKERS, clientId: 'ionflux-cli', logger, auth }));
      return security;
    },
    async close() {
      await security?.close();
      await bus.close();
    },
  };
}
