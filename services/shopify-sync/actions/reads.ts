import { shopGetInput, themesListInput } from '../../../shared/connectors/catalog/shopify.ts';
import { handler } from '../../../shared/connectors/types.ts';
import { call, type ActionDeps } from './deps.ts';

const SHOP = `query Shop { shop { id name email myshopifyDomain currencyCode ianaTimezone plan { displayName } primaryDomain { host } } }`;

/** `shop.get`: the shop itself, in snake_case. */
export const shopGet = (d: ActionDeps) =>
  handler(shopGetInput, async (ctx) => {
    const { shop: s } = await call<{ shop: Record<string, unknown> & { plan?: { displayName?: string }; primaryDomain?: { host?: string } } }>(d, ctx, 'shop.get', SHOP, {});
    return { shop: { id: s.id, name: s.name, email: s.email ?? null, myshopify_domain: s.myshopifyDomain, currency: s.currencyCode ?? null, timezone: s.ianaTimezone ?? null, plan: s.plan?.displayName ?? null, primary_domain: s.primaryDomain?.host ?? null } };
  });

export const THEMES = `query Themes { themes(first: 50) { edges { node { id name role updatedAt } } } }`;
export type ThemeNode = { id: string; name: string; role: string; updatedAt: string | null };
export const themeOut = (t: ThemeNode) => ({ id: t.id, name: t.name, role: t.role, updated_at: t.updatedAt ?? null });

/** `themes.list`: every theme and its role (MAIN is the live one). */
export const themesList = (d: ActionDeps) =>
  handler(themesListInput, async (ctx) => {
    const data = await call<{ themes: { edges: { node: ThemeNode }[] } }>(d, ctx, 'themes.list', THEMES, {});
    return { themes: data.themes.edges.map((e) => themeOut(e.node)) };
  });
