import { spawn } from 'node:child_process';

/** Runs the real `ionflux` CLI (bin/ionflux.mjs) and collects its output. */
export function runCli(args: string[], opts: { env?: Record<string, string>; unset?: string[]; input?: string; timeoutMs?: number } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
  for (const k of opts.unset ?? []) delete env[k];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/ionflux.mjs', ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const timer = setTimeout(() => {
      // Said in its stderr, which the failing assertion shows: which command hung, and for how long.
      stderr += `\n[runCli: \`ionflux ${args.join(' ')}\` killed after ${timeoutMs} ms without exiting]\n`;
      child.kill('SIGTERM');
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}
