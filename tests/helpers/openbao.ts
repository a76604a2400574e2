import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { setupVault } from '../../shared/security/vault-setup.ts';
import { freePort } from './ingester.ts';
import { testTmpDir } from './infra.ts';

/** What `startOpenBao` gives a test: a server of its own that it may stop, freeze and bring back. */
export interface OwnOpenBao {
  /** http://127.0.0.1:<port> (VAULT_ADDR for a service). */
  addr: string;
  /** The root token `bao operator init` gave (the admin's is `token('ionflux-admin')`). */
  rootToken: string;
  /** A principal's token (`ionflux principals vault` made one per service and the admin's). */
  token(principal: string): string;
  pid(): number;
  /** SIGSTOP: the port still accepts connections, nothing answers (a hung server). */
  freeze(): void;
  /** SIGCONT after freeze(). */
  thaw(): void;
  /** SIGKILL, then waits for the exit: connections are refused. */
  kill(): Promise<void>;
  /** Starts the server again on the same storage and port; it comes back sealed, as a real one does. */
  restart(): Promise<void>;
  /** What an operator does after a restart: the unseal key from init, then waits until it is active. */
  unseal(): Promise<void>;
  /** Kills it and deletes its folder (storage, keys, tokens, log). */
  remove(): Promise<void>;
}

/**
 * A second OpenBao of the test's own (the one on 8200 is shared by everyone and stays up), the
 * same binary `make up` installs (deploy/local/install.sh). Not a dev server: dev mode keeps
 * everything in memory, so a killed one would come back empty. This one keeps its data in
 * integrated storage (raft; OpenBao 2.x has no `file` storage) under a folder of the test run,
 * is initialized with one unseal key, has KV v2 at `secret/` like the dev server, and gets the
 * policies and tokens `make up` gives each service (shared/security/vault-setup.ts).
 */
export async function startOpenBao(): Promise<OwnOpenBao> {
  const cache = process.env.IONFLUX_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'ionflux');
  const bin = join(cache, 'venv', 'bin', 'bao');
  const dir = testTmpDir('ionflux-openbao-');
  const [port, clusterPort] = [await freePort(), await freePort()];
  const addr = `http://127.0.0.1:${port}`;
  const config = join(dir, 'server.hcl');
  writeFileSync(config, [
    `storage "raft" {\n  path = "${join(dir, 'data')}"\n  node_id = "test"\n}`,
    `listener "tcp" {\n  address = "127.0.0.1:${port}"\n  cluster_address = "127.0.0.1:${clusterPort}"\n  tls_disable = true\n}`,
    `api_addr = "${addr}"`,
    `cluster_addr = "http://127.0.0.1:${clusterPort}"`,
    'ui = false',
  ].join('\n') + '\n');
  mkdirSync(join(dir, 'data'), { mode: 0o700 });
  const log = join(dir, 'server.log');

  let child: ChildProcess | undefined;
  const exited = () => new Promise<void>((r) => (!child || child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', () => r())));
  // Generous: initializing raft storage and unsealing take seconds on a busy machine.
  const call = async (method: string, path: string, body?: unknown, token?: string) => {
    const res = await fetch(`${addr}/v1/${path}`, { method, headers: { 'content-type': 'application/json', ...(token ? { 'X-Vault-Token': token } : {}) }, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(60_000) });
    const text = await res.text();
    return { status: res.status, json: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
  };
  /** Polls until `ok` holds (the server answers as wanted), or fails naming the last lines of its log. */
  const until = async (what: string, ok: () => Promise<boolean>) => {
    for (const deadline = Date.now() + 60_000; ; ) {
      if (await ok().catch(() => false)) return;
      if (Date.now() > deadline) throw new Error(`OpenBao (${addr}): ${what} not within 60 s:\n${readFileSync(log, 'utf8').split('\n').slice(-15).join('\n')}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  const start = async () => {
    const out = openSync(log, 'a');
    child = spawn(bin, ['server', `-config=${config}`], { stdio: ['ignore', out, out] });
    closeSync(out); // the server holds its own copy
    await until('listening', async () => (await call('GET', 'sys/health')).status > 0);
  };
  const health = () => call('GET', 'sys/health');

  const remove = async () => {
    child?.kill('SIGKILL'); // a frozen process is killed as well
    await exited();
    rmSync(dir, { recursive: true, force: true });
  };
  let unsealKey: string;
  let rootToken: string;
  const unseal = async () => {
    await call('PUT', 'sys/unseal', { key: unsealKey });
    await until('active after unseal', async () => (await health()).status === 200);
  };
  const tokens = join(dir, 'tokens');
  try {
    await start();
    const init = await call('PUT', 'sys/init', { secret_shares: 1, secret_threshold: 1 });
    unsealKey = (init.json.keys_base64 as string[])[0]!;
    rootToken = init.json.root_token as string;
    await unseal();
    const mounted = await call('POST', 'sys/mounts/secret', { type: 'kv', options: { version: '2' } }, rootToken);
    if (mounted.status >= 300) throw new Error(`OpenBao: mounting KV v2 at secret/ answered ${mounted.status}`);
    // A new KV v2 mount refuses writes for a moment while it sets itself up.
    await until('KV v2 ready', async () => (await call('POST', 'secret/data/ready', { data: { ready: 'yes' } }, rootToken)).status === 200);
    await call('DELETE', 'secret/metadata/ready', undefined, rootToken);
    await setupVault({ addr, rootToken, mount: 'secret', dir: tokens });
  } catch (e) {
    await remove(); // never a server left behind
    throw e;
  }

  return {
    addr,
    rootToken,
    token: (principal) => readFileSync(join(tokens, `${principal}.token`), 'utf8').trim(),
    pid: () => child!.pid!,
    freeze: () => void child!.kill('SIGSTOP'),
    thaw: () => void child!.kill('SIGCONT'),
    async kill() {
      child?.kill('SIGKILL');
      await exited();
    },
    restart: start,
    unseal,
    remove,
  };
}
