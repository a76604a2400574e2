import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ingester.ts';
import { interopPython } from './interop.ts';

/** One message as the SMTP server received it (envelope and parsed parts, see tests/smtp/capture.py). */
export interface CapturedMessage {
  n: number;
  mail_from: string;
  rcpt_tos: string[];
  headers: [string, string][];
  subject: string;
  message_id: string;
  text: string | null;
  html: string | null;
  attachments: { filename: string; content_type: string; size: number }[];
  auth: boolean;
  raw: string;
}

export interface SmtpCapture {
  port: number;
  /** smtp://[user:pass@]127.0.0.1:<port> */
  url: string;
  messages(): Promise<CapturedMessage[]>;
  /** Messages whose envelope includes `address`. */
  to(address: string): Promise<CapturedMessage[]>;
  header(m: CapturedMessage, name: string): string | undefined;
  /**
   * From now on every session gets `reply` at step `at` (a 421 also closes the connection), after
   * `allow` more transactions went through; null: serve again (tests/smtp/capture.py).
   */
  refuse(rule: { at: 'connect' | 'MAIL' | 'RCPT' | 'DATA'; reply: string; allow?: number } | null): Promise<void>;
  close(): Promise<void>;
}

/**
 * Starts the aiosmtpd capture server from the project's venv (deploy/local/install.sh) on a free
 * port, writing what it accepts to a temp dir that is removed on close.
 */
export async function startSmtpCapture(opts: { auth?: { user: string; pass: string } } = {}): Promise<SmtpCapture> {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'smtp-capture-'));
  const script = new URL('../smtp/capture.py', import.meta.url).pathname;
  const args = [script, String(port), dir, ...(opts.auth ? [`${opts.auth.user}:${opts.auth.pass}`] : [])];
  const child = spawn(interopPython(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`SMTP capture did not start:\n${output}`)), 15_000);
    const on = (d: Buffer) => {
      output += d.toString();
      if (output.includes(`READY ${port}`)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.on('data', on);
    child.stderr.on('data', on);
    child.once('exit', (code) => reject(new Error(`SMTP capture exited ${code}:\n${output}`)));
  });
  const messages = async (): Promise<CapturedMessage[]> => {
    const files = (await readdir(dir)).filter((f) => f.endsWith('.json')).sort();
    return Promise.all(files.map(async (f) => ({ ...(JSON.parse(await readFile(join(dir, f), 'utf8')) as Omit<CapturedMessage, 'raw'>), raw: await readFile(join(dir, f.replace(/\.json$/, '.eml')), 'utf8') })));
  };
  let refusals = 0;
  const auth = opts.auth ? `${encodeURIComponent(opts.auth.user)}:${encodeURIComponent(opts.auth.pass)}@` : '';
  return {
    port,
    url: `smtp://${auth}127.0.0.1:${port}`,
    messages,
    async to(address) {
      return (await messages()).filter((m) => m.rcpt_tos.some((r) => r.toLowerCase() === address.toLowerCase()));
    },
    header: (m, name) => m.headers.find(([k]) => k.toLowerCase() === name.toLowerCase())?.[1],
    async refuse(rule) {
      // A rule written again counts its `allow` again: each write is other content (a serial).
      // Renamed into place: the server never reads half a rule.
      if (rule) {
        await writeFile(join(dir, 'refuse.tmp'), JSON.stringify({ ...rule, serial: ++refusals }));
        await rename(join(dir, 'refuse.tmp'), join(dir, 'refuse'));
      } else await rm(join(dir, 'refuse'), { force: true });
    },
    async close() {
      child.kill('SIGTERM');
      await new Promise<void>((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', () => r())));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
