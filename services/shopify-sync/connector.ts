import { events, manifest } from '../../shared/connectors/catalog/shopify.ts';
import { validateManifest } from '../../shared/connectors/manifest.ts';
import type { Connector } from '../../shared/connectors/types.ts';
import { describeError } from '../../shared/errors.ts';
import type { ActionDeps } from './actions/deps.ts';
import { shopGet, themesList } from './actions/reads.ts';
import { syncAction } from './actions/sync.ts';
import { inventoryAdjust, ordersTag, productsUpdate, scriptTagsDelete, themesRollback } from './actions/writes.ts';

/**
 * The Shopify connector as shopify-sync runs it: the catalog's manifest (its authHelp pointing at
 * this deployment's install URL), one handler per action, and the syncs resumable (each page is
 * checkpointed under the command's id).
 */
export function createShopifyConnector(d: ActionDeps): Connector {
  return {
    manifest: validateManifest({ ...manifest, authHelp: 'Install the app on a shop: an admin runs `ionflux connect shopify --workspace <workspace> --shop <shop>.myshopify.com` and opens the link it prints (the failure message carries one for this workspace too). See docs/shopify-sync.md.' }),
    events,
    resumable: new Set(['products.sync', 'orders.sync', 'customers.sync', 'inventory.sync']),
    handlers: {
      'shop.get': shopGet(d),
      'products.sync': syncAction(d, 'products'),
      'orders.sync': syncAction(d, 'orders'),
      'customers.sync': syncAction(d, 'customers'),
      'inventory.sync': syncAction(d, 'inventory'),
      'themes.list': themesList(d),
      'orders.tag': ordersTag(d),
      'products.update': productsUpdate(d),
      'inventory.adjust': inventoryAdjust(d),
      'themes.rollback': themesRollback(d),
      'script_tags.delete': scriptTagsDelete(d),
    },
    // A command's token refused (401) even once refreshed: marked only while it is still the stored one (tokens/reauth.ts).
    markUnauthorized: (ws, detail, usedUpdatedAt) => d.tokens.markRefused(ws, detail, usedUpdatedAt),
    async healthcheck(credentials, signal) {
      const shop = credentials.meta ? (JSON.parse(credentials.meta) as { shop?: string }).shop : undefined;
      if (!credentials.access_token || !shop) return { ok: false, detail: 'no offline token: install the app with `ionflux connect shopify`' };
      try {
        const { data } = await d.api.graphql<{ shop: { name: string } }>(shop, credentials.access_token, 'shop.get', 'query Shop { shop { name } }', {}, signal);
        return { ok: true, detail: `installed on ${data.shop.name} (${shop})` };
      } catch (e) {
        return { ok: false, detail: describeError(e).message };
      }
    },
  };
}
