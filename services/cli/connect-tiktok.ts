import { openWorkspaceConnectors, wsConnectorKey } from '../../shared/commands/state.ts';
import { parseEnv } from '../../shared/config.ts';
import { publicBaseUrl, tiktokSyncEnv } from '../tiktok-sync/env.ts';
import { openConnections } from '../tiktok-sync/state/connections.ts';
import { parse, UsageError } from './args.ts';
import { cliContext } from './context.ts';
import { emit, requireWorkspace } from './integrations.ts';

const USAGE = 'ionflux connect tiktok --workspace <w> [--timeout <s>] [--json]';

/**
 * `ionflux connect tiktok --workspace W`: prints the hub's connect URL (tiktok-sync redirects it to
 * TikTok with PKCE) and waits until the connection appears in the workspace-connectors table,
 * written by the OAuth callback. Exit 0 when connected, 1 on timeout.
 */
export async function connectTikTok(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { workspace: { type: 'string' }, timeout: { type: 'string' }, json: { type: 'boolean' } }, USAGE);
  if (positionals.length !== 1) throw new UsageError(`usage: ${USAGE}`);
  const ws = requireWorkspace(values.workspace, USAGE);
  const timeoutS = Number(values.timeout ?? 600);
  if (!Number.isFinite(timeoutS) || timeoutS <= 0) throw new UsageError(`--timeout must be a number of seconds\nusage: ${USAGE}`);
  const env = parseEnv(tiktokSyncEnv);
  const url = `${publicBaseUrl(env)}/tiktok/connect?workspace=${ws}`;
  const ctx = cliContext(env);
  const [table, connections] = await Promise.all([openWorkspaceConnectors(ctx), openConnections(ctx)]);
  try {
    const started = Date.now();
    const since = Date.parse(table.get(wsConnectorKey(ws, 'tiktok'))?.updated_at ?? '') || 0;
    emit(values.json, { connector: 'tiktok', workspace: ws, authorization_url: url, waiting_s: timeoutS }, `Open this URL in a browser to connect a TikTok account to ${ws}:\n  ${url}\nWaiting up to ${timeoutS} s for TikTok's answer...`);
    const reachable = await fetch(`${publicBaseUrl(env)}/healthz`, { signal: AbortSignal.timeout(3000) }).then((r) => r.ok, () => false);
    if (!reachable) process.stderr.write(`warning: tiktok-sync does not answer at ${publicBaseUrl(env)} (is it running? PUBLIC_BASE_URL / TIKTOK_SYNC_PORT)\n`);
    while (Date.now() - started < timeoutS * 1000) {
      const e = table.get(wsConnectorKey(ws, 'tiktok'));
      const at = Date.parse(e?.updated_at ?? '') || 0;
      if (e?.connection === 'connected' && at > since && at >= started - 1000) {
        const c = connections.get(ws);
        emit(values.json, { connector: 'tiktok', workspace: ws, connection: 'connected', open_id: c?.open_id, scope: c?.scope }, `connected: TikTok account ${c?.open_id ?? '(unknown)'} for ${ws}${c ? ` (scopes ${c.scope.join(', ')})` : ''}`);
        return 0;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    process.stderr.write(`connect tiktok: no authorization within ${timeoutS} s; run it again to get a fresh link\n`);
    return 1;
  } finally {
    await Promise.all([table.close(), connections.close()]);
    await ctx.close();
  }
}
