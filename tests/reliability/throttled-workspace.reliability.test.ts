import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KafkaTable } from '../../shared/bus/table/table.ts';
import { topics } from '../../shared/bus/topics.ts';
import { createHubClient, type HubClient } from '../../shared/commands/client.ts';
import { defaultOutcomeTopic } from '../../shared/commands/outcome.ts';
import { RELEASE_HEADER } from '../../shared/commands/release.ts';
import { openWorkspaceConnectors, wsConnectorKey, type WorkspaceConnector } from '../../shared/commands/state.ts';
import { secretPaths } from '../../shared/secrets/store.ts';
import { createVaultSecretStore } from '../../shared/secrets/vault-store.ts';
import { runCli } from '../helpers/cli.ts';
import { infraEnv, readAll, realInfra, uid } from '../helpers/infra.ts';
import { startReceiver } from '../helpers/receiver.ts';
import { startWorker, type RunningWorker } from '../helpers/worker.ts';

const env = infraEnv();
/** What the throttling vendor asks for: long enough that the other workspace's commands all fit in it. */
const RETRY_AFTER_S = 15;
const WORKER_ENV = { WORKER_CONNECTORS: 'webhook', RETRY_MAX_WAIT_MS: String((RETRY_AFTER_S + 5) * 1000), ACTION_TIMEOUT_MS: '90000' };

