import { parseEnv, withLocalHubEnv } from '../../shared/config.ts';
import { createSecretStore } from '../../shared/secrets/index.ts';
import { connectGrants } from '../../shared/security/connect-grant.ts';
import { publicBaseUrl, tiktokSyncEnv } from '../tiktok-sync/env.ts';
import { openConnections } from '../tiktok-sync/state/connections.ts';
import { parse, UsageError } from './args.ts';
import { awaitAuthorization, timeoutSeconds } from './connect-oauth.ts';
import { cliEnv } from './context.ts';
import { requireWorkspace } from './integrations.ts';

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
  const timeoutS = timeoutSeconds(values.timeout, USAGE);
  // The broker and admin credentials of .ionflux/kafka.env too, as every other command reads them.
  const env = parseEnv(tiktokSyncEnv, withLocalHubEnv());
  const baseUrl = publicBaseUrl(env);
  return awaitAuthorization({
    connector: 'tiktok', vendor: 'TikTok', service: 'tiktok-sync', settings: 'PUBLIC_BASE_URL / TIKTOK_SYNC_PORT', env, baseUrl,
    url: `${baseUrl}/tiktok/connect?workspace=${ws}&grant=${await connectGrants(createSecretStore(cliEnv()), 'tiktok').issue(ws)}`, workspace: ws, timeoutS, json: values.json,
    intro: { fields: {}, text: `Open this URL in a browser to connect a TikTok account to ${ws}` },
    openConnections,
    connected: (c) => ({ fields: { open_id: c?.open_id, scope: c?.scope }, text: `connected: TikTok account ${c?.open_id ?? '(unknown)'} for ${ws}${c ? ` (scopes ${c.scope.join(', ')})` : ''}` }),
    timeoutText: 'connect tiktok: no authorization',
  });
}
