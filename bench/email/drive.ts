/**
 * bench/email: messages per second over SMTP to a local aiosmtpd server (tests/smtp/capture.py,
 * keeping nothing), the hub next to nodemailer sending directly to the same server, same run.
 *
 *   direct: one pooled nodemailer transport (5 connections, as the dispatcher's default) sending
 *           every message at once (the pool queues them).
 *   hub:    commands on ionflux.cmd.<bench service> (Kafka) -> email dispatcher process (decode,
 *           dedupe, pre-approval, command `started` state, per-unit ledger writes `sending` and
 *           `sent` acknowledged by Kafka around each SMTP send, outcome + state in one
 *           transaction) -> the driver counts outcomes. Time = first publish to last outcome.
 *   single: BENCH_SINGLE `send` commands spread over BENCH_WORKSPACES workspaces.
 *   bulk:   BENCH_BULK_COMMANDS `send_bulk` commands of BENCH_BULK_SIZE recipients each.
 * The dispatcher runs with its own command topic, groups and workspaces (EMAIL_WORKER_SERVICE),
 * so a hub running beside it is not involved; its rate limits are raised out of the way.
 * BENCH_CPU_PROF=<dir> writes a V8 CPU profile of the dispatcher there (bench/commands/prof-summary.ts reads it).
 * At the end (or on Ctrl-C) it removes what bench runs leave, this run's and an interrupted earlier
 * run's: the dispatcher's topics and consumer groups, its rows in the hub's shared tables
 * (workspace settings, the email units ledger) and its state folder.
 */
import { randomUUID } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import nodemailer from 'nodemailer';
import { createKafkaBus } from '../../shared/bus/kafka/bus.ts';
import { createKafka } from '../../shared/bus/kafka/client.ts';
import { KafkaTable } from '../../shared/bus/table/table.ts';
import { baseEnv, kafkaAuth, parseEnv } from '../../shared/config.ts';
import { topics } from '../../shared/bus/topics.ts';
import { encodeCommandJson } from '../../shared/commands/envelope.ts';
import { defaultOutcomeTopic } from '../../shared/commands/outcome.ts';
import { openWorkspaceConnectors, wsConnectorKey } from '../../shared/commands/state.ts';
import { templateDigest } from '../../shared/connectors/catalog/email.ts';
import { createEventCodec } from '../../shared/events/codec.ts';
import { createRegistry } from '../../shared/events/registry.ts';
import { createLogger } from '../../shared/logger.ts';
import { UNITS_TOPIC } from '../../services/email-dispatcher/ledger.ts';

const SINGLE = Number(process.env.BENCH_SINGLE ?? 1000);
const BULK_COMMANDS = Number(process.env.BENCH_BULK_COMMANDS ?? 4);
const BULK_SIZE = Number(process.env.BENCH_BULK_SIZE ?? 500);
const WORKSPACES = Number(process.env.BENCH_WORKSPACES ?? 20);
const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
const registryUrl = process.env.SCHEMA_REGISTRY_URL ?? 'http://127.0.0.1:8081/apis/ccompat/v7';
const run = randomUUID().replace(/-/g, '').slice(0, 8);
const service = `emailbench${run}`;
const log = (m: string) => process.stderr.write(`[bench-email] ${m}\n`);
const children: ChildProcess[] = [];
const killAll = () => children.forEach((c) => c.exitCode === null && c.signalCode === null && c.kill('SIGTERM'));
process.on('exit', killAll);
/** The dispatcher's table stores: removed at the end. */
const stateDir = mkdtempSync(join(tmpdir(), 'bench-email-'));
/** A bench run's topics, groups and workspaces' rows (`bench<run>w<i>:…`): what cleanup removes. */
const BENCH_TOPIC = /^ionflux\.(?:cmd\.emailbench[0-9a-f]{8}(?:\..+)?|emailbench[0-9a-f]{8}\..+|state\.commands-emailbench[0-9a-f]{8}|dlq\.emailbench[0-9a-f]{8})$/;
const BENCH_GROUP = /^(?:bench-email|ionflux)-emailbench[0-9a-f]{8}-/;
/** A row of a bench run's workspace (`bench<run>w<i>:…`): its run is told by group 1. */
const BENCH_ROW = /^bench([0-9a-f]{8})w\d+:/;
let cleaning: Promise<void> | undefined;
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => void (cleaning ? process.exit(130) : cleanup().finally(() => process.exit(130))));

