import { parseEnv, withLocalHubEnv } from '../../shared/config.ts';
import { createSecretStore } from '../../shared/secrets/index.ts';
import { connectGrants } from '../../shared/security/connect-grant.ts';
import { accountProblem } from '../../shared/links.ts';
import { publicBaseUrl, shopifySyncEnv } from '../shopify-sync/env.ts';
import { openConnections } from '../shopify-sync/state/connections.ts';
import { parse, UsageError } from './args.ts';
import { awaitAuthorization, timeoutSeconds } from './connect-oauth.ts';
import { cliEnv } from './context.ts';
import { requireWorkspace } from './integrations.ts';

const USAGE = 'ionflux connect shopify --workspace <w> --shop <shop>.myshopify.com [--timeout <s>] [--json]';

/**
 * `ionflux connect shopify --workspace W --shop S`: prints the hub's install URL (shopify-sync
 * redirects it to the shop's OAuth page) and waits until the installation of that shop appears in
 * the workspace-connectors table, written by the OAuth callback. Exit 0 when installed, 1 on timeout.
 */
export async function connectShopify(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { workspace: { type: 'string' }, shop: { type: 'string' }, timeout: { type: 'string' }, json: { type: 'boolean' } }, USAGE);
  if (positionals.length !== 1) throw new UsageError(`usage: ${USAGE}`);
  const ws = requireWorkspace(values.workspace, USAGE);
  const shop = (values.shop ?? '').toLowerCase();
  const problem = accountProblem('shopify', shop);
  if (problem) throw new UsageError(`--shop: ${problem}\nusage: ${USAGE}`);
  const timeoutS = timeoutSeconds(values.timeout, USAGE);
  // The broker and admin credentials of .ionflux/kafka.env too, as every other command reads them.
  const env = parseEnv(shopifySyncEnv, withLocalHubEnv());
  const baseUrl = publicBaseUrl(env);
  return awaitAuthorization({
    connector: 'shopify', vendor: 'Shopify', service: 'shopify-sync', settings: 'PUBLIC_BASE_URL / SHOPIFY_SYNC_PORT', env, baseUrl,
    url: `${baseUrl}/shopify/install?shop=${shop}&workspace=${ws}&grant=${await connectGrants(createSecretStore(cliEnv()), 'shopify').issue(ws)}`, workspace: ws, timeoutS, json: values.json,
    intro: { fields: { shop }, text: `Open this URL in a browser to install the app on ${shop} for ${ws}` },
    openConnections,
    connected: (c) => (c?.shop === shop ? { fields: { shop: c.shop, scope: c.scope }, text: `installed: ${c.shop} for ${ws} (scopes ${c.scope.join(', ')})` } : null),
    timeoutText: 'connect shopify: no installation',
  });
}
