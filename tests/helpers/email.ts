import { freePort } from './ingester.ts';
import { testStateDir, uid } from './infra.ts';
import { spawnService, type RunningService } from './service.ts';

export interface RunningDispatcher extends RunningService {
  /** The dispatcher's HTTP address (API, unsubscribe, ops). */
  url: string;
}

/** services/email-dispatcher/main.ts as its own process, the way `make up` runs it. */
export async function startDispatcher(env: Record<string, string> = {}): Promise<RunningDispatcher> {
  const port = await freePort();
  const fullEnv = { ...process.env, VAULT_TOKEN: process.env.VAULT_TOKEN ?? 'ionflux-dev-root', EMAIL_INSTANCE_ID: uid('em'), IONFLUX_STATE_DIR: testStateDir(), EMAIL_PORT: String(port), LOG_LEVEL: 'info', ...env };
  const url = `http://127.0.0.1:${port}`;
  // The crash test reads what the dispatcher printed before and after a restart.
  return { url, ...(await spawnService({ name: 'email-dispatcher', env: fullEnv, readyLine: 'email dispatcher running', readyUrl: `${url}/readyz`, keepOutputOnRestart: true })) };
}