// RELIABILITY items 13 and 33: a vendor answers one workspace's command 429 with Retry-After; the
// worker waits what it asked, and the other workspaces' commands go on, on the same worker
// process: those it holds already and those sent while it waits (the waiting workspace's command
// topic is paused, not the worker's fetch). A worker that dies while a command waits leaves it to
// the next one, which calls the vendor again when the time has come. A vendor slow to answer one
// workspace's command holds that workspace's topic only, too, and a rebalance waits for its call.
describe('a vendor throttling or slowing one workspace (items 13, 33)', () => {
  let infra: Awaited<ReturnType<typeof realInfra>>;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let settings: KafkaTable<WorkspaceConnector>;
  let worker: RunningWorker;
  const clients: HubClient[] = [];
  const vault = createVaultSecretStore({ addr: env.vaultAddr, token: env.vaultToken, mount: 'secret' });
  const workspaces: string[] = [];

  beforeAll(async () => {
    infra = await realInfra('throttled-workspace');
    receiver = await startReceiver();
    settings = await openWorkspaceConnectors(infra);
    // A Retry-After within the worker's cap is honoured as asked.
    // A held call is answered within the action's timeout.
    worker = await startWorker(WORKER_ENV);
  }, 180_000);
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await worker?.stop();
    for (const ws of workspaces) await vault.delete(secretPaths.workspace(ws, 'webhook')).catch(() => undefined);
    await settings?.close();
    await receiver?.close();
    await infra?.close();
  }, 60_000);

  /** A workspace that may post to its own receiver path, pre-approved, with a signing secret. */
  async function workspace(ws: string): Promise<string> {
    workspaces.push(ws);
    const path = `/${ws}`;
    await vault.put(secretPaths.workspace(ws, 'webhook'), { signing_secret: `whsec_${randomBytes(32).toString('base64')}` });
    await settings.set(wsConnectorKey(ws, 'webhook'), { settings: { urls: [receiver.url(path)], preapproved: [receiver.url(path)] }, connection: 'connected', updated_at: new Date().toISOString() });
    return ws;
  }

  /** The records `topic` holds (its high watermarks), for waiting until sends have landed. */
  const held = async (topic: string) => (await infra.bus.offsets(topic)).reduce((n, p) => n + Number(p.high), 0);

  /** A client sending on each workspace's own command topic, as agents do; `order` lists outcomes as they come. */
  async function agents() {
    const client = await createHubClient({ brokers: env.brokers, auth: env.auth, registryUrl: env.registryUrl, commandTopics: 'workspace' });
    clients.push(client);
    const order: string[] = [];
    const send = (ws: string) => client.send({ workspace_id: ws, agent_id: 'agent-1', service: 'webhook', action: 'post', params: { url: receiver.url(`/${ws}`), payload: { ws } } }, { timeoutMs: 120_000 })
      .then((out) => (order.push(`${ws}:${out.status}`), out));
    return { send, order };
  }
  /** Two workspaces, each with one command done first (the worker has found both topics); `order` is empty after, `from` counts vendor calls from then. */
  async function twoWorkspaces() {
    const [a, b] = [await workspace(uid('ws')), await workspace(uid('ws'))];
    await infra.bus.ensureTopics([topics.workspaceCommand('webhook', a), topics.workspaceCommand('webhook', b)]);
    const agent = await agents();
    for (const ws of [a, b]) expect(await agent.send(ws)).toMatchObject({ status: 'succeeded' });
    agent.order.length = 0;
    return { a, b, ...agent, from: receiver.deliveries.length };
  }
  const callsTo = (ws: string, from: number) => receiver.deliveries.slice(from).filter((d) => d.path === `/${ws}`).length;
  /** The outcome events of a command on its workspace's outcome topic, as a user's consumer reads them. */
  const outcomesOf = async (ws: string, commandId: string) => {
    const out: { event_type: string; payload: { status: string; attempts?: number } }[] = [];
    for (const r of await readAll(infra.bus, defaultOutcomeTopic('webhook', ws))) {
      const e = await infra.codec.decode(r.value!);
      if (e.correlation_id === commandId) out.push({ event_type: e.event_type, payload: JSON.parse(e.payload_json) as { status: string } });
    }
    return out;
  };
  /** A vendor answer held until `release()` (or a minute, so a failing test still ends). */
  function slowAnswer() {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const cap = setTimeout(release, 60_000);
    return { answer: { status: 200, hold: held }, release: () => (clearTimeout(cap), release()) };
  }

  it("a command whose vendor call runs long holds only its workspace's topic: other workspaces' commands complete meanwhile, on the same worker", async () => {
    const { a, b, send, order, from } = await twoWorkspaces();

    const slow = slowAnswer();
    receiver.script(`/${a}`, [slow.answer]);
    const outA = send(a);
    await expect.poll(() => callsTo(a, from), { timeout: 30_000 }).toBe(1);
    // A's call is still unanswered: B's commands, sent now, are fetched and run meanwhile.
    const outB = await Promise.all([send(b), send(b), send(b)]);
    slow.release();
    expect(outB.map((o) => o.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    const doneA = await outA;
    expect(doneA).toMatchObject({ status: 'succeeded', attempts: 1 });
    expect(order).toEqual([`${b}:succeeded`, `${b}:succeeded`, `${b}:succeeded`, `${a}:succeeded`]);
    // A's topic goes on after it: its next command runs, and the long one was neither run nor answered twice.
    expect(await send(a)).toMatchObject({ status: 'succeeded' });
    expect(callsTo(a, from)).toBe(2);
    expect((await outcomesOf(a, doneA.command_id)).map((o) => o.payload.status)).toEqual(['succeeded']);
  }, 180_000);

  it('a worker joining while a long vendor call runs: the rebalance waits for the call, and the command has one call and one outcome', async () => {
    const { a, b, send, from } = await twoWorkspaces();
    const logFrom = worker.output.length;

    const slow = slowAnswer();
    receiver.script(`/${a}`, [slow.answer]);
    const outA = send(a);
    await expect.poll(() => callsTo(a, from), { timeout: 30_000 }).toBe(1);
    // B's command completing shows A's run left the batch (the worker fetches on).
    expect(await send(b)).toMatchObject({ status: 'succeeded' });
    // A second worker joins the group: the first one's rejoin waits for A's call to end.
    const joining = startWorker(WORKER_ENV);
    try {
      await expect.poll(() => worker.output.slice(logFrom).some((l) => l.includes('waiting for long-running records to end')), { timeout: 60_000 }).toBe(true);
      slow.release();
      await joining;
      const doneA = await outA;
      expect(doneA).toMatchObject({ status: 'succeeded', attempts: 1 });
      // Whichever worker owns each topic now, both go on.
      expect((await Promise.all([send(a), send(b)])).map((o) => o.status)).toEqual(['succeeded', 'succeeded']);
      expect(callsTo(a, from)).toBe(2);
      expect((await outcomesOf(a, doneA.command_id)).map((o) => o.payload.status)).toEqual(['succeeded']);
    } finally {
      slow.release();
      await joining.then((w) => w.stop(), () => undefined);
    }
  }, 240_000);

  it("commands sent while another workspace's command waits run at once, on the same worker", async () => {
    const { a, b, send, order, from } = await twoWorkspaces();

    receiver.script(`/${a}`, [{ status: 429, headers: { 'retry-after': String(RETRY_AFTER_S) } }]);
    const outA = send(a);
    // A's first call was answered 429: its command now waits RETRY_AFTER_S.
    await expect.poll(() => callsTo(a, from), { timeout: 30_000 }).toBe(1);
    const outB = await Promise.all([send(b), send(b), send(b)]);
    expect(outB.map((o) => o.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    // B's three were answered while A still waited: A's retry had not reached the vendor.
    expect(callsTo(a, from)).toBe(1);
    expect(await outA).toMatchObject({ status: 'succeeded', attempts: 2 });
    expect(callsTo(a, from)).toBe(2);
    expect(order).toEqual([`${b}:succeeded`, `${b}:succeeded`, `${b}:succeeded`, `${a}:succeeded`]);
  }, 180_000);

  it('a worker killed while a command waits: the next one calls the vendor again once the wait is over, and the command succeeds', async () => {
    const a = await workspace(uid('ws'));
    await infra.bus.ensureTopics([topics.workspaceCommand('webhook', a)]);
    const { send } = await agents();
    expect(await send(a)).toMatchObject({ status: 'succeeded' });
    const from = receiver.deliveries.length;

    receiver.script(`/${a}`, [{ status: 429, headers: { 'retry-after': String(RETRY_AFTER_S) } }]);
    const logFrom = worker.output.length;
    const out = send(a);
    await expect.poll(() => callsTo(a, from), { timeout: 30_000 }).toBe(1);
    // The worker has recorded this command's wait (its log says so) when it dies: the line of an
    // earlier test's wait does not count (killed before the record, the outcome is rightly unknown).
    await expect.poll(() => worker.output.slice(logFrom).some((l) => l.includes('vendor asked to wait') && l.includes(a)), { timeout: 10_000 }).toBe(true);
    await worker.kill();
    await worker.start();
    // Not `outcome_unknown`: the 429 changed nothing at the vendor, and the state said so.
    expect(await out).toMatchObject({ status: 'succeeded', attempts: 2 });
    expect(callsTo(a, from)).toBe(2);
  }, 180_000);

  it("commands fetched together: the other workspace's complete while the throttled one waits, on the same worker", async () => {
    const [a, b] = [await workspace(uid('ws')), await workspace(uid('ws'))];
    const [topicA, topicB] = [topics.workspaceCommand('webhook', a), topics.workspaceCommand('webhook', b)];
    await infra.bus.ensureTopics([topicA, topicB]);
    const { send, order } = await agents();
    // One command of each first, so the worker has found both topics (a rebalance) before the test.
    for (const ws of [a, b]) expect(await send(ws)).toMatchObject({ status: 'succeeded' });
    order.length = 0;
    const from = receiver.deliveries.length;

    // The worker is stopped while A's command and three of B's are sent, so that it fetches them together.
    await worker.stop();
    receiver.script(`/${a}`, [{ status: 429, headers: { 'retry-after': String(RETRY_AFTER_S) } }]);
    const [heldA, heldB] = [await held(topicA), await held(topicB)];
    const outcomes = [send(a), send(b), send(b), send(b)];
    await expect.poll(async () => [await held(topicA) - heldA, await held(topicB) - heldB], { timeout: 30_000 }).toEqual([1, 3]);
    await worker.start();
    const [outA] = await Promise.all(outcomes);

    expect(outA).toMatchObject({ status: 'succeeded', attempts: 2 });
    // The vendor saw B's three calls before A's retry, and B's outcomes came before A's.
    const calls = receiver.deliveries.slice(from).map((d) => d.path.slice(1));
    expect(calls.filter((p) => p === a)).toHaveLength(2);
    expect(calls.slice(-1)).toEqual([a]);
    expect(calls.filter((p) => p === b)).toHaveLength(3);
    expect(order).toEqual([`${b}:succeeded`, `${b}:succeeded`, `${b}:succeeded`, `${a}:succeeded`]);
  }, 180_000);

  it("a vendor rate-limiting a command on its workspace's topic (429) more times than the worker's attempts: it waits each time and succeeds", async () => {
    const a = await workspace(uid('ws'));
    await infra.bus.ensureTopics([topics.workspaceCommand('webhook', a)]);
    const { send } = await agents();
    expect(await send(a)).toMatchObject({ status: 'succeeded' });
    const from = receiver.deliveries.length;

    // Five 429s in a row, one more than RETRY_MAX_ATTEMPTS (4): a rate limit is "not now", not a failure.
    receiver.script(`/${a}`, Array.from({ length: 5 }, () => ({ status: 429, headers: { 'retry-after': '1' } })));
    expect(await send(a)).toMatchObject({ status: 'succeeded', attempts: 6 });
    expect(callsTo(a, from)).toBe(6);
  }, 180_000);

  it("an approved command that came on its workspace's topic is released there: its wait holds no other workspace's commands", async () => {
    const [a, b] = [await workspace(uid('ws')), await workspace(uid('ws'))];
    // A may post to its receiver path but has not pre-approved it: its post waits for an admin.
    await settings.set(wsConnectorKey(a, 'webhook'), { settings: { urls: [receiver.url(`/${a}`)] }, connection: 'connected', updated_at: new Date().toISOString() });
    const [topicA, topicB] = [topics.workspaceCommand('webhook', a), topics.workspaceCommand('webhook', b)];
    await infra.bus.ensureTopics([topicA, topicB]);
    const { send } = await agents();
    expect(await send(b)).toMatchObject({ status: 'succeeded' });
    const waiting = await send(a);
    expect(waiting).toMatchObject({ status: 'awaiting_approval' });
    const from = receiver.deliveries.length;

    receiver.script(`/${a}`, [{ status: 429, headers: { 'retry-after': String(RETRY_AFTER_S) } }]);
    expect((await runCli(['approvals', 'approve', waiting.approval_id!])).code).toBe(0);
    // The signed release is on A's own topic, after A's command.
    await expect.poll(async () => (await readAll(infra.bus, topicA)).filter((r) => r.headers[RELEASE_HEADER]).length, { timeout: 30_000 }).toBe(1);
    // Its first call was answered 429: it waits RETRY_AFTER_S, pausing A's topic only.
    await expect.poll(() => callsTo(a, from), { timeout: 30_000 }).toBe(1);
    const outB = await Promise.all([send(b), send(b)]);
    expect(outB.map((o) => o.status)).toEqual(['succeeded', 'succeeded']);
    expect(callsTo(a, from)).toBe(1);
    const finalOf = async () => (await outcomesOf(a, waiting.command_id)).find((o) => !o.event_type.endsWith('awaiting_approval'))?.payload;
    await expect.poll(finalOf, { timeout: 60_000, interval: 500 }).toMatchObject({ status: 'succeeded', attempts: 2 });
    expect(callsTo(a, from)).toBe(2);
  }, 180_000);
});
