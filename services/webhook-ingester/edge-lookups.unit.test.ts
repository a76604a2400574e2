import { describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { createLogger } from '../../shared/logger.ts';
import type { Link } from '../../shared/links.ts';
import { accept as ingest, type EdgeDeps as IngestDeps } from './edge.ts';
import { createIngesterMetrics } from './metrics.ts';
import { vendors } from './vendors/index.ts';
import { sendgridHeaders, sendgridKeyPair, standardWebhookHeaders, toRawDelivery } from '../../tests/helpers/sign.ts';

/** Deps with a link table of `linked` keys and a secret lookup that counts its calls (and never answers). */
function deps(linked: string[]) {
  const lookups: string[] = [];
  const links = new Map<string, Link>(linked.map((k) => [k, { workspaceId: 'acme', linkedAt: '' }]));
  const d = {
    links: { get: (k: string) => links.get(k) },
    metrics: createIngesterMetrics(new Registry()),
    logger: createLogger({ service: 'test', level: 'silent' }),
    secretsFor: async (vendor: string, account?: string) => {
      lookups.push(`${vendor}:${account ?? ''}`);
      return null;
    },
  } as unknown as IngestDeps;
  return { d, lookups };
}

describe('edge: unsigned requests for unknown endpoints and accounts never reach the secret store', () => {
  const body = '{"type":"x.y"}';
  const signed = standardWebhookHeaders({ body, secrets: ['whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='] });

  it('answers 404 for a generic endpoint id the link table does not know, without a lookup', async () => {
    const { d, lookups } = deps(['generic:ep_known0000']);
    for (const id of ['ep_unknown000', 'ep_0123456789abcdef', '..', 'not-an-endpoint']) {
      expect(await ingest(d, vendors.generic!, toRawDelivery(body, signed, { pathParam: id }))).toEqual({ status: 404, body: { error: 'unknown_endpoint' } });
    }
    expect(lookups).toEqual([]);
    // A known one goes on to the secret lookup (here: none stored, so 404 as before).
    expect((await ingest(d, vendors.generic!, toRawDelivery(body, signed, { pathParam: 'ep_known0000' }))).status).toBe(404);
    expect(lookups).toEqual(['generic:ep_known0000']);
  });

  it('answers 404 for a SendGrid account the link table does not know, without a lookup; 401 for missing headers before any lookup', async () => {
    const { d, lookups } = deps(['email:shop-a']);
    const { privateKey } = sendgridKeyPair();
    const batch = '[{"event":"delivered","sg_event_id":"e1","timestamp":1}]';
    expect(await ingest(d, vendors.sendgrid!, toRawDelivery(batch, sendgridHeaders({ body: batch, privateKey }), { pathParam: 'shop-b' }))).toEqual({ status: 404, body: { error: 'unknown_account' } });
    expect(await ingest(d, vendors.sendgrid!, toRawDelivery(batch, {}, { pathParam: 'shop-a' }))).toMatchObject({ status: 401, body: { reason: 'missing_headers' } });
    expect(await ingest(d, vendors.shopify!, toRawDelivery('{}', {}))).toMatchObject({ status: 401, body: { error: 'invalid_signature', reason: 'missing_headers' } });
    expect(lookups).toEqual([]);
    // Linked, with no key stored for the account: the vendor is told to retry (503), as for a missing vendor secret.
    expect(await ingest(d, vendors.sendgrid!, toRawDelivery(batch, sendgridHeaders({ body: batch, privateKey }), { pathParam: 'shop-a' }))).toEqual({ status: 503, body: { error: 'vendor_not_configured' } });
    expect(lookups).toEqual(['email:shop-a']);
  });
});
