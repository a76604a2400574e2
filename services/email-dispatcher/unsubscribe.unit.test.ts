import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KafkaTable } from '../../shared/bus/table/table.ts';
import type { Logger } from '../../shared/logger.ts';
import type { Suppression } from './suppressions.ts';
import { mountUnsubscribe, unsubscribeBaseProblem, unsubscribeLinks } from './unsubscribe.ts';

const links = unsubscribeLinks(randomBytes(32), 'http://mail.example');
const token = (url: string) => new URL(url).searchParams.get('t')!;
const good = token(links.url('ws1', 'Ann@X.io'));
const [body] = good.split('.');
/** 32 characters, 33 bytes in UTF-8. */
const multibyte = `${body}.é${'A'.repeat(31)}`;

describe('signed unsubscribe links', () => {
  it('verifies its own links; refuses a wrong, short or multibyte signature without throwing', () => {
    expect(links.verify(good)).toEqual({ workspaceId: 'ws1', address: 'ann@x.io' });
    expect(multibyte.split('.')[1]).toHaveLength(32);
    expect(links.verify(multibyte)).toBeNull();
    expect(links.verify(`${body}.${'A'.repeat(32)}`)).toBeNull();
    expect(links.verify(`${body}.${'A'.repeat(31)}`)).toBeNull();
    expect(links.verify(`${body}.${'A'.repeat(33)}`)).toBeNull();
    expect(links.verify(body!)).toBeNull();
  });

  describe('routes', () => {
    const stored = new Map<string, Suppression>();
    const table = { get: (k: string) => stored.get(k), set: async (k: string, v: Suppression) => void stored.set(k, v) } as unknown as KafkaTable<Suppression>;
    const logger = { info: () => undefined, warn: () => undefined } as unknown as Logger;
    let server: ReturnType<express.Express['listen']>;
    let base: string;
    beforeAll(async () => {
      const app = express();
      mountUnsubscribe(app, { links, table, logger });
      await new Promise<void>((r) => (server = app.listen(0, '127.0.0.1', () => r())));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/emails/unsubscribe`;
    });
    afterAll(() => new Promise<void>((r) => server.close(() => r())));

    it('answers 400, not 500, to a signature of the right length in characters with a multibyte character', async () => {
      const url = `${base}?t=${encodeURIComponent(multibyte)}`;
      expect((await fetch(url)).status).toBe(400);
      expect((await fetch(url, { method: 'POST' })).status).toBe(400);
      expect(stored.size).toBe(0);
      expect((await fetch(`${base}?t=${good}`, { method: 'POST', headers: { accept: 'application/json' } })).status).toBe(200);
      expect([...stored.values()]).toEqual([expect.objectContaining({ reason: 'unsubscribed', source: 'unsubscribe_link' })]);
    });
  });
});

describe('where unsubscribe links point', () => {
  it('warns of a base recipients cannot reach (loopback, private: the default without EMAIL_PUBLIC_URL) or without HTTPS (RFC 8058)', () => {
    for (const base of ['http://127.0.0.1:8092', 'http://localhost:8092', 'https://[::1]:8092', 'https://10.0.0.5', 'http://mail.localhost']) expect(unsubscribeBaseProblem(base), base).toMatch(/cannot reach; set EMAIL_PUBLIC_URL/);
    expect(unsubscribeBaseProblem('http://hub.example.com')).toMatch(/needs an HTTPS EMAIL_PUBLIC_URL/);
    expect(unsubscribeBaseProblem('https://hub.example.com/email')).toBeNull();
  });
});
