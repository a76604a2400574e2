import { execFile } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { kafkaAuth, type KafkaAuth } from '../../shared/config.ts';

const run = promisify(execFile);

/**
 * A second, dedicated Kafka broker (same scripts as `make up`, other ports and data dir) for tests
 * that kill it: the shared broker other tests use is never touched. It has SASL like every local
 * broker; `auth()` gives its admin's credentials once it started.
 */
export function dedicatedBroker(port = 19092) {
  const cache = process.env.IONFLUX_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'ionflux');
  const env = { ...process.env, IONFLUX_RUN: join(cache, `run-broker-${port}`), KAFKA_PORT: String(port), KAFKA_CONTROLLER_PORT: String(port + 1) };
  const pidFile = join(env.IONFLUX_RUN, 'kafka.pid');
  const credentials = join(env.IONFLUX_RUN, 'kafka', 'credentials');
  return {
    brokers: [`127.0.0.1:${port}`],
    /** Where the broker's service principals' passwords are (as IONFLUX_KAFKA_CREDENTIALS for make test's). */
    credentials,
    auth(): KafkaAuth {
      return kafkaAuth({ KAFKA_SASL_MECHANISM: 'scram-sha-256', KAFKA_SASL_USERNAME: 'ionflux-admin', KAFKA_SASL_PASSWORD_FILE: join(credentials, 'ionflux-admin.password'), KAFKA_SSL: false });
    },
    /** The admin's client variables, for a process started against this broker. */
    adminEnv(): Record<string, string> {
      return { KAFKA_BROKERS: `127.0.0.1:${port}`, KAFKA_SASL_MECHANISM: 'scram-sha-256', KAFKA_SASL_USERNAME: 'ionflux-admin', KAFKA_SASL_PASSWORD: readFileSync(join(credentials, 'ionflux-admin.password'), 'utf8').trim() };
    },
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
    /** Stops it and deletes its data (topics, credentials), as make test does with its broker; its log stays. */
    async remove() {
      await this.stop();
      rmSync(join(env.IONFLUX_RUN, 'kafka'), { recursive: true, force: true });
    },
  };
}
