import { randomUUID } from 'node:crypto';
import { baseEnv, parseEnv } from '../../shared/config.ts';
import { createKafka } from '../../shared/bus/kafka.ts';
import { topicPattern } from '../../shared/bus/topics.ts';
import { createRegistry } from '../../shared/events/registry.ts';
import { platformEventSchema } from '../../shared/events/platform-event.ts';
import { createLogger } from '../../shared/logger.ts';
import { parse, UsageError } from './args.ts';
import type { CliCommand } from './main.ts';

const USAGE = 'ionflux tail <topic-or-regex> [--from-beginning] [--max <n>] [--timeout <seconds>]';

/**
 * Prints decoded PlatformEvents as JSON lines: {topic, partition, offset, key, event}.
 * Records that do not decode are reported on stderr and skipped. Commits nothing.
 */
export const tailCommand: CliCommand = {
  summary: `${USAGE.slice('ionflux '.length)}   print decoded PlatformEvents as JSON lines`,
  async run(args) {
    const { values, positionals } = parse(args, { 'from-beginning': { type: 'boolean' }, max: { type: 'string' }, timeout: { type: 'string' } }, USAGE);
    if (positionals.length !== 1) throw new UsageError(`expected one topic or pattern\nusage: ${USAGE}`);
    const env = parseEnv(baseEnv);
    const logger = createLogger({ service: 'ionflux-cli', level: 'warn', destination: process.stderr });
    const kafka = createKafka({ brokers: env.KAFKA_BROKERS, clientId: 'ionflux-cli', logger });
    const registry = createRegistry(env.SCHEMA_REGISTRY_URL);
    const max = values.max ? Number(values.max) : Infinity;
    const consumer = kafka.consumer({ groupId: `ionflux-tail-${randomUUID()}`, allowAutoTopicCreation: false, maxWaitTimeInMs: 500 });
    let printed = 0;
    let finish: () => void = () => undefined;
    const done = new Promise<void>((resolve) => (finish = resolve));
    if (values.timeout) setTimeout(finish, Number(values.timeout) * 1000).unref();
    process.once('SIGINT', finish);
    process.once('SIGTERM', finish);

    await consumer.connect();
    await consumer.subscribe({ topic: topicPattern(positionals[0]!), fromBeginning: values['from-beginning'] ?? false });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ topic, partition, message }) => {
        if (printed >= max) return;
        const where = { topic, partition, offset: message.offset };
        try {
          const event = platformEventSchema.parse(await registry.decode(message.value ?? Buffer.alloc(0)));
          process.stdout.write(`${JSON.stringify({ ...where, key: message.key?.toString() ?? null, event })}\n`);
          printed += 1;
          if (printed >= max) finish();
        } catch (e) {
          process.stderr.write(`${JSON.stringify({ ...where, error: `not a decodable PlatformEvent: ${(e as Error).message}` })}\n`);
        }
      },
    });
    await done;
    await consumer.disconnect();
    return 0;
  },
};