/** Removes the dispatcher, then what bench runs left in the broker (see the header) and the state folder. */
function cleanup(): Promise<void> {
  return (cleaning ??= (async () => {
    await Promise.all(children.map((c) => (c.exitCode === null && c.signalCode === null ? new Promise((r) => (c.once('exit', r), c.kill('SIGTERM'))) : undefined)));
    const quiet = createLogger({ service: 'bench-email', level: 'silent' });
    const kafka = createKafka({ brokers, auth: kafkaAuth(parseEnv(baseEnv)), clientId: 'bench-email-cleanup', logger: quiet });
    const admin = kafka.admin();
    const cleaner = createKafkaBus({ brokers, auth: kafkaAuth(parseEnv(baseEnv)), clientId: 'bench-email-cleanup', logger: quiet });
    await admin.connect();
    try {
      const mine = (await admin.listTopics()).filter((t) => BENCH_TOPIC.test(t));
      // Rows are removed only for runs whose topics are here (this run's included): a workspace
      // that merely looks like a bench's is left alone.
      const runs = new Set([run, ...mine.map((t) => /emailbench([0-9a-f]{8})/.exec(t)![1]!)]);
      if (mine.length) await admin.deleteTopics({ topics: mine });
      const groups = (await admin.listGroups()).groups.map((g) => g.groupId).filter((g) => BENCH_GROUP.test(g));
      if (groups.length) await admin.deleteGroups(groups).catch(() => undefined);
      // Tombstones for the bench workspaces' rows in the tables every email dispatcher shares.
      let rows = 0;
      for (const topic of [topics.state('workspace-connectors'), UNITS_TOPIC]) {
        const table = new KafkaTable<unknown>({ bus: cleaner, logger: quiet, topic, parse: (b) => b });
        await table.start(120_000);
        const keys = table.entries().map(([k]) => k).filter((k) => runs.has(BENCH_ROW.exec(k)?.[1] ?? ''));
        if (keys.length) await cleaner.publishBatch(keys.map((k) => table.record(k, undefined)));
        rows += keys.length;
        await table.close();
      }
      log(`removed ${mine.length} bench topics, ${groups.length} consumer groups and ${rows} rows of bench workspaces`);
    } finally {
      await admin.disconnect();
      await cleaner.close();
      rmSync(stateDir, { recursive: true, force: true });
    }
  })());
}

const freePort = () => new Promise<number>((resolve, reject) => {
  const s = createServer();
  s.listen(0, '127.0.0.1', () => {
    const { port } = s.address() as { port: number };
    s.close(() => resolve(port));
  });
  s.on('error', reject);
});

function start(cmd: string, args: string[], env: Record<string, string>, ready: RegExp): Promise<ChildProcess> {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  return new Promise((resolve, reject) => {
    const on = (d: Buffer) => {
      if (process.env.BENCH_VERBOSE) process.stderr.write(d);
      out += d.toString();
      if (ready.test(out)) resolve(child);
    };
    child.stdout!.on('data', on);
    child.stderr!.on('data', on);
    child.once('exit', (c) => reject(new Error(`${args.at(-1)} exited ${c}:\n${out.slice(-2000)}`)));
  });
}

const template = { id: 'bench', subject: 'Order {{order}} shipped', text: 'Hi {{name}}, order {{order}} is on its way.', html: '<p>Hi {{name}}, order <b>{{order}}</b> is on its way.</p>' };
const rendered = (i: number) => ({ subject: `Order ${i} shipped`, text: `Hi P${i}, order ${i} is on its way.`, html: `<p>Hi P${i}, order <b>${i}</b> is on its way.</p>` });

