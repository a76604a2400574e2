import { Counter, Histogram, type Registry } from 'prom-client';

export const OUTCOMES = ['accepted', 'duplicate', 'bad_signature', 'too_large', 'unlinked', 'schema_failed', 'unavailable', 'overloaded', 'not_found'] as const;
export type Outcome = (typeof OUTCOMES)[number];

export interface IngesterMetrics {
  requests: Counter<'vendor' | 'outcome'>;
  publishSeconds: Histogram<'vendor'>;
  processed: Counter<'vendor' | 'outcome'>;
  /** Inbox records this process appended (edge) / committed as processed (processor): equal when it has caught up with itself. */
  appended: Counter;
  committed: Counter;
}

/** Per vendor and outcome, plus how long Kafka took to acknowledge. */
export function createIngesterMetrics(registry: Registry): IngesterMetrics {
  return {
    requests: new Counter({ name: 'ionflux_webhook_requests_total', help: 'Webhook deliveries by vendor and outcome', labelNames: ['vendor', 'outcome'], registers: [registry] }),
    publishSeconds: new Histogram({
      name: 'ionflux_webhook_publish_seconds',
      help: 'Time from verified delivery to the inbox append acknowledged by Kafka (acks=all)',
      labelNames: ['vendor'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    appended: new Counter({ name: 'ionflux_inbox_appended_total', help: 'Deliveries this process appended to the ingest inbox (acknowledged by Kafka)', registers: [registry] }),
    committed: new Counter({ name: 'ionflux_inbox_committed_total', help: 'Inbox records this process turned into events, dead letters or nothing (duplicates), committed', registers: [registry] }),
    processed: new Counter({ name: 'ionflux_inbox_processed_total', help: 'Inbox deliveries by vendor and what the processor made of them (published, stale, duplicate, dead_lettered)', labelNames: ['vendor', 'outcome'], registers: [registry] }),
  };
}
