import { Registry, collectDefaultMetrics } from 'prom-client';

/** A Prometheus registry per service, with process metrics and a `service` label. */
export function createMetricsRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  return registry;
}
