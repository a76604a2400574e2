import { Counter, Gauge, type Registry } from 'prom-client';
import type { Cost } from './api/admin.ts';

/** Prometheus series of shopify-sync: GraphQL calls and their cost, refreshes, synced entities, owned shops. */
export function shopifyMetrics(registry: Registry, owned: () => number) {
  const calls = new Counter({ name: 'ionflux_shopify_graphql_calls_total', help: 'GraphQL Admin calls by operation and outcome (ok, throttled, graphql_error, http_<status>, network)', labelNames: ['operation', 'outcome'], registers: [registry] });
  const points = new Counter({ name: 'ionflux_shopify_graphql_cost_points_total', help: 'Actual query cost points spent, by operation', labelNames: ['operation'], registers: [registry] });
  const refreshes = new Counter({ name: 'ionflux_shopify_token_refreshes_total', help: 'Offline token refreshes by outcome', labelNames: ['outcome'], registers: [registry] });
  const entities = new Counter({ name: 'ionflux_shopify_synced_entities_total', help: 'Entities appended to the ingest inbox by sync, by entity', labelNames: ['entity'], registers: [registry] });
  new Gauge({ name: 'ionflux_shopify_owned_shops', help: 'Installed shops whose polling this instance owns', registers: [registry], collect() { this.set(owned()); } });
  return {
    onCall: (operation: string, outcome: string, cost?: Cost) => {
      calls.inc({ operation, outcome });
      if (cost?.actualQueryCost) points.inc({ operation }, cost.actualQueryCost);
    },
    onRefresh: (outcome: string) => refreshes.inc({ outcome }),
    onEntities: (entity: string, n: number) => entities.inc({ entity }, n),
  };
}
