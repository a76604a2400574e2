import { afterAll, describe, expect, it } from 'vitest';
import { startDispatcher } from './helpers/email.ts';
import { startIngester } from './helpers/ingester.ts';
import { startOrchestrator } from './helpers/llm.ts';
import { serviceEnv } from './helpers/principals.ts';
import { startShopifySync } from './helpers/shopify.ts';
import { startTikTokSync } from './helpers/tiktok.ts';
import { startWorker } from './helpers/worker.ts';

/**
 * A fresh start prints no error. Every service starts at once, the way `make up` starts them; on
 * a broker that has just come up (`bash deploy/local/test.sh tests/quiet-start.integration.test.ts`
 * gives this file a broker of its own) that is when kafkajs meets the group coordinator still
 * loading, partitions without a leader yet and the first rebalances, and it logs each retry it
 * makes at ERROR. None of that is a failure: at info level a user must see no line at error.
 */
describe('a fresh start', () => {
  const running: Array<{ output: string[]; stop(): Promise<void> }> = [];
  afterAll(async () => {
    await Promise.all(running.map((s) => s.stop().catch(() => undefined)));
  });

  it('logs nothing at error (level >= 50) while the services find the broker', async () => {
    // QUIET_START_LOG_LEVEL=debug shows what was lowered (`kafkajsLevel` keeps kafkajs's own level).
    const as = (service: string) => ({ ...serviceEnv(service), LOG_LEVEL: process.env.QUIET_START_LOG_LEVEL ?? 'info' });
    const started = await Promise.allSettled([
      // Each as its own Kafka principal with its own OpenBao token, as `make up` runs them.
      startIngester(as('webhook-ingester')),
      startDispatcher(as('email-dispatcher')),
      startTikTokSync(as('tiktok-sync')),
      startShopifySync(as('shopify-sync')),
      startOrchestrator(as('llm-orchestrator')),
      startWorker(as('connector-worker')),
    ]);
    for (const s of started) if (s.status === 'fulfilled') running.push(s.value);
    const failed = started.filter((s): s is PromiseRejectedResult => s.status === 'rejected');
    expect(failed.map((f) => String(f.reason))).toEqual([]);
    // Consumers keep joining, rebalancing and restarting for a while after the first is ready.
    await new Promise((r) => setTimeout(r, 15_000));

    const errors = running.flatMap((s) => s.output).filter((line) => {
      try {
        return (JSON.parse(line) as { level?: number }).level! >= 50;
      } catch {
        return false; // not pino JSON (there is none at info)
      }
    });
    expect(errors).toEqual([]);
  }, 180_000);
});
