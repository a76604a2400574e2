import { topicPattern } from '../../shared/bus/topics.ts';
import { createRegistry } from '../../shared/events/registry.ts';
import { platformEventSchema } from '../../shared/events/platform-event.ts';
import { parse, UsageError } from './args.ts';
import { cliContext } from './context.ts';
import type { CliCommand } from './main.ts';

const USAGE = 'ionflux tail <topic-or-regex> [--from-beginning] [--max <n>] [--timeout <seconds>]';

// Checked before anything connects: `--max abc` or `--max 0` never stopped, `--timeout abc` ended at once without a word.
function count(raw: string): number {
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n < 1) throw new UsageError(`--max ${raw}: expected a whole number of events, 1 or more\nusage: ${USAGE}`);
  return n;
}

function seconds(raw: string): number {
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || n <= 0 || n > 2_147_483) throw new UsageError(`--timeout ${raw}: expected a number of seconds above 0\nusage: ${USAGE}`);
  return n;
}

/**
 * Prints decoded PlatformEvents as JSON lines: {topic, partition, offset, key, event}.
 * Records that do not decode are reported on stderr and skipped. Commits nothing.
 */
export const tailCommand: CliCommand = {
  summary: `${USAGE.slice('ionflux '.length)}   print decoded PlatformEvents as JSON lines`,
  async run(args) {
    const { values, positionals } = parse(args, { 'from-beginning': { type: 'boolean' }, max: { type: 'string' }, timeout: { type: 'string' } }, USAGE);
    if (positionals.length !== 1) throw new UsageError(`expected one topic or pattern\nusage: ${USAGE}`);
    const max = values.max === undefined ? Infinity : count(values.max);
    const timeoutS = values.timeout === undefined ? undefined : seconds(values.timeout);
    const ctx = cliContext();
    const registry = createRegistry(ctx.env.SCHEMA_REGISTRY_URL);
    let printed = 0;
    let finish: () => void = () => undefined;
    const done = new Promise<void>((resolve) => (finish = resolve));
    if (timeoutS !== undefined) setTimeout(finish, timeoutS * 1000).unref();
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
