import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { buildLlmConfig, type LlmEnv } from '../services/llm-orchestrator/connector/config.ts';
import { baseEnv, parseEnv } from '../shared/config.ts';
import { ADMIN_PRINCIPAL, SERVICES, servicePrincipal } from '../shared/security/principals.ts';
import { testTmpDir } from './helpers/infra.ts';
import { freePort } from './helpers/ingester.ts';

// There is no Docker engine here: docker-compose.yml is checked by deploy/compose-check.sh
// (`docker compose config -q` when the plugin exists, a structural check in Python always), and
// its hub services' environment is checked against the zod schemas the services really parse.

const root = join(dirname(new URL(import.meta.url).pathname), '..');

function composeCheck(args: string[] = []) {
  return spawnSync('bash', ['deploy/compose-check.sh', ...args], { cwd: root, encoding: 'utf8', timeout: 110_000 });
}

interface ComposeService {
  build?: unknown;
  command?: string | string[];
  environment?: Record<string, string | number | boolean | null> | string[];
  env_file?: string | (string | { path: string; required?: boolean })[];
}

/**
 * What a service's env_file entries hold, read from `projectDir` as compose reads them: NAME=value
 * lines, blank lines and `#` comments skipped, quotes around a value removed; a missing file is
 * an error unless the entry says `required: false`.
 */
