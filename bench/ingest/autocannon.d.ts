// The parts of autocannon (v8+, no bundled types, no @types package in this project) that
// bench/ingest/load.ts uses.
declare module 'autocannon' {
  import type { EventEmitter } from 'node:events';

  interface Histogram { average: number; mean: number; stddev: number; min: number; max: number; p50: number; p90: number; p99: number; [k: string]: number }
  interface Request {
    method?: string;
    path?: string;
    headers?: Record<string, string>;
    body?: string | Buffer;
    setupRequest?: (req: { headers: Record<string, string>; body: Buffer }, context: Record<string, unknown>) => unknown;
  }
  interface Options {
    url: string;
    connections?: number;
    duration?: number;
    amount?: number;
    overallRate?: number;
    connectionRate?: number;
    timeout?: number;
    pipelining?: number;
    requests?: Request[];
  }
  interface Result {
    duration: number;
    errors: number;
    timeouts: number;
    non2xx: number;
    '2xx': number;
    latency: Histogram;
    requests: Histogram & { sent: number; total: number };
    statusCodeStats?: Record<string, { count: number }>;
  }
  type Instance = EventEmitter & PromiseLike<Result>;
  function autocannon(opts: Options): Instance;
  export default autocannon;
}
