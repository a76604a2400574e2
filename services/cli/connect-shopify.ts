import { openWorkspaceConnectors, wsConnectorKey } from '../../shared/commands/state.ts';
import { parseEnv } from '../../shared/config.ts';
import { accountProblem } from '../../shared/links.ts';
import { publicBaseUrl, shopifySyncEnv } from '../shopify-sync/env.ts';
import { openConnections } from '../shopify-sync/state/connections.ts';
import { parse, UsageError } from './args.ts';
import { cliContext } from './context.ts';
import { emit, requireWorkspace } from './integrations.ts';

const USAGE = 'ionflux connect shopify --workspace <w> --shop <shop>.myshopify.com [--timeout <s>] [--json]';

/**
 * `ionflux connect shopify --workspace W --shop S`: prints the hub's install URL (shopify-sync
 * redirects it to the shop's OAuth page) and waits until the installation appears in the
 * workspace-connectors table, written by the OAuth callback. Exit 0 when installed, 1 on timeout.
 */
export async function connectShopify(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { workspace: { type: 'string' }, shop: { type: 'string' }, timeout: { type: 'string' }, json: { type: 'boolean' } }, USAGE);
  if (positionals.length !== 1) throw new UsageError(`usage: ${USAGE}`);
  const ws = requireWorkspace(values.workspace, USAGE);
  const shop = (values.shop ?? '').toLowerCase();
  const problem = accountProblem('shopify', shop);
  if (problem) throw new UsageError(`--shop: ${problem}\nusage: ${USAGE}`);
  const timeoutS = Number(values.timeout ?? 600);
  if (!Number.isFinite(timeoutS) || timeoutS <= 0) throw new UsageError(`--timeout must be a number of seconds\nusage: ${USAGE}`);
  const env = parseEnv(shopifySyncEnv);
  const url = `${publicBaseUrl(env)}/shopify/install?shop=${shop}&workspace=${ws}`;
  const ctx = cliContext(env);
  const [table, connections] = await Promise.all([openWorkspaceConnectors(ctx), openConnections(ctx)]);
  try {
    const started = Date.now();
    const since = Date.parse(table.get(wsConnectorKey(ws, 'shopify'))?.updated_at ?? '') || 0;
    emit(values.json, { connector: 'shopify', workspace: ws, shop, authorization_url: url, waiting_s: timeoutS }, `Open this URL in a browser to install the app on ${shop} for ${ws}:\n  ${url}\nWaiting up to ${timeoutS} s for Shopify's answer...`);
    const reachable = await fetch(`${publicBaseUrl(env)}/healthz`, { signal: AbortSignal.timeout(3000) }).then((r) => r.ok, () => false);
    if (!reachable) process.stderr.write(`warning: shopify-sync does not answer at ${publicBaseUrl(env)} (is it running? PUBLIC_BASE_URL / SHOPIFY_SYNC_PORT)\n`);
    while (Date.now() - started < timeoutS * 1000) {
      const e = table.get(wsConnectorKey(ws, 'shopify'));
      const at = Date.parse(e?.updated_at ?? '') || 0;
      const c = connections.get(ws);
      if (e?.connection === 'connected' && at > since && at >= started - 1000 && c?.shop === shop) {
        emit(values.json, { connector: 'shopify', workspace: ws, connection: 'connected', shop: c.shop, scope: c.scope }, `installed: ${c.shop} for ${ws} (scopes ${c.scope.join(', ')})`);
        return 0;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    process.stderr.write(`connect shopify: no installation within ${timeoutS} s; run it again to get a fresh link\n`);
    return 1;
  } finally {
    await Promise.all([table.close(), connections.close()]);
    await ctx.close();
  }
}
