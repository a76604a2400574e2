import { describe, expect, it } from 'vitest';
import { OutageWatch, type Refusal } from './outage.ts';

const r421: Refusal = { ok: false, kind: 'not_sent', code: 'smtp_421', message: 'Mail command failed: 421 4.3.2 Service not available', closing: true };
const r451rcpt: Refusal = { ok: false, kind: 'not_sent', code: 'smtp_451', message: "Can't send mail - all recipients were rejected: 451 4.7.1 greylisted", recipient: true };

/** A watch on a clock the test moves. */
function watch(windowMs = 30_000, recipientWindowMs = 120_000) {
  let now = 0;
  const w = new OutageWatch({ windowMs, recipientWindowMs }, () => now);
  return { w, at: (ms: number) => void (now = ms) };
}

describe('OutageWatch: when a bulk stops because its provider takes nothing', () => {
  it('declares once refusals of two units or more, with nothing taken in between, have lasted the window', () => {
    const { w, at } = watch();
    expect(w.refused('a', r421)).toBe(false);
    at(10_000);
    expect(w.refused('b', r421)).toBe(false);
    at(29_999);
    expect(w.refused('a', r421)).toBe(false);
    expect(w.signal.aborted).toBe(false);
    at(30_000);
    expect(w.refused('c', r421)).toBe(true);
    expect(w.signal.aborted).toBe(true);
    expect(w.stopped).toEqual({ code: 'smtp_421', message: expect.stringContaining('took nothing for 30 s, refusing every attempt of 3 units (last: Mail command failed: 421 4.3.2') });
    // Declared stays declared: a late success of a unit already in flight does not undo it.
    w.served();
    expect(w.stopped).toBeDefined();
  });

  it('one unit refused alone never stops the bulk (its own wait budget applies), however long', () => {
    const { w, at } = watch();
    for (let t = 0; t <= 600_000; t += 10_000) {
      at(t);
      expect(w.refused('only', r421)).toBe(false);
    }
  });

  it('a message taken (or refused for good) in between starts the run again: one transient 4xx is retried as before', () => {
    const { w, at } = watch();
    w.refused('a', r421);
    at(20_000);
    w.served();
    at(31_000);
    expect(w.refused('b', r421)).toBe(false);
    at(60_000);
    expect(w.refused('c', r421)).toBe(false);
    at(61_000);
    expect(w.refused('d', r421)).toBe(true);
  });

  it("refusals that are all of their recipients (4xx to RCPT TO) wait a unit's whole budget; one refusal of the service among them, the window", () => {
    const { w, at } = watch();
    w.refused('a', r451rcpt);
    at(60_000);
    expect(w.refused('b', r451rcpt)).toBe(false);
    at(119_000);
    expect(w.refused('c', r451rcpt)).toBe(false);
    at(120_000);
    expect(w.refused('d', r451rcpt)).toBe(true);

    const mixed = watch();
    mixed.w.refused('a', r451rcpt);
    mixed.at(30_000);
    expect(mixed.w.refused('b', r421)).toBe(true);
  });

  it('a wait budget shorter than the window bounds it', () => {
    const { w, at } = watch(30_000, 20_000);
    w.refused('a', r421);
    at(20_000);
    expect(w.refused('b', r421)).toBe(true);
  });
});
