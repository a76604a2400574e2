import { Counter, Histogram, type Registry } from 'prom-client';

/** What a unit observation carries: the provider, how the unit ended, how many messages, how long the provider took. */
export interface UnitObservation {
  provider: string;
  state: 'sent' | 'failed' | 'unknown' | 'unavailable' | 'throttled';
  messages: number;
  providerMs?: number;
}

/** Prometheus series of messages by provider and result, and provider latency per call. */
export function emailMetrics(registry: Registry): (o: UnitObservation) => void {
  const messages = new Counter({ name: 'ionflux_email_messages_total', help: 'Messages by provider and result (throttled: a provider 429/4xx/5xx that was waited out)', labelNames: ['provider', 'state'], registers: [registry] });
  const latency = new Histogram({ name: 'ionflux_email_provider_seconds', help: 'Time of one provider call (an SMTP message or a SendGrid request)', labelNames: ['provider'], buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 30], registers: [registry] });
  return (o) => {
    messages.inc({ provider: o.provider, state: o.state }, o.messages);
    if (o.providerMs !== undefined) latency.observe({ provider: o.provider }, o.providerMs / 1000);
  };
}
