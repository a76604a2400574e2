import { pino, destination, stdTimeFunctions, type DestinationStream, type Logger } from 'pino';
import { redact, redactString } from './redact.ts';

export type { Logger };

/**
 * The one logger factory: pino JSON lines on stdout (or `destination`), secrets masked by key
 * name and by registered value, in the merged object and in the message alike.
 */
export function createLogger(opts: { service: string; level?: string; destination?: NodeJS.WritableStream }): Logger {
  return pino(
    {
      name: opts.service,
      level: opts.level ?? 'info',
      base: { service: opts.service, pid: process.pid },
      timestamp: stdTimeFunctions.isoTime,
      formatters: { log: (obj) => redact(obj) },
      serializers: { err: (e: unknown) => redact(e as object) },
      hooks: {
        logMethod(args, method) {
          const scrubbed = args.map((a) => (typeof a === 'string' ? redactString(a) : a));
          return method.apply(this, scrubbed as Parameters<typeof method>);
        },
      },
    },
    (opts.destination as DestinationStream | undefined) ?? destination({ dest: 1, sync: true }),
  );
}
