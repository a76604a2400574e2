import type { IncomingMessage, ServerResponse } from 'node:http';

/** One admitted request: what its body may still take from the shared byte budget. */
export interface Ticket {
  /** Reserves `n` more body bytes; false when the budget has no room for them. */
  take(n: number): boolean;
}

/**
 * Counts requests from arrival until their response closes, and the body bytes they hold (read
 * so far, kept until the response closes, since ingest works on the buffer). Both limits answer
 * 503 rather than queueing: vendors retry, and memory stays bounded by maxBufferedBytes however
 * many connections trickle bodies in.
 */
export function admission(o: { maxInFlight: number; maxBufferedBytes: number }) {
  let inFlight = 0;
  let buffered = 0;
  return {
    /** A ticket, or null when maxInFlight requests are already in flight. */
    enter(res: ServerResponse): Ticket | null {
      if (inFlight >= o.maxInFlight) return null;
      inFlight++;
      let held = 0;
      res.once('close', () => {
        inFlight--;
        buffered -= held;
        held = 0;
      });
      return {
        take(n) {
          if (buffered + n > o.maxBufferedBytes) return false;
          buffered += n;
          held += n;
          return true;
        },
      };
    },
    load: () => ({ inFlight, bufferedBytes: buffered }),
  };
}

/**
 * The raw body; 'too_large' as soon as the received length passes the limit, 'over_budget' when
 * the shared byte budget has no room for the next chunk (the chunks read so far are dropped at once).
 */
export function readBody(req: IncomingMessage, limit: number, ticket: Ticket): Promise<Buffer | 'too_large' | 'over_budget' | 'aborted'> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const stop = (why: 'too_large' | 'over_budget') => {
      done = true;
      chunks.length = 0;
      req.resume(); // drain without keeping it until the answer closes the connection
      resolve(why);
    };
    req.on('data', (c: Buffer) => {
      if (done) return;
      size += c.length;
      if (size > limit) return stop('too_large');
      if (!ticket.take(c.length)) return stop('over_budget');
      chunks.push(c);
    });
    req.on('end', () => !done && ((done = true), resolve(Buffer.concat(chunks, size))));
    req.on('aborted', () => !done && ((done = true), resolve('aborted')));
    req.on('error', () => !done && ((done = true), resolve('aborted')));
  });
}
