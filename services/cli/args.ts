import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A mistake in how the CLI was called; printed without a stack, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** node:util parseArgs, with its errors turned into UsageErrors carrying the command's usage. */
export function parse<T extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: T, usage: string) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\nusage: ${usage}`);
  }
}

/** `--overlap-hours` (how long a replaced secret or key stays valid): a non-negative number of hours, 24 when not given. */
export function overlapHours(raw: string | undefined): number {
  const hours = Number(raw ?? 24);
  if (raw === '' || !Number.isFinite(hours) || hours < 0 || hours > 24 * 365) throw new UsageError(`--overlap-hours ${raw}: expected hours from 0 to 8760`);
  return hours;
}
