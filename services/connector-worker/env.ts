import { z } from 'zod';
import { commandEnvShape } from '../../shared/commands/service.ts';
import { baseEnv, csv, port } from '../../shared/config.ts';
import { PARTITIONS_AT_ONCE } from '../../shared/commands/worker.ts';

export const workerEnv = baseEnv.extend({
  ...commandEnvShape,
  /** Connector ids to serve (each on ionflux.cmd.<id>); empty = all of this service's (webhook and plugins); platform always. */
  WORKER_CONNECTORS: csv.default([]),
  EXTRA_CONNECTORS_DIR: z.string().optional(),
  WORKER_INSTANCE_ID: z.string().regex(/^[a-z0-9_-]{1,40}$/).default('0'),
  WORKER_OPS_PORT: port(8090),
  WORKER_OPS_HOST: z.string().default('127.0.0.1'),
  /** Per workspace and connector: sustained calls per second and burst. */
  RATE_LIMIT_PER_SECOND: z.coerce.number().positive().default(20),
  RATE_LIMIT_BURST: z.coerce.number().int().positive().default(40),
  ACTION_TIMEOUT_MS: z.coerce.number().int().positive().default(15_000),
  RETRY_MAX_ATTEMPTS: z.coerce.number().int().positive().default(4),
  RETRY_MAX_WAIT_MS: z.coerce.number().int().positive().default(30_000),
  /** Partitions worked on at once (each workspace's command topic has one; order stays per workspace): see PARTITIONS_AT_ONCE. */
  WORKER_PARTITIONS_CONCURRENTLY: z.coerce.number().int().positive().default(PARTITIONS_AT_ONCE),
});
export type WorkerEnv = z.infer<typeof workerEnv>;
