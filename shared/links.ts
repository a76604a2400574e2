import { z } from 'zod';
import { isWorkspaceId } from './ids.ts';
import { KafkaTable, jsonValue, type TableHost } from './bus/table/table.ts';
import { topics } from './bus/topics.ts';

/**
 * Which workspace a vendor account belongs to: `shopify:<shop-domain>`, `tiktok:<open-id>`,
 * `whatsapp:<phone-number-id>`, `email:<account>`, `generic:<endpoint-id>`. Kept in a compacted
 * topic, so links survive restarts of everything and every service sees the same ones.
 */
export const LINK_VENDORS = ['shopify', 'tiktok', 'whatsapp', 'email', 'generic'] as const;
export type LinkVendor = (typeof LINK_VENDORS)[number];

export const linkSchema = z.object({
  workspaceId: z.string().refine(isWorkspaceId, 'invalid workspace id'),
  linkedAt: z.string(),
  /** For generic endpoints: the source name their events are published under. */
  source: z.string().optional(),
});
export type Link = z.infer<typeof linkSchema>;

const ACCOUNT_RULES: Record<LinkVendor, RegExp> = {
  shopify: /^[a-z0-9][a-z0-9-]{0,62}\.myshopify\.com$/,
  tiktok: /^[A-Za-z0-9_-]{1,128}$/,
  whatsapp: /^[0-9]{1,32}$/,
  email: /^[a-z0-9][a-z0-9_-]{0,62}$/,
  generic: /^ep_[a-z0-9]{8,64}$/,
};

/** Null when the account is acceptable for that vendor, else why not. */
export function accountProblem(vendor: string, account: string): string | null {
  if (!(LINK_VENDORS as readonly string[]).includes(vendor)) return `unknown vendor "${vendor}" (one of ${LINK_VENDORS.join(', ')})`;
  return ACCOUNT_RULES[vendor as LinkVendor].test(account) ? null : `"${account}" is not a valid ${vendor} account id`;
}

export const linkKey = (vendor: string, account: string) => `${vendor}:${account}`;

/**
 * The email account of a workspace's platform sends (SendGrid events on the shared endpoint, routed
 * by their `ionflux_workspace` custom arg): a name `ionflux link email` cannot give (`:` fails the
 * email account rule), so no admin-linked account, whatever it is called, takes a workspace's
 * platform events, and no platform send takes an account's.
 */
export const platformEmailAccount = (workspaceId: string) => `platform:${workspaceId}`;

/**
 * The account of SendGrid events about the platform's SendGrid account itself
 * (`account_status_change`), which name no workspace: linked to none, so they are parked on the
 * dead-letter topic as `unlinked`, one by one, and the rest of their batch is published.
 */
export const PLATFORM_EMAIL_ACCOUNT_ITSELF = platformEmailAccount('');

export type LinkTable = KafkaTable<Link>;

/** Opens the links table and waits until it has been read to its end. */
export async function openLinks(rt: TableHost): Promise<LinkTable> {
  const table = new KafkaTable<Link>({ ...rt, topic: topics.state('links'), parse: jsonValue((v) => linkSchema.parse(v)) });
  await table.start();
  return table;
}
