import type { VendorModule } from './types.ts';
import { generic } from './generic.ts';
import { sendgrid } from './sendgrid.ts';
import { shopify } from './shopify.ts';
import { tiktok } from './tiktok.ts';
import { whatsapp } from './whatsapp.ts';

/**
 * Keyed by the vendor name in the route (/webhooks/shopify, /webhooks/tiktok,
 * /webhooks/email/sendgrid[/<account>], /webhooks/whatsapp, /webhooks/generic/<endpoint>).
 * `module.source` is the topic source: SendGrid publishes under 'email'.
 */
export const vendors: Record<string, VendorModule> = Object.freeze({
  shopify,
  tiktok,
  sendgrid,
  whatsapp,
  generic,
});

/** The vendor of each route path (`POST /webhooks/<path>`), as inbox records name it. */
export const vendorByRoute: ReadonlyMap<string, VendorModule> = new Map(Object.values(vendors).map((m) => [m.route.path, m]));

export type { MapResult, MappedEvent, RawDelivery, VendorModule, VerifyResult } from './types.ts';
export { verifyChallenge } from './whatsapp.ts';
export { shopifyTopicMap } from './shopify.ts';
