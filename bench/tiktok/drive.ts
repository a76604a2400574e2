/**
 * bench/tiktok: videos per second listed from TikTok (the v2 simulator) and published as
 * `video.created` events by tiktok-sync's polling, under TikTok's documented limit for
 * /v2/video/list/ (600 requests per minute, one-minute sliding window, 20 videos a page: at most
 * 12,000 videos a minute, 200/s), as a fraction of what that limit allows.
 *
 *   yardstick: a bare loop of fetch() paging /v2/video/list/ of the same simulator, no Kafka,
 *              no limit: what the simulator and HTTP give on this machine
 *   unthrottled: tiktok-sync with the limits lifted (simulator and hub): what the hub itself does
 *              (list, version, one Kafka transaction of events + seen-state per page)
 *   limited:   tiktok-sync under TikTok's limits for BENCH_LIMITED_S seconds; measured over whole
 *              minutes after the first (whose window starts empty and allows a burst; a window
 *              that is not a whole number of minutes would catch the burst's echo and overstate)
 *
 * The bench runs tiktok-sync under its own service name, consumer groups and workspaces, and
 * removes its topics, groups, connection records and tokens at the end.
 * Env: BENCH_ACCOUNTS (40), BENCH_VIDEOS (1000 per account), BENCH_LIMITED_S (180).
 * Writes reports/bench-tiktok.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { createKafkaBus } from '../../shared/bus/kafka/bus.ts';
import { createKafka } from '../../shared/bus/kafka/client.ts';
import { baseEnv, kafkaAuth, parseEnv } from '../../shared/config.ts';
import { createLogger } from '../../shared/logger.ts';
import { createVaultSecretStore } from '../../shared/secrets/vault-store.ts';
import { secretPaths } from '../../shared/secrets/store.ts';
import { CONNECTIONS_TOPIC } from '../../services/tiktok-sync/state/connections.ts';
import { browseConnect, simEnv, startTikTokSync, type RunningTikTokSync } from '../../tests/helpers/tiktok.ts';
import { startTikTokSimulator, type TikTokSimulator } from '../../tests/simulators/tiktok/index.ts';

const ACCOUNTS = Number(process.env.BENCH_ACCOUNTS ?? 40);
const VIDEOS = Number(process.env.BENCH_VIDEOS ?? 1000);
const LIMITED_S = Number(process.env.BENCH_LIMITED_S ?? 180);
const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
const vault = createVaultSecretStore({ addr: process.env.VAULT_ADDR ?? 'http://127.0.0.1:8200', token: process.env.VAULT_TOKEN ?? 'ionflux-dev-root', mount: 'secret' });
const RUN = `b${Date.now().toString(36)}`;
const SERVICE = `tiktokbench${RUN}`;
const GROUP = `ionflux-tiktokbench-${RUN}`;
const log = (m: string) => process.stderr.write(`[bench-tiktok] ${m}\n`);
const quiet = createLogger({ service: 'bench-tiktok', level: 'silent' });
const bus = createKafkaBus({ brokers, auth: kafkaAuth(parseEnv(baseEnv)), clientId: 'bench-tiktok', logger: quiet });
// Deleting topics and groups is beyond the bus: the same client's admin does it.
const kafka = createKafka({ brokers, auth: kafkaAuth(parseEnv(baseEnv)), clientId: 'bench-tiktok-admin', logger: quiet });
const workspaces: string[] = [];
const running: RunningTikTokSync[] = [];
process.on('exit', () => running.forEach((r) => void r.kill().catch(() => undefined)));
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => void cleanup().finally(() => process.exit(130)));

/** The broker timestamps of every record on this run's video.created topics, read to their end. */
async function eventTimes(wss: string[]): Promise<number[]> {
  const wanted = new Set(wss.map((ws) => `ionflux.tiktok.ws_${ws}.video.created`));
  const times: number[] = [];
  const reader = await bus.read({
    topic: new RegExp(`^ionflux\\.tiktok\\.ws_ttbench${RUN}[a-z]\\d+\\.video\\.created$`),
    from: 'beginning',
    onBatch: (b) => void (wanted.has(b.topic) && times.push(...b.records.map((r) => Number(r.timestamp)))),
  });
  await reader.caughtUp;
  await reader.close();
  return times.sort((a, b) => a - b);
}

