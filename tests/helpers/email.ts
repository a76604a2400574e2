import { spawn, type ChildProcess } from 'node:child_process';
import { freePort } from './ingester.ts';
import { uid } from './infra.ts';

export interface RunningDispatcher {
  /** The dispatcher's HTTP address (API, unsubscribe, ops). */
  url: string;
  output: string[];
  stop(): Promise<void>;
  kill(): Promise<void>;
  start(): Promise<void>;
}

/** services/email-dispatcher/main.ts as its own process, the way `make up` runs it. */
export async function startDispatcher(env: Record<string, string> = {}): Promise<RunningDispatcher> {
  const port = await freePort();
  const output: string[] = [];
  const fullEnv = { ...process.env, VAULT_TOKEN: process.env.VAULT_TOKEN ?? 'ionflux-dev-root', EMAIL_INSTANCE_ID: uid('em'), EMAIL_PORT: String(port), LOG_LEVEL: 'info', ...env };
  let child: ChildProcess;
  const exited = () => new Promise<void>((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));
  async function start(): Promise<void> {
    child = spawn(process.execPath, ['--import', 'tsx', 'services/email-dispatcher/main.ts'], { env: fullEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d: Buffer) => output.push(...d.toString().split('\n').filter(Boolean)));
    child.stderr!.on('data', (d: Buffer) => output.push(...d.toString().split('\n').filter(Boolean)));
    const deadline = Date.now() + 90_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`dispatcher exited ${child.exitCode}:\n${output.slice(-20).join('\n')}`);
      if (output.some((l) => l.includes('email dispatcher running')) && (await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok, () => false))) return;
      if (Date.now() > deadline) throw new Error(`dispatcher not ready:\n${output.slice(-20).join('\n')}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  await start();
  return {
    url: `http://127.0.0.1:${port}`,
    output,
    start,
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
