import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryBus } from '../../shared/bus/memory.ts';
import { createLogger } from '../../shared/logger.ts';
import { openDeliveryLog, openEntityVersions, type Delivery, type EntityVersion } from './deliveries.ts';

const logger = createLogger({ service: 'deliveries-unit', level: 'silent' });

/**
 * The processor's own writes (markers and versions, in its transaction, then applied locally once
 * committed: processor.ts Batch) come back from the topic later; reading them back is what puts
 * them in the store on disk. A processor that skipped them because it had applied them already
 * would resume after a restart past markers it never stored, and publish the retries of those
 * deliveries again (issue 14's proposal; this failed with that skip in shared/bus/table/table.ts).
 */
describe("the processor's tables keep its own writes across a restart", () => {
  let bus: MemoryBus;
  let stateDir: string;
  beforeEach(() => {
    bus = new MemoryBus();
    stateDir = mkdtempSync(join(tmpdir(), 'ionflux-deliveries-unit-'));
  });
  afterEach(() => rmSync(stateDir, { recursive: true, force: true }));

  it('a marker and a version written and applied locally are read from the store after a restart', async () => {
    const host = { bus, logger, stateDir };
    let [log, versions] = await Promise.all([openDeliveryLog(host, 3600_000), openEntityVersions(host)]);
    const marker: Delivery = { eventId: 'evt-1', outcome: 'published', at: Date.now() };
    const version: EntityVersion = { version: new Date().toISOString(), eventId: 'evt-1', action: 'updated', origin: 'webhook' };
    // As a batch does: the records go out together, and the values are applied once that is committed
    // (before the table's reader brings them back, as it does on Kafka).
    const sent = bus.publishAtomic([log.record('shopify:shop:d1', marker), versions.record('shopify:shop:orders:1:updated', version)]);
    log.applyLocal('shopify:shop:d1', marker);
    versions.applyLocal('shopify:shop:orders:1:updated', version);
    await sent;
    await Promise.all([log.fresh(), versions.fresh()]);
    await Promise.all([log.close(), versions.close()]);

    [log, versions] = await Promise.all([openDeliveryLog(host, 3600_000), openEntityVersions(host)]);
    // Resumed from the store's checkpoint, which is past both records: nothing was read again.
    expect([log.restored, versions.restored]).toMatchObject([{ from: 'checkpoint', records: 0 }, { from: 'checkpoint', records: 0 }]);
    expect(log.get('shopify:shop:d1')).toEqual(marker);
    expect(versions.get('shopify:shop:orders:1:updated')).toEqual(version);
    await Promise.all([log.close(), versions.close()]);
  });
});
