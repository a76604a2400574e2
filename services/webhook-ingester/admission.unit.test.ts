import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe, expect, it } from 'vitest';
import { admission, readBody } from './admission.ts';

const response = () => new EventEmitter() as unknown as ServerResponse;
const request = () => Object.assign(new EventEmitter(), { resume() {} }) as unknown as IncomingMessage;

describe('admission: in flight from arrival, one byte budget', () => {
  it('counts a request from arrival until its response closes', () => {
    const gate = admission({ maxInFlight: 2, maxBufferedBytes: 100 });
    const [a, b] = [response(), response()];
    expect(gate.enter(a)).not.toBeNull();
    expect(gate.enter(b)).not.toBeNull();
    expect(gate.enter(response())).toBeNull();
    a.emit('close');
    expect(gate.enter(response())).not.toBeNull();
    expect(gate.load().inFlight).toBe(2);
  });

  it('makes room for a newcomer by evicting the longest-reading request, never a complete body', async () => {
    const gate = admission({ maxInFlight: 10, maxBufferedBytes: 100 });
    const [slowReq, doneReq, newReq] = [request(), request(), request()];
    const slowRes = response();
    const slow = readBody(slowReq, 1000, gate.enter(slowRes)!);
    const done = readBody(doneReq, 1000, gate.enter(response())!);
    const fresh = readBody(newReq, 1000, gate.enter(response())!);
    slowReq.emit('data', Buffer.alloc(50));
    doneReq.emit('data', Buffer.alloc(40));
    doneReq.emit('end');
    expect(gate.load().bufferedBytes).toBe(90);
    newReq.emit('data', Buffer.alloc(30)); // 120 > 100: the slow reader goes
    expect(await slow).toBe('over_budget');
    expect(gate.load().bufferedBytes).toBe(70);
    newReq.emit('end');
    expect((await fresh as Buffer).length).toBe(30);
    expect((await done as Buffer).length).toBe(40);
    // Only complete bodies hold the budget now: a chunk that cannot fit is refused.
    const late = request();
    const lateBody = readBody(late, 1000, gate.enter(response())!);
    late.emit('data', Buffer.alloc(31));
    expect(await lateBody).toBe('over_budget');
    slowRes.emit('close');
    expect(gate.load().bufferedBytes).toBe(70);
  });

  it('still answers too_large past the per-request limit', async () => {
    const gate = admission({ maxInFlight: 10, maxBufferedBytes: 1000 });
    const req = request();
    const body = readBody(req, 10, gate.enter(response())!);
    req.emit('data', Buffer.alloc(11));
    expect(await body).toBe('too_large');
  });
});
