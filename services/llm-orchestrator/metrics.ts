import { Counter, Histogram, type Registry } from 'prom-client';
import type { CallObservation } from './connector/run.ts';

/** Prometheus series of completed model calls: count, provider latency, our overhead, spend, fallbacks. */
export function llmMetrics(registry: Registry): (o: CallObservation) => void {
  const calls = new Counter({ name: 'ionflux_llm_calls_total', help: 'Completed model calls', labelNames: ['task', 'provider', 'model'], registers: [registry] });
  const provider = new Histogram({ name: 'ionflux_llm_provider_seconds', help: 'Time waiting for providers per call (all attempts)', labelNames: ['task', 'provider'], buckets: [0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60], registers: [registry] });
  const overhead = new Histogram({ name: 'ionflux_llm_overhead_seconds', help: 'Time the handler spent around the provider calls (routing, keys, budget, cost, response shaping)', labelNames: ['task'], buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05], registers: [registry] });
  const cost = new Counter({ name: 'ionflux_llm_cost_usd_total', help: 'List-price cost of completed calls, USD', labelNames: ['provider', 'model'], registers: [registry] });
  const fallbacks = new Counter({ name: 'ionflux_llm_fallbacks_total', help: 'Calls answered by a provider after the first in their chain', labelNames: ['task'], registers: [registry] });
  return (o) => {
    calls.inc({ task: o.task, provider: o.provider, model: o.model });
    provider.observe({ task: o.task, provider: o.provider }, o.providerMs / 1000);
    overhead.observe({ task: o.task }, o.overheadMs / 1000);
    if (o.costUsd > 0) cost.inc({ provider: o.provider, model: o.model }, o.costUsd);
    if (o.fallbacks > 0) fallbacks.inc({ task: o.task });
  };
}
