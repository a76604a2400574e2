import { Counter, Gauge, type Registry } from 'prom-client';

/** Prometheus series of tiktok-sync: TikTok calls by endpoint and answer, refreshes, polled videos, owned connections. */
export function tiktokMetrics(registry: Registry, owned: () => number) {
  const calls = new Counter({ name: 'ionflux_tiktok_api_calls_total', help: 'TikTok API calls by endpoint and error code (ok on success)', labelNames: ['endpoint', 'code'], registers: [registry] });
  const refreshes = new Counter({ name: 'ionflux_tiktok_token_refreshes_total', help: 'Token refreshes done by this instance as owner, by outcome', labelNames: ['outcome'], registers: [registry] });
  const videos = new Counter({ name: 'ionflux_tiktok_polled_videos_total', help: 'Videos published as created/updated events by polling', registers: [registry] });
  new Gauge({ name: 'ionflux_tiktok_owned_connections', help: 'Connections whose refresh and polling this instance owns', registers: [registry], collect() { this.set(owned()); } });
  return {
    onCall: (endpoint: string, code: string) => calls.inc({ endpoint, code }),
    onRefresh: (outcome: string) => refreshes.inc({ outcome }),
    onVideos: (n: number) => videos.inc(n),
  };
}
