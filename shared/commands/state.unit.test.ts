import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MemoryBus } from '../bus/memory.ts';
import { KafkaTable } from '../bus/table/table.ts';
import { createLogger } from '../logger.ts';
import { outcomeEvent } from './outcome.ts';
import { commandKey, commandStateFormat, type CommandState } from './state.ts';

const format = commandStateFormat('shopify');
const command = { command_id: 'cmd:42', workspace_id: 'acme', agent_id: 'a1', action: 'shopify.products.update' };
const key = commandKey(command.workspace_id, command.command_id);
const roundTrip = (s: CommandState) => format.parse(format.serialize!(s, key), key);

describe('command state records', () => {
  const done: CommandState = {
    phase: 'done',
    at: 1_764_340_000_123,
    record: 'ionflux.cmd.shopify.ws_acme/0/17',
    outcome: { topic: 'ionflux.shopify.ws_acme.command.outcomes', event: outcomeEvent('shopify', command, { status: 'succeeded', result: { id: 'gid://shopify/Product/1', title: 'Tee "quoted"' }, attempts: 1 }) },
  };

  it('store an outcome without what the key and the service tell, and read it back as the same event', () => {
    const bytes = format.serialize!(done, key);
    const stored = JSON.parse(bytes.toString()) as Record<string, unknown>;
    expect(stored).not.toHaveProperty('outcome');
    expect(stored.o).toEqual({ id: done.outcome!.event.event_id, type: 'shopify.command.succeeded', ts: done.outcome!.event.timestamp, payload_json: done.outcome!.event.payload_json });
    expect(bytes.length).toBeLessThan(Buffer.from(JSON.stringify(done)).length * 0.7);
    expect(format.parse(bytes, key)).toEqual(done);
  });

  it('keep a reply_to topic, an approval digest, the content digest and the origin', () => {
    const awaiting: CommandState = {
      phase: 'awaiting_approval',
      at: 1_764_340_000_000,
      digest: 'ab'.repeat(32),
      content_digest: 'Cd'.repeat(21) + 'e',
      record: 'ionflux.cmd.shopify.ws_acme/0/18',
      outcome: { topic: 'ionflux.agent.a1.ws_acme.outputs', event: outcomeEvent('shopify', command, { status: 'awaiting_approval', approval_id: 'ap-1', attempts: 0 }) },
    };
    expect(roundTrip(awaiting)).toEqual(awaiting);
    const failed: CommandState = { ...done, content_digest: 'x'.repeat(43), origin: 'ionflux.cmd.shopify.ws_acme/0/18', outcome: { ...done.outcome!, event: outcomeEvent('shopify', command, { status: 'failed', error: { code: 'vendor_error', message: 'no' }, attempts: 4 }) } };
    expect(roundTrip(failed)).toEqual(failed);
    const started: CommandState = { phase: 'started', at: 1, record: 'ionflux.cmd.shopify/2/3' };
    expect(roundTrip(started)).toEqual(started);
  });

  it('read a state written whole (before this format, or an outcome the key does not tell)', () => {
    expect(format.parse(Buffer.from(JSON.stringify(done)), key)).toEqual(done);
    const foreign = { ...done.outcome!.event, source_service_name: 'someone-else' };
    const other: CommandState = { ...done, outcome: { topic: done.outcome!.topic, event: foreign } };
    const bytes = format.serialize!(other, key);
    expect(JSON.parse(bytes.toString())).toHaveProperty('outcome.event.source_service_name', 'someone-else');
    expect(format.parse(bytes, key)).toEqual(other);
  });

  it('come back the same from the topic and from the disk store, in another process and after a restart', async () => {
    const bus = new MemoryBus(1);
    const logger = createLogger({ service: 'state-unit', level: 'silent' });
    const dirs = [mkdtempSync(join(tmpdir(), 'ionflux-state-unit-')), mkdtempSync(join(tmpdir(), 'ionflux-state-unit-'))];
    const open = async (stateDir: string) => {
      const t = new KafkaTable<CommandState>({ bus, logger, stateDir, topic: 'ionflux.state.commands-shopify', ...format });
      await t.start();
      return t;
    };
    try {
      const writer = await open(dirs[0]!);
      await writer.set(key, done);
      const reader = await open(dirs[1]!); // another instance: parsed from the topic
      expect(reader.get(key)).toEqual(done);
      await Promise.all([writer.close(), reader.close()]);
      for (const dir of dirs) {
        const again = await open(dir); // from the store's own bytes
        expect(again.get(key)).toEqual(done);
        await again.close();
      }
    } finally {
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuse a record it cannot read', () => {
    expect(() => format.parse(Buffer.from('{"phase":"done","at":1,"o":{"id":1}}'), key)).toThrow();
    expect(() => format.parse(Buffer.from('{"phase":"finished","at":1}'), key)).toThrow();
  });
});
