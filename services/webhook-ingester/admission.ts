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
  const state: AdmissionState = { inFlight: 0, buffered: 0, reading: new Map(), maxBufferedBytes: o.maxBufferedBytes };
  return {
    /** A ticket, or null when maxInFlight requests are already in flight. */
    enter(res: ServerResponse): Ticket | null {
      if (state.inFlight >= o.maxInFlight) return null;
      state.inFlight++;
      const ticket = new AdmissionTicket(state);
      state.reading.set(ticket, ticket);
      res.once('close', () => ticket.close());
      return ticket;
    },
    load: () => ({ inFlight: state.inFlight, bufferedBytes: state.buffered, reading: state.reading.size }),
  };
}

interface AdmissionState {
  inFlight: number;
  buffered: number;
  /** Insertion order is arrival order: the first entry is the longest-reading request. */
  reading: Map<AdmissionTicket, AdmissionTicket>;
  maxBufferedBytes: number;
}

/**
 * A request's ticket. A class rather than closures made per request: under tsx each of those
 * also costs a defineProperty of its name (make bench-ingest).
 */
class AdmissionTicket implements Ticket {
  held = 0;
  evict: (() => void) | undefined;
  constructor(private readonly state: AdmissionState) {}

  /** The response closed: its request is no longer in flight, and its bytes are free. */
  close(): void {
    this.state.inFlight--;
    this.state.buffered -= this.held;
    this.held = 0;
    this.state.reading.delete(this);
  }

  take(n: number): boolean {
    const s = this.state;
    for (const r of s.reading.keys()) {
      if (s.buffered + n <= s.maxBufferedBytes) break;
      if (r === this || r.held === 0 || !r.evict) continue;
      s.reading.delete(r);
      s.buffered -= r.held;
      r.held = 0;
      r.evict();
    }
    if (s.buffered + n > s.maxBufferedBytes) return false;
    s.buffered += n;
    this.held += n;
    return true;
  }

  doneReading(): void {
    this.state.reading.delete(this);
  }

  onEvict(fn: () => void): void {
    this.evict = fn;
  }
}

/**
 * The raw body; 'too_large' as soon as the received length passes the limit, 'over_budget' when
 * no room can be made for the next chunk or the request is evicted for a newer one (the chunks
 * read so far are dropped at once).
 */
export function readBody(req: IncomingMessage, limit: number, ticket: Ticket): Promise<Buffer | 'too_large' | 'over_budget' | 'aborted'> {
  return new Promise((resolve) => {
    const r = new BodyReader(req, limit, ticket, resolve);
    ticket.onEvict(() => r.stop('over_budget'));
    req.on('data', (c: Buffer) => r.data(c));
    req.on('end', () => r.end());
    req.on('aborted', () => r.aborted());
    req.on('error', () => r.aborted());
  });
}

/** readBody's state (methods, not closures made per request: see AdmissionTicket). */
class BodyReader {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private done = false;
  constructor(
    private readonly req: IncomingMessage,
    private readonly limit: number,
    private readonly ticket: Ticket,
    private readonly resolve: (r: Buffer | 'too_large' | 'over_budget' | 'aborted') => void,
  ) {}

  stop(why: 'too_large' | 'over_budget'): void {
    if (this.done) return;
    this.done = true;
    this.chunks.length = 0;
    this.req.resume(); // drain without keeping it until the answer closes the connection
    this.resolve(why);
  }

  data(c: Buffer): void {
    if (this.done) return;
    this.size += c.length;
    if (this.size > this.limit) return this.stop('too_large');
    if (!this.ticket.take(c.length)) return this.stop('over_budget');
    this.chunks.push(c);
  }

  end(): void {
    if (this.done) return;
    this.done = true;
    this.ticket.doneReading();
    this.resolve(Buffer.concat(this.chunks, this.size));
  }

  aborted(): void {
    if (this.done) return;
    this.done = true;
    this.resolve('aborted');
  }
}