async function direct(url: string, n: number): Promise<number> {
  const t = nodemailer.createTransport({ url, pool: true, maxConnections: 5, maxMessages: Infinity });
  const one = (i: number) => t.sendMail({ from: 'bench@ionflux.test', to: `d${i}@example.com`, ...rendered(i) });
  await Promise.all(Array.from({ length: 20 }, (_, i) => one(i))); // warm the pool
  const t0 = performance.now();
  await Promise.all(Array.from({ length: n }, (_, i) => one(i)));
  const s = (performance.now() - t0) / 1000;
  t.close();
  return n / s;
}

try {
  const python = process.env.IONFLUX_PYTHON ?? join(process.env.IONFLUX_CACHE ?? join(homedir(), '.cache', 'ionflux'), 'venv', 'bin', 'python');
  const smtpPort = await freePort();
  await start(python, ['tests/smtp/capture.py', String(smtpPort), '-'], {}, new RegExp(`READY ${smtpPort}`));
  const smtpUrl = `smtp://127.0.0.1:${smtpPort}`;
  log(`SMTP server on ${smtpPort}; direct nodemailer: ${SINGLE} and ${BULK_COMMANDS * BULK_SIZE} messages`);
  const directSingle = await direct(smtpUrl, SINGLE);
  const directBulk = await direct(smtpUrl, BULK_COMMANDS * BULK_SIZE);

  const logger = createLogger({ service: 'bench-email', level: 'warn', destination: process.stderr });
  const bus = createKafkaBus({ brokers, auth: kafkaAuth(parseEnv(baseEnv)), clientId: 'bench-email', logger, topicDefaults: { partitions: 3, replicationFactor: 1 } });
  const codec = await createEventCodec(createRegistry(registryUrl));
  const workspaces = Array.from({ length: WORKSPACES }, (_, i) => `bench${run}w${i}`);
  const settings = await openWorkspaceConnectors({ bus, logger });
  const approved = { approved_templates: { bench: { digest: templateDigest(template), approved_at: new Date().toISOString(), approved_by: 'bench' } } };
  await Promise.all(workspaces.map((ws) => settings.set(wsConnectorKey(ws, 'email'), { settings: approved, updated_at: new Date().toISOString() })));
  await settings.close();
  const outcomeTopics = workspaces.map((ws) => defaultOutcomeTopic(service, ws));
  await bus.ensureTopics([topics.command(service), ...outcomeTopics]);

  const port = await freePort();
  const rate = '1000000';
  void start(process.execPath, [...(process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_CPU_PROF] : []), '--import', 'tsx', 'services/email-dispatcher/main.ts'], {
    EMAIL_WORKER_SERVICE: service, EMAIL_INSTANCE_ID: `bench${run}`, IONFLUX_STATE_DIR: stateDir, COMMAND_GROUP_PREFIX: 'bench-email', EMAIL_PORT: String(port), EMAIL_PROVIDER: 'smtp', EMAIL_SMTP_URL: smtpUrl, EMAIL_FROM: 'bench@ionflux.test',
    EMAIL_RATE_PER_SECOND: rate, EMAIL_RATE_BURST: rate, EMAIL_WORKSPACE_RATE_PER_SECOND: rate, EMAIL_WORKSPACE_RATE_BURST: rate, LOG_LEVEL: process.env.BENCH_VERBOSE ? 'info' : 'warn',
  }, /$^/).catch(() => undefined);
  // Ready when /readyz answers (its log line is at info, below the bench's warn level).
  for (let i = 0; !(await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok, () => false)); i++) {
    if (i > 600) throw new Error('dispatcher not ready after 2 min');
    await new Promise((r) => setTimeout(r, 200));
  }
  log(`dispatcher up (service ${service}, ${WORKSPACES} workspaces)`);

  // Outcomes of every bench workspace, from the start of each topic.
  const done = new Map<string, string>();
  const exact = new RegExp(`^(?:${outcomeTopics.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})$`);
  const reader = await bus.read({
    topic: exact,
    from: 'beginning',
    onBatch: async ({ records }) => {
      for (const r of records) {
        if (!r.value) continue;
        const e = await codec.decode(r.value);
        done.set(e.correlation_id ?? '', e.event_type);
      }
    },
  });

  async function hub(label: string, commands: { ws: string; action: string; params: Record<string, unknown> }[], messages: number): Promise<number> {
    const ids = commands.map(() => randomUUID());
    const t0 = performance.now();
    await bus.publishBatch(commands.map((c, i) => ({ topic: topics.command(service), key: c.ws, value: encodeCommandJson({ command_id: ids[i]!, workspace_id: c.ws, agent_id: 'bench', service, action: c.action, params: c.params }) })));
    for (;;) {
      const finished = ids.filter((id) => done.has(id));
      if (finished.length === ids.length) break;
      if (Math.floor(performance.now() - t0) % 5000 < 20) log(`${label}: ${finished.length}/${ids.length}`);
      if (performance.now() - t0 > 600_000) throw new Error(`${label}: ${finished.length}/${ids.length} outcomes after 10 min`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const s = (performance.now() - t0) / 1000;
    const failed = ids.filter((id) => !done.get(id)!.endsWith('succeeded')).length;
    if (failed) throw new Error(`${label}: ${failed} commands did not succeed`);
    return messages / s;
  }

  // Warm-up: a few commands per workspace so every partition and producer path is hot.
  const sendParams = (to: string) => ({ to: [to], subject: template.subject, text: template.text, html: template.html, template_id: 'bench' });
  await hub('warm-up', workspaces.map((ws, i) => ({ ws, action: 'send', params: sendParams(`w${i}@example.com`) })), workspaces.length);
  const singles = Array.from({ length: SINGLE }, (_, i) => ({ ws: workspaces[i % WORKSPACES]!, action: 'send', params: sendParams(`s${i}@example.com`) }));
  const hubSingle = await hub('single', singles, SINGLE);
  const bulks = Array.from({ length: BULK_COMMANDS }, (_, c) => ({ ws: workspaces[c % WORKSPACES]!, action: 'send_bulk', params: { template, recipients: Array.from({ length: BULK_SIZE }, (_, i) => ({ email: `b${c}-${i}@example.com`, name: `P${i}`, merge: { order: i } })) } }));
  const hubBulk = await hub('bulk', bulks, BULK_COMMANDS * BULK_SIZE);

  const report = {
    at: new Date().toISOString(),
    smtp_server: 'aiosmtpd 1.4.6 on 127.0.0.1 (messages discarded)',
    single: { messages: SINGLE, workspaces: WORKSPACES, hub_msgs_per_s: Math.round(hubSingle), direct_nodemailer_msgs_per_s: Math.round(directSingle) },
    bulk: { commands: BULK_COMMANDS, recipients_per_command: BULK_SIZE, hub_msgs_per_s: Math.round(hubBulk), direct_nodemailer_msgs_per_s: Math.round(directBulk) },
  };
  mkdirSync('reports', { recursive: true });
  writeFileSync('reports/bench-email.json', JSON.stringify(report, null, 2));
  console.log(`\nemail over SMTP (aiosmtpd, 127.0.0.1), messages/s, same run:`);
  console.log(`  single  hub ${report.single.hub_msgs_per_s.toString().padStart(6)}   direct nodemailer ${report.single.direct_nodemailer_msgs_per_s.toString().padStart(6)}   (${SINGLE} send commands over ${WORKSPACES} workspaces)`);
  console.log(`  bulk    hub ${report.bulk.hub_msgs_per_s.toString().padStart(6)}   direct nodemailer ${report.bulk.direct_nodemailer_msgs_per_s.toString().padStart(6)}   (${BULK_COMMANDS} send_bulk x ${BULK_SIZE} recipients)`);
  await reader.close();
  await bus.close();
} finally {
  // A profiled dispatcher writes its profile on exit (cleanup waits for it to exit).
  await cleanup();
}
process.exit(0);