/** Waits until `total` events are on the topics; their timestamps. */
async function allEvents(wss: string[], total: number, timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const times = await eventTimes(wss);
    if (times.length >= total) return times;
    if (Date.now() > deadline) throw new Error(`only ${times.length} of ${total} events within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 2000));
  }
}

async function connectAll(sim: TikTokSimulator, sync: RunningTikTokSync, n: number, videos: number, phase: string): Promise<string[]> {
  const wss: string[] = [];
  for (let i = 0; i < n; i++) {
    const ws = `ttbench${RUN}${phase}${i}`;
    wss.push(ws);
    workspaces.push(ws);
    const user = sim.addUser({ videos });
    let r = await browseConnect(`${sync.url}/tiktok/connect?workspace=${ws}`, sim, user.open_id);
    if (r.status === 503) {
      // What a person does with "try again"; the reason is in the service's log.
      log(`connect answered 503 (${sync.output.filter((l) => /"level":[56]0/.test(l)).slice(-1)[0]?.slice(0, 400) ?? 'no error logged'}); trying again`);
      r = await browseConnect(`${sync.url}/tiktok/connect?workspace=${ws}`, sim, user.open_id);
    }
    if (r.status !== 200) throw new Error(`connect failed: ${r.status} ${r.body}`);
  }
  return wss;
}

const syncEnv = (sim: TikTokSimulator, extra: Record<string, string>) => ({
  ...simEnv(sim), TIKTOK_SERVICE: SERVICE, TIKTOK_SYNC_GROUP: GROUP, COMMAND_GROUP_PREFIX: GROUP, TIKTOK_POLL_INTERVAL_MS: '600000',
  TIKTOK_POLL_MAX_PAGES: '1000', ...extra,
});

async function yardstick(sim: TikTokSimulator, seconds: number): Promise<number> {
  const user = sim.addUser({ videos: 100_000 });
  // A grant made directly in the simulator: the bare loop measures listing, not OAuth.
  const grant = { id: 'bench', client_key: sim.clientKey, open_id: user.open_id, scopes: ['video.list'], refresh_token: 'x', refresh_expires_at: Date.now() + 3600_000, revoked: false };
  sim.state.grants.set(grant.id, grant);
  const token = sim.state.issueAccess(grant, 3600);
  let videos = 0;
  let cursor: number | undefined;
  const end = Date.now() + seconds * 1000;
  const t0 = performance.now();
  while (Date.now() < end) {
    const res = await fetch(`${sim.url}/v2/video/list/?fields=id,create_time,title,video_description,duration,like_count,comment_count,share_count,view_count`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ max_count: 20, ...(cursor ? { cursor } : {}) }) });
    const body = (await res.json()) as { data: { videos: unknown[]; cursor: number; has_more: boolean } };
    videos += body.data.videos.length;
    cursor = body.data.has_more ? body.data.cursor : undefined;
  }
  return videos / ((performance.now() - t0) / 1000);
}

/**
 * Removes what bench runs leave in the broker and the secret store: their processes, topics,
 * consumer groups, connection records and tokens (this run's, and an interrupted earlier run's).
 */
async function cleanup(): Promise<void> {
  await (async () => {
    for (const r of running.splice(0)) await r.stop().catch(() => undefined);
    const admin = kafka.admin();
    await admin.connect();
    try {
      const benchWs = (await vault.list('workspaces/')).map((w) => w.replace(/\/$/, '')).filter((w) => w.startsWith('ttbench'));
      const all = [...new Set([...workspaces, ...benchWs])];
      // Tombstones: no owner looks after a bench connection again.
      if (all.length) await bus.publishBatch(all.map((ws) => ({ topic: CONNECTIONS_TOPIC, key: ws, value: null })));
      for (const ws of all) await vault.delete(secretPaths.workspace(ws, 'tiktok')).catch(() => undefined);
      const mine = (await admin.listTopics()).filter((t) => t.includes('.ws_ttbench') || /tiktokbench/.test(t));
      if (mine.length) await admin.deleteTopics({ topics: mine });
      const groups = (await admin.listGroups()).groups.map((g) => g.groupId).filter((g) => g.startsWith('ionflux-tiktokbench-') || g.startsWith('bench-tiktok-reader-'));
      if (groups.length) await admin.deleteGroups(groups).catch(() => undefined);
      if (all.length || mine.length || groups.length) log(`removed ${all.length} bench connections, ${mine.length} topics, ${groups.length} groups`);
    } finally {
      await admin.disconnect();
    }
  })();
}

async function main(): Promise<void> {
  await cleanup(); // what an interrupted run left
  const report: Record<string, unknown> = { accounts: ACCOUNTS, videos_per_account: VIDEOS, page: 20, list_limit_per_minute: 600, allowed_videos_per_s: (600 * 20) / 60 };

  const free = await startTikTokSimulator({ limits: { 'video.list': 1e9 } });
  log('yardstick: bare fetch loop against the simulator, 10 s');
  report.yardstick_bare_videos_per_s = Math.round(await yardstick(free, 10));
  log(`  ${report.yardstick_bare_videos_per_s} videos/s`);

  log(`unthrottled hub: ${ACCOUNTS / 2} accounts x ${VIDEOS / 2} videos, limits lifted`);
  const fast = await startTikTokSync(syncEnv(free, { TIKTOK_RATE_LIMITS: JSON.stringify({ 'video.list': 1e9 }) }));
  running.push(fast);
  const fastStart = Date.now();
  const fastWs = await connectAll(free, fast, ACCOUNTS / 2, VIDEOS / 2, 'u');
  const fastTotal = (ACCOUNTS / 2) * (VIDEOS / 2);
  const ft = await allEvents(fastWs, fastTotal, 300_000);
  const firstList = Math.min(...free.requests.filter((r) => r.path === '/v2/video/list/' && r.at >= fastStart).map((r) => r.at));
  report.unthrottled_videos_per_s = Math.round(fastTotal / ((ft.at(-1)! - firstList) / 1000));
  log(`  ${report.unthrottled_videos_per_s} videos/s (${fastTotal} videos)`);
  await fast.stop();
  running.length = 0;
  await free.close();

  log(`hub under TikTok's limits (600 list requests/min): ${ACCOUNTS} accounts x ${VIDEOS} videos for ${LIMITED_S} s`);
  const sim = await startTikTokSimulator();
  const sync = await startTikTokSync(syncEnv(sim, {}));
  running.push(sync);
  const wss = await connectAll(sim, sync, ACCOUNTS, VIDEOS, 'l');
  const lists = () => sim.requests.filter((r) => r.path === '/v2/video/list/');
  const t0 = Math.min(...lists().map((r) => r.at));
  await new Promise((r) => setTimeout(r, Math.max(0, t0 + LIMITED_S * 1000 + 2000 - Date.now())));
  const end = t0 + LIMITED_S * 1000;
  const times = await eventTimes(wss);
  const inWindow = (from: number, to: number) => times.filter((t) => t >= from && t < to).length;
  const steadyFrom = t0 + 60_000;
  const minutes = Math.max(1, Math.floor((end - steadyFrom) / 60_000));
  const steadyTo = steadyFrom + minutes * 60_000;
  const steadyS = minutes * 60;
  const steadyVideos = inWindow(steadyFrom, steadyTo) / steadyS;
  const okLists = lists().filter((r) => r.at >= steadyFrom && r.at < steadyTo && r.status === 200).length;
  const throttled = lists().filter((r) => r.status === 429).length;
  report.limited = {
    seconds: LIMITED_S,
    steady_minutes: minutes,
    first_minute_videos: inWindow(t0, steadyFrom),
    steady_videos_per_s: Math.round(steadyVideos * 10) / 10,
    steady_fraction_of_allowed: Math.round((steadyVideos / 200) * 1000) / 1000,
    steady_list_requests_per_minute: Math.round((okLists / steadyS) * 60),
    answered_429: throttled,
    total_videos_published: times.filter((t) => t < end).length,
  };
  log(`  steady: ${(report.limited as { steady_videos_per_s: number }).steady_videos_per_s} videos/s = ${(report.limited as { steady_fraction_of_allowed: number }).steady_fraction_of_allowed} of the 200/s allowed; ${(report.limited as { steady_list_requests_per_minute: number }).steady_list_requests_per_minute} list requests/min; ${throttled} answered 429`);
  await sync.stop();
  running.length = 0;
  await sim.close();

  mkdirSync('reports', { recursive: true });
  writeFileSync('reports/bench-tiktok.json', `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}

try {
  await main();
} finally {
  await cleanup();
  await bus.close();
}
