import { HubError } from '../../../errors.ts';
import { spec } from '../../catalog/email.ts';
import type { Connector } from '../../types.ts';

/**
 * What `loadConnectors()` (the CLI's connect, integrations list/test) finds for email until the
 * catalog replaces it: the manifest and healthcheck of shared/connectors/catalog/email.ts. The
 * actions run in services/email-dispatcher (the connector worker skips `email` as dedicated).
 */
export const connector: Connector = {
  manifest: spec.manifest,
  events: spec.events,
  handlers: Object.fromEntries(
    Object.keys(spec.manifest.actions).map((a) => [a, async () => {
      throw new HubError('served_elsewhere', `email.${a} runs in services/email-dispatcher (ionflux.cmd.email)`);
    }]),
  ),
  healthcheck: (credentials, signal) => spec.healthcheck(credentials, signal),
};
