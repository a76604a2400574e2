import type { IncomingMessage, ServerResponse } from 'node:http';

/** One admitted request: what its body may take from the shared byte budget. */
export interface Ticket {
  /** Reserves `n` more body bytes; false when no room can be made for them. */
  take(n: number): boolean;
  /** The body is complete: its bytes stay held (ingest works on them) but it can no longer be evicted. */
  doneReading(): void;
  /** Called if this request is evicted while still reading, to make room for another. */
  onEvict(fn: () => void): void;
}

/**
 * Counts requests from arrival until their response closes, and the body bytes they hold (read
 * so far, kept until the response closes, since ingest works on the buffer). Both limits answer
 * 503 rather than queueing: vendors retry, and memory stays bounded by maxBufferedBytes however
 * many connections trickle bodies in.
 *
 * When a chunk would pass the budget, the requests that have been reading longest are evicted
 * (503, connection closed) until it fits. Vendors send a body in milliseconds; a request still
 * reading after its neighbours came and went is a slow client, so a flood of slow bodies cannot
 * keep a signed delivery from being read. Only bytes of complete bodies (being verified or
 * published) are never evicted; if they alone fill the budget, the newcomer gets 503.
 */
export function admission(o: { maxInFlight: number; maxBufferedBytes: number }) {
  let inFlight = 0;
  let buffered = 0;
  // Insertion order is arrival order: the first entry is the longest-reading request.
  const reading = new Map<object, { held: number; evict?: () => void }>();
  return {
    /** A ticket, or null when maxInFlight requests are already in flight. */
    enter(res: ServerResponse): Ticket | null {
      if (inFlight >= o.maxInFlight) return null;
      inFlight++;
      const id = {};
      const me: { held: number; evict?: () => void } = { held: 0 };
      reading.set(id, me);
      res.once('close', () => {
        inFlight--;
        buffered -= me.held;
        me.held = 0;
        reading.delete(id);
      });
      return {
        take(n) {
          for (const [other, r] of reading) {
            if (buffered + n <= o.maxBufferedBytes) break;
            if (other === id || r.held === 0 || !r.evict) continue;
            reading.delete(other);
            buffered -= r.held;
            r.held = 0;
            r.evict();
          }
          if (buffered + n > o.maxBufferedBytes) return false;
          buffered += n;
          me.held += n;
          return true;
        },
        doneReading: () => void reading.delete(id),
        onEvict: (fn) => void (me.evict = fn),
      };
    },
    load: () => ({ inFlight, bufferedBytes: buffered, reading: reading.size }),
  };
}

/**
 * The raw body; 'too_large' as soon as the received length passes the limit, 'over_budget' when
 * no room can be made for the next chunk or the request is evicted for a newer one (the chunks
 * read so far are dropped at once).
 */
export function readBody(req: IncomingMessage, limit: number, ticket: Ticket): Promise<Buffer | 'too_large' | 'over_budget' | 'aborted'> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const stop = (why: 'too_large' | 'over_budget') => {
      if (done) return;
      done = true;
      chunks.length = 0;
      req.resume(); // drain without keeping it until the answer closes the connection
      resolve(why);
    };
    ticket.onEvict(() => stop('over_budget'));
    req.on('data', (c: Buffer) => {
      if (done) return;
      size += c.length;
      if (size > limit) return stop('too_large');
      if (!ticket.take(c.length)) return stop('over_budget');
      chunks.push(c);
    });
    req.on('end', () => {
      if (done) return;
      done = true;
      ticket.doneReading();
      resolve(Buffer.concat(chunks, size));
    });
    req.on('aborted', () => !done && ((done = true), resolve('aborted')));
    req.on('error', () => !done && ((done = true), resolve('aborted')));
  });
}
