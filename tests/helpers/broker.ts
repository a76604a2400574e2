import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * A second, dedicated Kafka broker (same scripts as `make up`, other ports and data dir) for tests
 * that kill it: the shared broker other tests use is never touched.
 */
export function dedicatedBroker(port = 19092) {
  const cache = process.env.IONFLUX_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'ionflux');
  const env = { ...process.env, IONFLUX_RUN: join(cache, `run-broker-${port}`), KAFKA_PORT: String(port), KAFKA_CONTROLLER_PORT: String(port + 1) };
  const pidFile = join(env.IONFLUX_RUN, 'kafka.pid');
  return {
    brokers: [`127.0.0.1:${port}`],
    async start() {
      await run('bash', ['deploy/local/infra-up.sh', '--only', 'kafka'], { env, timeout: 120_000 });
    },
    /** SIGKILL: no clean shutdown, no flush. */
    kill() {
      const pid = Number(readFileSync(pidFile, 'utf8'));
      process.kill(-pid, 'SIGKILL');
    },
    async stop() {
      await run('bash', ['deploy/local/infra-down.sh', 'kafka'], { env, timeout: 60_000 });
    },
  };
}
