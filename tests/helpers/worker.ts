import { freePort } from './ingester.ts';
import { testStateDir, uid } from './infra.ts';
import { spawnService, type RunningService } from './service.ts';

export type RunningWorker = RunningService;

/** services/connector-worker/main.ts as its own process; `kill` is SIGKILL, `stop` a clean SIGTERM. */
export async function startWorker(env: Record<string, string> = {}, opts: { waitReady?: boolean } = {}): Promise<RunningWorker> {
  const port = await freePort();
  const fullEnv = { ...process.env, VAULT_TOKEN: process.env.VAULT_TOKEN ?? 'ionflux-dev-root', WORKER_INSTANCE_ID: uid('w'), IONFLUX_STATE_DIR: testStateDir(), WORKER_OPS_PORT: String(port), LOG_LEVEL: 'info',
    // Tests post to receivers, simulators and media servers on 127.0.0.1, which the outbound policy refuses by default.
    OUTBOUND_ALLOWLIST: '127.0.0.1',
    // New workspaces' command topics are found within a second.
    COMMAND_TOPIC_RESCAN_MS: '1000',
    ...env };
  const ready = opts.waitReady === false ? null : `http://127.0.0.1:${port}/readyz`;
  return spawnService({ name: 'connector-worker', env: fullEnv, readyLine: 'connector worker running', readyUrl: ready });
}
