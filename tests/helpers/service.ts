import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { testTmpDir } from './infra.ts';

/** A service under test, as its own process the way `make up` runs it. */
export interface RunningService {
  pid(): number;
  /** Every line the process printed (pino JSON), for grepping; cleared on `start()` unless kept. */
  output: string[];
  /** Clean stop: SIGTERM, then waits for the exit. */
  stop(): Promise<void>;
  /** SIGKILL, then waits for the exit. */
  kill(): Promise<void>;
  /** Starts it again with the same environment (same instance id and state folder). */
  start(): Promise<void>;
}

/**
 * Spawns `services/<name>/main.ts` and resolves once it logged `readyLine` (when given) and
 * `readyUrl` answers 200 (or, with `readyUrl` null, once it logged the line). A process that does not get there in
 * 90 s is killed and its last lines reported.
 */
export async function spawnService(o: { name: string; env: NodeJS.ProcessEnv; readyLine?: string; readyUrl: string | null; keepOutputOnRestart?: boolean }): Promise<RunningService> {
  const output: string[] = [];
  let child: ChildProcess;
  const exited = () => new Promise<void>((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));
  async function start(): Promise<void> {
    // Only this start's own ready line counts (a restart may keep the last run's output).
    const from = output.length;
    // SIGUSR2 writes a diagnostic report: a start that stalls shows which connections it waits on.
    // In the test run's folder like the services' state, so a run interrupted before the process
    // exits leaves nothing in /tmp.
    const reports = testTmpDir(`ionflux-report-${o.name.replace(/[^A-Za-z0-9-]/g, '_')}-`);
    child = spawn(process.execPath, ['--report-on-signal', '--report-signal=SIGUSR2', `--report-directory=${reports}`, '--import', 'tsx', `services/${o.name}/main.ts`], { env: o.env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.once('exit', () => rmSync(reports, { recursive: true, force: true }));
    const collect = (d: Buffer) => output.push(...d.toString().split('\n').filter(Boolean));
    child.stdout!.on('data', collect);
    child.stderr!.on('data', collect);
    const deadline = Date.now() + 90_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`${o.name} exited ${child.exitCode}:\n${output.slice(-20).join('\n')}`);
      const logged = o.readyLine === undefined || output.slice(from).some((l) => l.includes(o.readyLine!));
      if (logged && (o.readyUrl === null || (await fetch(o.readyUrl).then((r) => r.ok, () => false)))) return;
      if (Date.now() > deadline) {
        const waiting = await openConnections(child, reports);
        child.kill('SIGKILL'); // never leave one behind
        throw new Error(`${o.name} not ready in 90 s:\n${output.slice(-20).join('\n')}\n${waiting}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  await start();
  return {
    pid: () => child.pid!,
    output,
    start: async () => {
      if (!o.keepOutputOnRestart) output.length = 0;
      await start();
    },
    async stop() {
      child.kill('SIGTERM');
      // A service that does not finish its shutdown is killed, loudly, so one hang does not
      // also take the test's cleanup (and the broker's stop after it) down with it.
      const timer = setTimeout(() => {
        process.stderr.write(`${o.name} did not exit within 30 s of SIGTERM; killed. Last lines:\n${output.slice(-15).join('\n')}\n`);
        child.kill('SIGKILL');
      }, 30_000);
      await exited();
      clearTimeout(timer);
    },
    async kill() {
      child.kill('SIGKILL');
      await exited();
    },
  };
}

/** The process's open TCP connections and pending timers, from a diagnostic report (SIGUSR2). */
async function openConnections(child: ChildProcess, dir: string): Promise<string> {
  child.kill('SIGUSR2');
  for (let i = 0; i < 25; i++) {
    await new Promise((r) => setTimeout(r, 200));
    const file = readdirSync(dir).find((f) => f.endsWith('.json'));
    if (!file) continue;
    try {
      const report = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { libuv: { type: string; is_active?: boolean; localEndpoint?: { port: number }; remoteEndpoint?: { host: string; port: number } }[] };
      const tcp = report.libuv.filter((h) => h.type === 'tcp' && h.remoteEndpoint).map((h) => `${h.localEndpoint?.port}->${h.remoteEndpoint!.host}:${h.remoteEndpoint!.port}`);
      const timers = report.libuv.filter((h) => h.type === 'timer' && h.is_active).length;
      return `open connections (local->remote): ${tcp.join(', ') || 'none'}; active timer handles: ${timers}`;
    } catch {
      // still being written
    }
  }
  return 'no diagnostic report within 5 s';
}
