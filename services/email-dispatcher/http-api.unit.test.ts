import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Bus, OutgoingRecord, RecordAck } from '../../shared/bus/types.ts';
import { dedupeDigest } from '../../shared/commands/digest.ts';
import { outcomeEvent } from '../../shared/commands/outcome.ts';
import { commandKey, type CommandState } from '../../shared/commands/state.ts';
import type { Logger } from '../../shared/logger.ts';
import type { SecretStore } from '../../shared/secrets/index.ts';
import { mountEmailApi } from './http-api.ts';
import { createSealer } from './seal.ts';
import { sendInput } from '../../shared/connectors/catalog/email.ts';

const TOKEN = `platform-${randomBytes(12).toString('hex')}`;
const logger = { info: () => undefined, warn: () => undefined } as unknown as Logger;
const first = { to: ['first@example.com'], subject: 'First', text: 'first body' };
const other = { to: ['other@example.com'], subject: 'Other', text: 'other body' };

/** The state the worker writes once it has sent `params` as the platform under `key`. */
function sent(key: string, params: Record<string, unknown>, digest = true): CommandState {
  const c = { command_id: key, workspace_id: 'acme', agent_id: 'platform', action: 'send' };
  const event = outcomeEvent('email', c, { status: 'succeeded', result: { status: 'sent', to: params.to }, attempts: 1 });
  const content = digest ? { content_digest: dedupeDigest('email', { ...c, params, reply_to: null }) } : {};
  return { phase: 'done', at: 1, ...content, record: 'ionflux.cmd.email/0/1', outcome: { topic: 't', event } };
}

describe('POST /v1/emails/send with an Idempotency-Key already known', () => {
  const states = new Map<string, CommandState>();
  const published: OutgoingRecord[] = [];
  /** Runs when a command is published: a request that loses the race sees the winner's state only then. */
  let onPublish = () => {};
  let server: ReturnType<express.Express['listen']>;
  let base: string;
  beforeAll(async () => {
    const app = express();
    const bus: Pick<Bus, 'publish'> = { publish: async (r) => (published.push(r), onPublish(), {} as RecordAck) };
    mountEmailApi(app, { bus, states: { get: (k) => states.get(k) }, store: {} as SecretStore, sealer: createSealer(randomBytes(32)), platformToken: TOKEN, logger });
    await new Promise<void>((r) => (server = app.listen(0, '127.0.0.1', () => r())));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));
  beforeEach(() => {
    states.clear();
    published.length = 0;
    onPublish = () => {};
  });

  const post = async (key: string, body: Record<string, unknown>, wait = '') => {
    const r = await fetch(`${base}/v1/emails/send${wait}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}`, 'idempotency-key': key }, body: JSON.stringify({ workspace_id: 'acme', ...body }) });
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  };

  it('refuses another body at once (422) and publishes nothing', async () => {
    states.set(commandKey('acme', 'k1'), sent('k1', first));
    expect(await post('k1', other, '?wait=5s')).toEqual({ status: 422, body: { error: 'idempotency_key_reused', message: expect.any(String) } });
    expect(await post('k1', other)).toMatchObject({ status: 422 });
    expect(published).toEqual([]);
  });

  it('answers the same body with the first outcome although its seal is made anew', async () => {
    states.set(commandKey('acme', 'k2'), sent('k2', first));
    expect(await post('k2', first, '?wait=5s')).toMatchObject({ status: 200, body: { command_id: 'k2', status: 'succeeded', result: { to: first.to } } });
  });

  it('reports the refusal through ?wait= when the first request was not in the table yet (a lost race)', async () => {
    onPublish = () => void states.set(commandKey('acme', 'k3'), sent('k3', first));
    expect(await post('k3', other, '?wait=5s')).toMatchObject({ status: 422, body: { error: 'idempotency_key_reused' } });
    expect(published).toHaveLength(1);
  });

  it('answers a key whose state was written before states carried a digest as before', async () => {
    states.set(commandKey('acme', 'k4'), sent('k4', first, false));
    expect(await post('k4', other, '?wait=5s')).toMatchObject({ status: 200, body: { command_id: 'k4', status: 'succeeded' } });
  });
});

describe('POST /v1/emails/send with the platform token', () => {
  const published: OutgoingRecord[] = [];
  let refuse = false;
  let server: ReturnType<express.Express['listen']>;
  let base: string;
  const sealer = createSealer(randomBytes(32));
  beforeAll(async () => {
    const app = express();
    const bus: Pick<Bus, 'publish'> = {
      publish: async (r) => {
        if (refuse) throw new Error('request timed out');
        published.push(r);
        return {} as RecordAck;
      },
    };
    mountEmailApi(app, { bus, states: { get: () => undefined }, store: {} as SecretStore, sealer, platformToken: TOKEN, logger });
    await new Promise<void>((r) => (server = app.listen(0, '127.0.0.1', () => r())));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));
  const post = async (body: Record<string, unknown>) => {
    const r = await fetch(`${base}/v1/emails/send`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` }, body: JSON.stringify({ workspace_id: 'acme', ...body }) });
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  };

  it('seals what the worker will check: a body with a field the schema does not know is still a platform notification', async () => {
    published.length = 0;
    expect(await post({ ...first, tags: ['welcome'], to: [{ email: 'first@example.com', name: 'First', id: 7 }] })).toMatchObject({ status: 202 });
    const command = JSON.parse(published[0]!.value!.toString()) as { params: Record<string, unknown> };
    // The worker reads the params through the action's schema, then checks the seal over them.
    expect(sealer.verify(sendInput.parse(command.params) as Record<string, unknown>)).not.toBeNull();
  });

  it('a 503 names the command id to retry with, so a retry of a record Kafka may have taken is the same command', async () => {
    refuse = true;
    try {
      const res = await post(first);
      expect(res).toMatchObject({ status: 503, body: { error: 'unavailable', command_id: expect.any(String) } });
      expect(res.body.message).toContain(String(res.body.command_id));
    } finally {
      refuse = false;
    }
  });
});