function envFiles(svc: ComposeService, projectDir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of [svc.env_file ?? []].flat()) {
    const { path, required = true } = typeof entry === 'string' ? { path: entry } : entry;
    const file = join(projectDir, path);
    if (!existsSync(file)) {
      if (required) throw new Error(`env file ${path} not found`);
      continue;
    }
    for (const line of readFileSync(file, 'utf8').split(/\r?\n/)) {
      const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
      if (m && !line.trimStart().startsWith('#')) out[m[1]!] = m[2]!.replace(/^(['"])(.*)\1$/s, '$2');
    }
  }
  return out;
}

/**
 * A service's environment as compose resolves it where the shell (or .env) holds `host`:
 * `${VAR:-default}` is VAR's value or the default; a variable without a value is passed from
 * there when set and left unset when not. With `envFilesFrom` (a project directory), its env_file
 * entries are read there first, and `environment` wins over them, as compose does.
 */
function envOf(svc: ComposeService, host: Record<string, string> = {}, o: { envFilesFrom?: string } = {}): Record<string, string> {
  const env = svc.environment ?? {};
  const entries = Array.isArray(env) ? env.map((e): [string, string | null] => (e.includes('=') ? (e.split(/=(.*)/s).slice(0, 2) as [string, string]) : [e, null])) : Object.entries(env);
  const out: Record<string, string> = o.envFilesFrom ? envFiles(svc, o.envFilesFrom) : {};
  for (const [k, v] of entries) {
    if (v === null || v === undefined) {
      if (host[k] !== undefined) out[k] = host[k];
      continue;
    }
    out[k] = String(v).replace(/\$\{([A-Za-z_][A-Za-z0-9_]*):?-([^}]*)\}/g, (_, name: string, fallback: string) => host[name] || fallback);
  }
  return out;
}

/** The keys of every zod object a service's env.ts exports (e.g. ingesterEnv = baseEnv.extend(...)). */
async function serviceEnvSchema(mainFile: string): Promise<z.ZodObject | undefined> {
  const file = join(root, dirname(mainFile), 'env.ts');
  if (!existsSync(file)) return undefined;
  const mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  return Object.values(mod).find((v): v is z.ZodObject => v instanceof z.ZodObject);
}

describe('docker-compose.yml (checked without a Docker engine)', () => {
  it('deploy/compose-check.sh finds it well-formed', () => {
    const r = composeCheck();
    expect(r.stderr).toMatch(/OK: \d+ services/);
    expect(r.status, r.stderr).toBe(0);
  }, 120_000);

  it("hub services take only variables their config parses, and the values parse", async () => {
    const r = composeCheck(['--json']);
    expect(r.status, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as { 'x-hub-env': Record<string, string>; services: Record<string, ComposeService> };
    const baseKeys = Object.keys(baseEnv.shape);

    // The shared block is baseEnv only; the essentials are in it.
    expect(baseKeys).toEqual(expect.arrayContaining(Object.keys(doc['x-hub-env'])));
    expect(Object.keys(doc['x-hub-env'])).toEqual(expect.arrayContaining(['KAFKA_BROKERS', 'KAFKA_SASL_MECHANISM', 'SCHEMA_REGISTRY_URL', 'VAULT_ADDR', 'LOG_LEVEL']));
    // No shared secret: each service gets its own (see the principals test below).
    expect(Object.keys(doc['x-hub-env'])).not.toContain('VAULT_TOKEN');
    // Confluent's registry serves its API at the root, unlike Apicurio's /apis/ccompat/v7.
    expect(doc['x-hub-env'].SCHEMA_REGISTRY_URL).toBe('http://schema-registry:8081');

    const hub = Object.entries(doc.services).filter(([, s]) => s.build !== undefined);
    expect(hub.map(([name]) => name)).toContain('webhook-ingester');
    for (const [name, svc] of hub) {
      const command = Array.isArray(svc.command) ? svc.command : String(svc.command ?? '').split(/\s+/);
      const main = command.find((c) => c.endsWith('.ts'));
      expect(main, `${name} runs a .ts file`).toBeDefined();
      const schema = (await serviceEnvSchema(main!)) ?? baseEnv;
      const env = envOf(svc);
      const unknown = Object.keys(env).filter((k) => !(k in schema.shape));
      expect(unknown, `${name}: variables no config parses`).toEqual([]);
      expect(Object.keys(env), `${name} gets the shared hub env`).toEqual(expect.arrayContaining(Object.keys(doc['x-hub-env'])));
      // The service would start with this environment (exits naming bad variables otherwise).
      expect(() => parseEnv(schema, env), name).not.toThrow();
    }
  });

  it('the ingester publishes only its webhook port (8080) on every interface; its ops port (health, metrics) is another, unpublished, and health-checked', () => {
    const r = composeCheck(['--json']);
    const svc = (JSON.parse(r.stdout) as { services: Record<string, ComposeService & { ports?: string[]; healthcheck?: { test: string[] } }> }).services['webhook-ingester']!;
    expect(svc.ports).toEqual(['8080:8080']);
    const env = envOf(svc);
    expect(env).toMatchObject({ INGESTER_PORT: '8080', INGESTER_HOST: '0.0.0.0', INGESTER_OPS_PORT: '8089' });
    expect(env.INGESTER_OPS_PORT).not.toBe(env.INGESTER_PORT);
    expect(svc.healthcheck?.test.join(' ')).toContain(`:${env.INGESTER_OPS_PORT}/readyz`);
  });

  it('publishes nothing else on a public interface: ops ports, stored artifacts and the infrastructure bind to the host loopback or stay unpublished', () => {
    const r = composeCheck(['--json']);
    const services = (JSON.parse(r.stdout) as { services: Record<string, { ports?: (string | { published?: string | number; host_ip?: string; target?: number })[] }> }).services;
    const exposed: string[] = [];
    for (const [name, svc] of Object.entries(services)) {
      for (const p of svc.ports ?? []) {
        const [ip, published] = typeof p === 'string' ? (p.split(':').length === 3 ? [p.split(':')[0], p.split(':')[1]] : ['', p.split(':')[0]]) : [p.host_ip ?? '', String(p.published)];
        if (ip !== '127.0.0.1') exposed.push(`${name}:${published}`);
      }
    }
    expect(exposed).toEqual(['webhook-ingester:8080']);
  });

  it('every hub service is its own Kafka principal and has its own Vault token, each a Docker secret of its own', () => {
    const r = composeCheck(['--json']);
    type Svc = ComposeService & { secrets?: ({ source: string; target?: string } | string)[] };
    const doc = JSON.parse(r.stdout) as { services: Record<string, Svc>; secrets: Record<string, { file: string }> };
    const hub = Object.entries(doc.services).filter(([, s]) => s.build !== undefined);
    const sources = new Set<string>();
    for (const [name, svc] of hub) {
      const env = envOf(svc);
      expect(Object.keys(SERVICES), name).toContain(name);
      expect(env, name).toMatchObject({ KAFKA_SASL_USERNAME: servicePrincipal(name), KAFKA_SASL_PASSWORD_FILE: '/run/secrets/kafka-password', VAULT_TOKEN_FILE: '/run/secrets/vault-token' });
      expect(env.KAFKA_SASL_PASSWORD, name).toBeUndefined();
      expect(env.VAULT_TOKEN, name).toBeUndefined();
      const mounted = (svc.secrets ?? []).map((x) => (typeof x === 'string' ? { source: x, target: x } : x));
      const kafka = mounted.find((m) => m.target === 'kafka-password')!;
      const vault = mounted.find((m) => m.target === 'vault-token')!;
      expect(doc.secrets[kafka.source]?.file, name).toBe(`./deploy/compose/secrets/kafka/${servicePrincipal(name)}.password`);
      expect(doc.secrets[vault.source]?.file, name).toBe(`./deploy/compose/secrets/vault/${servicePrincipal(name)}.token`);
      for (const m of mounted) {
        expect(sources.has(m.source), `${m.source} mounted by two services`).toBe(false);
        sources.add(m.source);
      }
    }
    // Every secret the file names is one init-secrets.sh writes: run it in a scratch copy of the layout.
    const scratch = mkdtempSync(join(tmpdir(), 'ionflux-compose-'));
    try {
      mkdirSync(join(scratch, 'deploy/compose'), { recursive: true });
      copyFileSync(join(root, 'deploy/compose/init-secrets.sh'), join(scratch, 'deploy/compose/init-secrets.sh'));
      const run = spawnSync('bash', [join(scratch, 'deploy/compose/init-secrets.sh')], { encoding: 'utf8' });
      expect(run.status, run.stderr).toBe(0);
      expect(Object.values(doc.secrets).length).toBeGreaterThan(10);
      for (const s of Object.values(doc.secrets)) expect(readFileSync(join(scratch, s.file), 'utf8').length, s.file).toBeGreaterThan(20);
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });

  it('the broker has no unauthenticated listener and allows nothing without an ACL', () => {
    const start = readFileSync(join(root, 'deploy/compose/kafka-start.sh'), 'utf8');
    const map = /^listener\.security\.protocol\.map=(.*)$/m.exec(start)![1]!.split(',').map((e) => e.split(':')[1]);
    expect(map.length).toBeGreaterThan(0);
    expect(map.every((p) => p === 'SASL_PLAINTEXT' || p === 'SASL_SSL')).toBe(true);
    expect(start).toMatch(/^authorizer\.class\.name=org\.apache\.kafka\.metadata\.authorizer\.StandardAuthorizer$/m);
    expect(start).toMatch(/^allow\.everyone\.if\.no\.acl\.found=false$/m);
    const doc = JSON.parse(composeCheck(['--json']).stdout) as { services: Record<string, { depends_on?: Record<string, { condition: string }>; environment?: Record<string, string> }> };
    expect(doc.services['schema-registry']!.environment!.SCHEMA_REGISTRY_KAFKASTORE_SECURITY_PROTOCOL).toBe('SASL_PLAINTEXT');
    for (const name of ['webhook-ingester', 'connector-worker', 'schema-registry']) expect(doc.services[name]!.depends_on!['kafka-setup']?.condition, name).toBe('service_completed_successfully');
  });

  it("kafka-start.sh puts no password on a command line (a container's processes are in the host's ps): the storage tool reads them from an @argfile", () => {
    const start = readFileSync(join(root, 'deploy/compose/kafka-start.sh'), 'utf8');
    const secrets = [...start.matchAll(/^(\w+)=\$\(secret /gm)].map((m) => m[1]!);
    expect(secrets).toEqual(expect.arrayContaining(['broker', 'controller', 'admin']));
    // The commands it runs: continued lines joined, here-document bodies (bash writes those itself) left out.
    const commands: string[] = [];
    let heredoc: string | undefined;
    for (const line of start.replace(/\\\n/g, ' ').split('\n')) {
      if (heredoc !== undefined) {
        if (line.trim() === heredoc) heredoc = undefined;
        continue;
      }
      heredoc = /<<-?\s*'?(\w+)'?/.exec(line)?.[1];
      commands.push(line);
    }
    const uses = commands.filter((c) => !/^\s*#/.test(c) && secrets.some((v) => new RegExp(`\\$\\{?${v}\\b`).test(c)));
    expect(uses.length).toBeGreaterThan(0);
    // Only bash's own printf (a builtin: no process of its own, no command line) takes one.
    expect(uses.filter((c) => !/^\s*printf /.test(c))).toEqual([]);
    expect(start).toMatch(/kafka-run-class\.sh "@\$args"/);
  });

  it("the LLM orchestrator gets the keys its LLM_EXTRA_PROVIDERS name (api_key_env) from deploy/compose/secrets/llm-provider-keys.env; no other service does", async () => {
    const doc = JSON.parse(composeCheck(['--json']).stdout) as { services: Record<string, ComposeService> };
    // A provider whose key is in an environment variable, as docs/llm.md shows: the name is the
    // operator's choice, so compose cannot list it in the orchestrator's environment.
    const host = { LLM_EXTRA_PROVIDERS: JSON.stringify({ together: { base_url: 'https://api.together.xyz/v1', api_key_env: 'TOGETHER_API_KEY', key_required: true, models: { llama70b: { model: 'meta-llama/Llama-3.3-70B-Instruct-Turbo', tasks: ['text_generation'] } } } }) };
    const key = `tg-${randomBytes(16).toString('hex')}`;
    const schema = (await serviceEnvSchema('services/llm-orchestrator/main.ts'))!;
    const project = mkdtempSync(join(tmpdir(), 'ionflux-compose-keys-'));
    try {
      // No key file (a fresh checkout): the orchestrator starts all the same, without the key.
      const without = envOf(doc.services['llm-orchestrator']!, host, { envFilesFrom: project });
      expect(buildLlmConfig(parseEnv(schema, without) as LlmEnv, without).providers.together?.envKey).toBeUndefined();

      mkdirSync(join(project, 'deploy/compose/secrets'), { recursive: true });
      writeFileSync(join(project, 'deploy/compose/secrets/llm-provider-keys.env'), `# keys of LLM_EXTRA_PROVIDERS\nTOGETHER_API_KEY=${key}\nKAFKA_SASL_USERNAME=someone-else\n`);
      const env = envOf(doc.services['llm-orchestrator']!, host, { envFilesFrom: project });
      const config = buildLlmConfig(parseEnv(schema, env) as LlmEnv, env);
      expect(config.providers.together, 'the provider is configured').toMatchObject({ baseURL: 'https://api.together.xyz/v1', keyRequired: true });
      expect(config.providers.together!.envKey, 'the orchestrator has its key').toBe(key);
      // The service's own settings win over a line of the same name.
      expect(env.KAFKA_SASL_USERNAME).toBe(servicePrincipal('llm-orchestrator'));
      for (const [name, svc] of Object.entries(doc.services).filter(([n]) => n !== 'llm-orchestrator')) {
        expect(Object.values(envOf(svc, host, { envFilesFrom: project })), `${name} gets no provider key`).not.toContain(key);
      }
    } finally {
      rmSync(project, { recursive: true, force: true });
    }
  });

  it("vault-setup lets the LLM orchestrator read the keys of the LLM_EXTRA_PROVIDERS compose gives it, with the policies make up writes", async () => {
    const doc = JSON.parse(composeCheck(['--json']).stdout) as { services: Record<string, ComposeService> };
    // A host whose shell (or .env) names a provider of its own, as docs/llm.md shows.
    const host = { LLM_EXTRA_PROVIDERS: JSON.stringify({ ollama: { base_url: 'http://ollama:11434/v1', models: { 'llama3.1': { model: 'llama3.1:8b', tasks: ['text_generation'] } } } }) };
    const schema = (await serviceEnvSchema('services/llm-orchestrator/main.ts'))!;
    const orchestrator = parseEnv(schema, envOf(doc.services['llm-orchestrator']!, host)) as { LLM_EXTRA_PROVIDERS?: Record<string, unknown> };
    // (soft: vault-setup's part below is checked whatever this finds)
    expect.soft(Object.keys(orchestrator.LLM_EXTRA_PROVIDERS ?? {}), 'the orchestrator gets the provider').toEqual(['ollama']);

    // vault-setup's command, with the environment compose gives it, against an OpenBao dev server of
    // this test's own (as compose's is) instead of http://vault:8200.
    const cache = process.env.IONFLUX_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'ionflux');
    const rootToken = `root-${randomBytes(12).toString('hex')}`;
    const addr = `http://127.0.0.1:${await freePort()}`;
    const bao = spawn(join(cache, 'venv', 'bin', 'bao'), ['server', '-dev', `-dev-listen-address=${addr.slice('http://'.length)}`], { env: { ...process.env, BAO_DEV_ROOT_TOKEN_ID: rootToken }, stdio: 'ignore' });
    const dir = testTmpDir('ionflux-compose-vault-');
    const vault = async (method: string, path: string, token: string, body?: unknown) => {
      const res = await fetch(`${addr}/v1/${path}`, { method, headers: { 'X-Vault-Token': token, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(10_000) });
      const text = await res.text();
      return { status: res.status, json: (text ? JSON.parse(text) : {}) as { data?: { policy?: string } } };
    };
    /** `principals vault` as a process with exactly `env` (and PATH), its tokens in dir/<name>. */
    const principalsVault = (name: string, env: Record<string, string | undefined>) => {
      const r = spawnSync('node', ['--import', 'tsx', 'services/cli/main.ts', 'principals', 'vault', '--tokens-dir', join(dir, name)], {
        cwd: root, encoding: 'utf8', timeout: 60_000,
        env: { PATH: process.env.PATH, IONFLUX_ENV_DIR: join(dir, 'no-env'), ...env, VAULT_ADDR: addr, VAULT_TOKEN: rootToken },
      });
      expect(r.status, r.stderr).toBe(0);
    };
    const policies = async () => {
      const out: Record<string, string | undefined> = {};
      for (const p of [ADMIN_PRINCIPAL, ...Object.keys(SERVICES).map(servicePrincipal)]) out[p] = (await vault('GET', `sys/policies/acl/${p}`, rootToken)).json.data?.policy;
      return out;
    };
    try {
      for (const deadline = Date.now() + 30_000; (await fetch(`${addr}/v1/sys/health`).then((r) => r.status, () => 0)) !== 200; ) {
        expect(Date.now() < deadline, 'OpenBao dev server up').toBe(true);
        await new Promise((r) => setTimeout(r, 200));
      }
      principalsVault('compose', { NODE_ENV: 'production', ...envOf(doc.services['vault-setup']!, host) });
      // The provider's platform key, as an operator stores it, is readable with the orchestrator's token.
      expect((await vault('POST', 'secret/data/platform/ollama', rootToken, { data: { api_key: 'k' } })).status).toBe(200);
      const token = readFileSync(join(dir, 'compose', `${servicePrincipal('llm-orchestrator')}.token`), 'utf8').trim();
      expect((await vault('GET', 'secret/data/platform/ollama', token)).status, 'the orchestrator reads platform/ollama').toBe(200);
      const compose = await policies();
      expect(compose[servicePrincipal('llm-orchestrator')]).toContain('platform/ollama');

      // What deploy/local/infra-up.sh runs under make up: the caller's environment with the same setting.
      principalsVault('local', { ...process.env, ...host });
      expect(await policies()).toEqual(compose);
    } finally {
      bao.kill('SIGKILL');
    }
  }, 120_000);
});
