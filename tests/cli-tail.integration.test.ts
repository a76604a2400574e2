import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { topics } from '../shared/bus/topics.ts';
import { buildEvent, PayloadSchemas } from '../shared/events/platform-event.ts';
import { publishEvent } from '../shared/events/publisher.ts';
import { runCli } from './helpers/cli.ts';
import { realInfra, uid } from './helpers/infra.ts';

const schemas = new PayloadSchemas().register('shopify.orders.created', z.looseObject({ id: z.number() }));

describe('ionflux tail', () => {
  let infra: Awaited<ReturnType<typeof realInfra>>;
  beforeAll(async () => {
    infra = await realInfra('tail-test');
  });
  afterAll(() => infra.close());

  it('prints decoded PlatformEvents of every topic matching a pattern as JSON lines, and reports undecodable records on stderr', async () => {
    const [a, b] = [uid('ws'), uid('ws')];
    // The undecodable record goes first on topic a, same key (so same partition): tail meets it before a's event and cannot stop (--max 2) without reporting it.
    await infra.bus.publish({ topic: topics.event('shopify', a, 'orders', 'created'), key: a, value: 'not avro' });
    for (const ws of [a, b]) {
      const event = buildEvent(schemas, { eventType: 'shopify.orders.created', workspaceId: ws, source: 'tail-test', payload: { id: 1 } });
      await publishEvent(infra, topics.event('shopify', ws, 'orders', 'created'), event);
    }

    const pattern = `ionflux\\.shopify\\.ws_(${a}|${b})\\.orders\\.created`;
    const { code, stdout, stderr } = await runCli(['tail', pattern, '--from-beginning', '--max', '2', '--timeout', '25']);
    expect(code).toBe(0);
    const lines = stdout.trim().split('\n').map((l) => JSON.parse(l) as { topic: string; event: { workspace_id: string; event_type: string; payload_json: string } });
    expect(lines.map((l) => l.event.workspace_id).sort()).toEqual([a, b].sort());
    expect(lines.every((l) => l.event.event_type === 'shopify.orders.created' && JSON.parse(l.event.payload_json).id === 1)).toBe(true);
    expect(stderr).toContain('not a decodable PlatformEvent');
  });

  it('refuses a call without a topic with a usage message and exit code 2', async () => {
    const { code, stderr } = await runCli(['tail']);
    expect(code).toBe(2);
    expect(stderr).toContain('usage: ionflux tail');
  });
});
