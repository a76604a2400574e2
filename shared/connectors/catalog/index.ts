import { validateManifest } from '../manifest.ts';
import type { ConnectorSpec } from '../types.ts';
import { spec as email } from './email.ts';
import { spec as llm } from './llm.ts';
import { spec as platform } from './platform.ts';
import { spec as shopify } from './shopify.ts';
import { spec as tiktok } from './tiktok.ts';
import { spec as webhook } from './webhook.ts';

/**
 * Every connector of the hub, as other processes need to know it (the CLI, contract
 * registration): manifest, emitted events and credential healthcheck. Each connector's handlers
 * live in the service that runs it (services/<service>/), never here.
 */
export const catalog: ReadonlyMap<string, ConnectorSpec> = byId([email, llm, platform, shopify, tiktok, webhook]);

function byId(specs: ConnectorSpec[]): Map<string, ConnectorSpec> {
  const out = new Map<string, ConnectorSpec>();
  for (const s of specs) {
    const manifest = validateManifest(s.manifest);
    if (out.has(manifest.id)) throw new Error(`two connectors with id ${manifest.id}`);
    out.set(manifest.id, { ...s, manifest });
  }
  return out;
}
