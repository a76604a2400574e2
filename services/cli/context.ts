import { randomUUID } from 'node:crypto';
import { createKafka } from '../../shared/bus/kafka.ts';
import { KafkaBus } from '../../shared/bus/producer.ts';
import { TopicProvisioner, defaultTopicSpecFor } from '../../shared/bus/provision.ts';
import { baseEnv, parseEnv, type BaseEnv } from '../../shared/config.ts';
import { createLogger } from '../../shared/logger.ts';

/**
 * Kafka clients for one CLI invocation; logs go to stderr so stdout stays machine-readable. With
 * `transactional`, publishAtomic is one Kafka transaction (an approval decision and its release).
 */
export function cliContext(env: BaseEnv = parseEnv(baseEnv), opts: { transactional?: boolean } = {}) {
  const logger = createLogger({ service: 'ionflux-cli', level: 'warn', destination: process.stderr });
  const kafka = createKafka({ brokers: env.KAFKA_BROKERS, clientId: 'ionflux-cli', logger });
  const provisioner = new TopicProvisioner(kafka, { partitions: env.KAFKA_TOPIC_PARTITIONS, replicationFactor: env.KAFKA_REPLICATION_FACTOR }, defaultTopicSpecFor);
  const bus = new KafkaBus({ kafka, provisioner, logger, transactionalId: opts.transactional ? `ionflux-cli-${randomUUID()}` : undefined });
  return { env, logger, kafka, provisioner, bus, close: () => bus.close() };
}
