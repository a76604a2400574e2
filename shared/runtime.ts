import { join } from 'node:path';
import type { Registry } from 'prom-client';
import type { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { KafkaBus, readerGroupPrefix } from './bus/kafka/bus.ts';
import { createKafka } from './bus/kafka/client.ts';
import { TopicProvisioner, defaultTopicSpecFor } from './bus/kafka/provision.ts';
import type { Bus } from './bus/types.ts';
import { kafkaAuth, type BaseEnv } from './config.ts';
import { createEventCodec, type EventCodec } from './events/codec.ts';
import { createRegistry } from './events/registry.ts';
import { busReadiness, registryReadiness, type ReadinessCheck } from './http.ts';
import { createLogger, type Logger } from './logger.ts';
import { createMetricsRegistry } from './metrics.ts';
import { configureOutbound } from './net/outbound.ts';

/** What every service is built from; `main.ts` files create one and wire handlers onto it. */
export interface Runtime {
  service: string;
  logger: Logger;
  metrics: Registry;
  bus: Bus;
  /** Where this instance's tables keep their state on disk (pass `...rt` to a KafkaTable). */
  stateDir: string;
  /** Another bus on the same brokers (e.g. without transactions beside a transactional one); closed with the runtime. */
  createBus(opts?: { transactionalId?: string; lanes?: number }): Bus;
  registry: SchemaRegistry;
  codec: EventCodec;
  checks: Record<string, ReadinessCheck>;
  /** Registers teardown; run in reverse order of registration. */
  onClose(fn: () => Promise<void> | void): void;
  close(): Promise<void>;
}

export interface RuntimeOptions {
  logger?: Logger;
  transactionalId?: string;
  producerLanes?: number;
  /**
   * Names the default state directory, `.ionflux/state/<service>-<instanceId>`. Required: a
   * service that left it out had every instance share one folder (the email dispatcher did).
   */
  instanceId: string;
}

export async function createRuntime(service: string, env: BaseEnv, opts: RuntimeOptions): Promise<Runtime> {
  const logger = opts.logger ?? createLogger({ service, level: env.LOG_LEVEL });
  // One outbound policy per process: connectors' requests go through it (shared/net/outbound.ts).
  configureOutbound(env.OUTBOUND_ALLOWLIST);
  const metrics = createMetricsRegistry(service);
  const auth = kafkaAuth(env);
  const kafka = createKafka({ brokers: env.KAFKA_BROKERS, clientId: `${env.KAFKA_CLIENT_ID}-${service}`, logger, auth });
  const provisioner = new TopicProvisioner(kafka, { partitions: env.KAFKA_TOPIC_PARTITIONS, replicationFactor: env.KAFKA_REPLICATION_FACTOR }, defaultTopicSpecFor);
  const newBus = (o: { transactionalId?: string; lanes?: number } = {}) => new KafkaBus({ kafka, logger, provisioner, readerGroupPrefix: readerGroupPrefix(auth), transactionalId: o.transactionalId, lanes: o.lanes });
  const bus = newBus({ transactionalId: opts.transactionalId, lanes: opts.producerLanes });
  const registry = createRegistry(env.SCHEMA_REGISTRY_URL);
  const closers: (() => Promise<void> | void)[] = [() => provisioner.close(), () => bus.close()];
  await bus.connect();
  const codec = await createEventCodec(registry);
  let closing: Promise<void> | undefined;
  return {
    service,
    logger,
    metrics,
    bus,
    stateDir: env.IONFLUX_STATE_DIR ?? join('.ionflux', 'state', `${service}-${opts.instanceId}`),
    createBus(o) {
      const extra = newBus(o);
      closers.push(() => extra.close());
      return extra;
    },
    registry,
    codec,
    checks: { kafka: busReadiness(bus), schema_registry: registryReadiness(env.SCHEMA_REGISTRY_URL) },
    onClose: (fn) => void closers.push(fn),
    close() {
      closing ??= (async () => {
        for (const fn of closers.reverse()) {
          await Promise.resolve(fn()).catch((e: unknown) => logger.error({ err: e }, 'error while closing'));
        }
      })();
      return closing;
    },
  };
}

/** Closes the runtime once on SIGINT/SIGTERM, then exits; a second signal exits at once, and a close still running after `boundMs` exits with 1. */
export function closeOnSignals(close: () => Promise<void>, logger: Logger, boundMs = 25_000): void {
  let signalled = false;
  const handler = (signal: NodeJS.Signals) => {
    if (signalled) process.exit(130);
    signalled = true;
    logger.info({ signal }, 'shutting down');
    // A close that never returns (a client retrying against a broker that is gone) must not keep
    // the process: what it did not finish is not acknowledged, and is redone by whoever comes next.
    setTimeout(() => {
      logger.error({ boundMs }, 'shutdown did not finish in time; exiting');
      process.exit(1);
    }, boundMs).unref();
    close().then(
      () => process.exit(0),
      (e: unknown) => {
        logger.error({ err: e }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}
