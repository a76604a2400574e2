import { cliEnv } from './context.ts';
import { checkSchemaFiles } from '../../shared/events/registry.ts';
import { UsageError } from './args.ts';
import type { CliCommand } from './main.ts';

/**
 * `ionflux schemas check`: is every schema file in schemas/ a BACKWARD-compatible next version of
 * what the registry holds? Exit 0 when all are, 1 when any is not (print why).
 */
export const schemasCommand: CliCommand = {
  summary: 'schemas check   tell whether schemas/ is compatible with what the registry holds',
  async run(args) {
    if (args[0] !== 'check') throw new UsageError('usage: ionflux schemas check');
    const env = cliEnv();
    const verdicts = await checkSchemaFiles(env.SCHEMA_REGISTRY_URL);
    for (const v of verdicts) {
      const state = v.firstVersion ? 'new subject (compatible)' : v.compatible ? 'compatible' : 'INCOMPATIBLE';
      process.stdout.write(`${v.subject}: ${state}${v.messages.length ? `\n  ${v.messages.join('\n  ')}` : ''}\n`);
    }
    return verdicts.every((v) => v.compatible) ? 0 : 1;
  },
};
