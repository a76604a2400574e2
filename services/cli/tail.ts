import { topicPattern } from '../../shared/bus/topics.ts';
import { createRegistry } from '../../shared/events/registry.ts';
import { platformEventSchema } from '../../shared/events/platform-event.ts';
import { parse, UsageError } from './args.ts';
import { cliContext } from './context.ts';
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
    const ctx = cliContext();
    const registry = createRegistry(ctx.env.SCHEMA_REGISTRY_URL);
    const max = values.max ? Number(values.max) : Infinity;
    let printed = 0;
    let finish: () => void = () => undefined;
    const done = new Promise<void>((resolve) => (finish = resolve));
    if (values.timeout) setTimeout(finish, Number(values.timeout) * 1000).unref();
    process.once('SIGINT', finish);
    process.once('SIGTERM', finish);

    const pattern = topicPattern(positionals[0]!);
    const reader = await ctx.bus.read({
      topic: pattern,
      from: values['from-beginning'] ? 'beginning' : 'end',
      onBatch: async ({ records }) => {
        for (const r of records) {
          if (printed >= max) return;
          const where = { topic: r.topic, partition: r.partition, offset: r.offset };
          try {
            const event = platformEventSchema.parse(await registry.decode(r.value ?? Buffer.alloc(0)));
            process.stdout.write(`${JSON.stringify({ ...where, key: r.key?.toString() ?? null, event })}\n`);
            printed += 1;
            if (printed >= max) finish();
          } catch (e) {
            process.stderr.write(`${JSON.stringify({ ...where, error: `not a decodable PlatformEvent: ${(e as Error).message}` })}\n`);
          }
        }
      },
    });
    await done;
    await reader.close();
    await ctx.close();
    return 0;
  },
};
