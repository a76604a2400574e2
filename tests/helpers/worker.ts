import { spawn, type ChildProcess } from 'node:child_process';
import { freePort } from './ingester.ts';
import { testStateDir, uid } from './infra.ts';

export interface RunningWorker {
  pid(): number;
  output: string[];
  stop(): Promise<void>;
  kill(): Promise<void>;
  start(): Promise<void>;
}

/** services/connector-worker/main.ts as its own process; `kill` is SIGKILL, `stop` a clean SIGTERM. */
export async function startWorker(env: Record<string, string> = {}, opts: { waitReady?: boolean } = {}): Promise<RunningWorker> {
  const port = await freePort();
  const output: string[] = [];
  const fullEnv = { ...process.env, VAULT_TOKEN: process.env.VAULT_TOKEN ?? 'ionflux-dev-root', WORKER_INSTANCE_ID: uid('w'), IONFLUX_STATE_DIR: testStateDir(), WORKER_OPS_PORT: String(port), LOG_LEVEL: 'info',
    // Tests post to receivers, simulators and media servers on 127.0.0.1, which the outbound policy refuses by default.
    OUTBOUND_ALLOWLIST: '127.0.0.1',
    // New workspaces' command topics are found within a second.
    COMMAND_TOPIC_RESCAN_MS: '1000',
    ...env };
  let child: ChildProcess;
  const exited = () => new Promise<void>((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));
  async function start(): Promise<void> {
    child = spawn(process.execPath, ['--import', 'tsx', 'services/connector-worker/main.ts'], { env: fullEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d: Buffer) => output.push(...d.toString().split('\n').filter(Boolean)));
    child.stderr!.on('data', (d: Buffer) => output.push(...d.toString().split('\n').filter(Boolean)));
    const deadline = Date.now() + 90_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`worker exited ${child.exitCode}:\n${output.slice(-20).join('\n')}`);
      if (output.some((l) => l.includes('connector worker running')) && (opts.waitReady === false || await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok, () => false))) return;
      if (Date.now() > deadline) throw new Error(`worker not ready:\n${output.slice(-20).join('\n')}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  await start();
  return {
    pid: () => child.pid!,
    output,
    start: async () => {
      output.length = 0;
      await start();
    },
    async stop() {
      child.kill('SIGTERM');
      await exited();
    },
    async kill() {
      child.kill('SIGKILL');
      await exited();
    },
  };
}
