import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { videosPublishInput } from '../../../shared/connectors/catalog/tiktok.ts';
import type { ActionContext } from '../../../shared/connectors/types.ts';
import { HandedOver } from '../../../shared/errors.ts';
import { VendorError } from '../../../shared/connectors/types.ts';
import { parseAllowlist } from '../../../shared/net/allowlist.ts';
import { configureOutbound } from '../../../shared/net/outbound.ts';
import { ledgerSchema, unitKey, type LedgerEntry, type PublishUnit } from '../state/publishes.ts';
import type { ActionDeps } from './deps.ts';
import { videosPublish } from './videos-publish.ts';

const MB = 1024 * 1024;
const UPLOAD_URL = 'https://open-upload.tiktokapis.com/video/?upload_id=1&upload_token=t';

/**
 * The publish handler against a fake TikTok that records the init's source_info and the
 * Content-Range each chunk PUT would carry (as api/client.ts builds it), with the video served
 * from loopback through the outbound policy. The ledger keeps values as a reader of the topic
 * would see them (through its schema), so what a resumed command reads back is tested too.
 */
function fakeTikTok(chunkBytes: number, ledger = new Map<string, LedgerEntry>()) {
  const inits: Record<string, unknown>[] = [];
  const ranges: string[] = [];
  const d = {
    api: {
      call: async (ep: string, o: { body?: Record<string, unknown>; beforeSend?: () => Promise<void> }) => {
        await o.beforeSend?.(); // as api/client.ts does once the limiter gave the call its slot
        if (ep === 'creator_info') return { privacy_level_options: ['SELF_ONLY'] };
        if (ep === 'publish.init') {
          inits.push(o.body!.source_info as Record<string, unknown>);
          return { publish_id: 'v_pub_file~1', upload_url: UPLOAD_URL };
        }
        return { status: 'PUBLISH_COMPLETE', publicaly_available_post_id: ['73'] };
      },
      upload: async (_url: string, chunk: Buffer, r: { first: number; total: number }) => {
        ranges.push(`bytes ${r.first}-${r.first + chunk.length - 1}/${r.total}`);
        return 206;
      },
    },
    tokens: { withUserToken: (_ws: string, _by: string, fn: (token: string, openId: string) => Promise<unknown>) => fn('act.1', 'open-1') },
    ledger: {
      get: (k: string) => ledger.get(k),
      record: (key: string, value: LedgerEntry | undefined) => ({ key, value }),
      applyLocal: (k: string, v: LedgerEntry | undefined) => (v ? ledger.set(k, ledgerSchema.parse(JSON.parse(JSON.stringify(v)))) : ledger.delete(k)),
    },
    bus: { publish: async () => undefined },
    publish: { pollMs: 1, timeoutMs: 5000, maxBytes: 256 * MB, chunkBytes },
  } as unknown as ActionDeps;
  return { d, inits, ranges, ledger };
}

/** What the media transfer guide makes of a source_info: chunk i covers [i * chunk_size, next), the last one to the end. */
function promised(s: Record<string, unknown>): string[] {
  const [size, chunk, count] = [Number(s.video_size), Number(s.chunk_size), Number(s.total_chunk_count)];
  expect(count).toBe(Math.floor(size / chunk));
  return Array.from({ length: count }, (_, i) => `bytes ${i * chunk}-${i === count - 1 ? size - 1 : (i + 1) * chunk - 1}/${size}`);
}

describe('videos.publish FILE_UPLOAD', () => {
  let server: Server;
  let origin: string;
  const videos = new Map<string, Buffer>();
  const downloads = new Map<string, number>();
  beforeAll(async () => {
    configureOutbound(parseAllowlist('127.0.0.1'));
    server = createServer((req, res) => {
      downloads.set(req.url!, (downloads.get(req.url!) ?? 0) + 1);
      res.setHeader('content-type', 'video/mp4');
      res.end(videos.get(req.url!));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    configureOutbound([]);
    await new Promise<void>((r) => server.close(() => r()));
  });

  const run = (d: ActionDeps, path: string, commandId = 'cmd-1', handover?: AbortSignal) =>
    videosPublish(d)({ params: videosPublishInput.parse({ source: 'FILE_UPLOAD', video_url: `${origin}${path}`, privacy_level: 'SELF_ONLY' }), workspaceId: 'ws1', idempotencyKey: commandId, signal: new AbortController().signal, handover } as unknown as ActionContext);

  it('handed over while reading the video, it never asks TikTok to start the post: the next owner does', async () => {
    videos.set('/handed.mp4', Buffer.alloc(6 * MB, 4));
    const t = fakeTikTok(10 * MB);
    const handover = new AbortController();
    const call = t.d.api.call.bind(t.d.api);
    // The rebalance begins once the creator's options are in, while the video is being read.
    t.d.api.call = (async (ep: string, o: never) => {
      const out = await call(ep as never, o);
      if (ep === 'creator_info') handover.abort(new HandedOver('the group is rebalancing'));
      return out;
    }) as typeof t.d.api.call;
    await expect(run(t.d, '/handed.mp4', 'cmd-handed', handover.signal)).rejects.toBeInstanceOf(HandedOver);
    expect(t.inits).toEqual([]);
    expect(t.ledger.get(unitKey('ws1', 'cmd-handed'))).toBeUndefined();
  });

  it('declares a 7 MB video as one chunk of its own size under the default 10 MiB chunks, and sends exactly that', async () => {
    videos.set('/seven.mp4', Buffer.alloc(7 * MB, 1));
    const t = fakeTikTok(10 * MB);
    expect(await run(t.d, '/seven.mp4')).toMatchObject({ status: 'PUBLISH_COMPLETE', post_ids: ['73'] });
    expect(t.inits).toEqual([{ source: 'FILE_UPLOAD', video_size: 7 * MB, chunk_size: 7 * MB, total_chunk_count: 1 }]);
    expect(t.ranges).toEqual(promised(t.inits[0]!));
  });

  it('downloads the video once per attempt: the bytes read before init are the ones uploaded', async () => {
    videos.set('/once.mp4', Buffer.alloc(12 * MB, 5));
    const t = fakeTikTok(5 * MB);
    expect(await run(t.d, '/once.mp4', 'cmd-once')).toMatchObject({ status: 'PUBLISH_COMPLETE' });
    expect(t.ranges).toEqual(promised(t.inits[0]!));
    expect(downloads.get('/once.mp4')).toBe(1);
  });

  it('sends the byte ranges init promised, the last chunk taking the trailing bytes', async () => {
    const size = 21 * MB + 123;
    videos.set('/long.mp4', Buffer.alloc(size, 2));
    const t = fakeTikTok(5 * MB);
    await run(t.d, '/long.mp4');
    expect(t.inits[0]).toMatchObject({ video_size: size, chunk_size: 5 * MB, total_chunk_count: 4 });
    expect(t.ranges).toEqual(promised(t.inits[0]!));
    expect(t.ranges.at(-1)).toBe(`bytes ${15 * MB}-${size - 1}/${size}`);
  });

  it('resumes with the plan recorded at init even when TIKTOK_UPLOAD_CHUNK_BYTES changed, and refuses a video that changed size', async () => {
    const size = 11 * MB + 5;
    videos.set('/resumed.mp4', Buffer.alloc(size, 3));
    const first = fakeTikTok(5 * MB);
    await run(first.d, '/resumed.mp4');
    const atInit = promised(first.inits[0]!);
    // The worker stopped after the first chunk; the next owner runs with 10 MiB chunks configured.
    const unit = first.ledger.get(unitKey('ws1', 'cmd-1')) as PublishUnit;
    const ledger = new Map<string, LedgerEntry>([[unitKey('ws1', 'cmd-1'), { ...unit, phase: 'uploading', chunks_done: 1 }]]);
    const next = fakeTikTok(10 * MB, ledger);
    await run(next.d, '/resumed.mp4');
    expect(next.inits).toEqual([]);
    expect(next.ranges).toEqual(atInit.slice(1));

    videos.set('/resumed.mp4', Buffer.alloc(size + 1, 3));
    ledger.set(unitKey('ws1', 'cmd-1'), { ...unit, phase: 'uploading', chunks_done: 1 });
    await expect(run(fakeTikTok(5 * MB, ledger).d, '/resumed.mp4')).rejects.toMatchObject({ code: 'video_changed' });
  });
});

describe('videos.publish status polling', () => {
  it('an attempt whose time runs out while polling fails publish_status_unknown naming the publish id, not a bare timeout', async () => {
    const ledger = new Map<string, LedgerEntry>();
    const t = fakeTikTok(10 * MB, ledger);
    // The attempt's deadline (TIKTOK_ACTION_TIMEOUT_MS) passes during the second status fetch, as fetch reports it.
    const attempt = new AbortController();
    let fetches = 0;
    t.d.api.call = (async (ep: string) => {
      if (ep === 'creator_info') return { privacy_level_options: ['SELF_ONLY'] };
      if (ep === 'publish.init') return { publish_id: 'v_pub_url~9' };
      if (++fetches === 2) {
        attempt.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError'));
        throw attempt.signal.reason;
      }
      return { status: 'PROCESSING_DOWNLOAD' };
    }) as typeof t.d.api.call;
    const ctx = { params: videosPublishInput.parse({ source: 'PULL_FROM_URL', video_url: 'https://media.example.com/a.mp4', privacy_level: 'SELF_ONLY' }), workspaceId: 'ws1', idempotencyKey: 'cmd-late', signal: attempt.signal } as unknown as ActionContext;
    await expect(videosPublish(t.d)(ctx)).rejects.toMatchObject({ code: 'publish_status_unknown', retryable: false, message: expect.stringContaining('v_pub_url~9') });
  });
});

describe('videos.publish init', () => {
  const ctxFor = (commandId: string, handover?: AbortSignal) => ({ params: videosPublishInput.parse({ source: 'PULL_FROM_URL', video_url: 'https://media.example.com/a.mp4', privacy_level: 'SELF_ONLY' }), workspaceId: 'ws1', idempotencyKey: commandId, signal: new AbortController().signal, handover }) as unknown as ActionContext;

  it('handed over while init waits for its slot under the limit (up to 65 s), it never sends init and leaves no ledger behind', async () => {
    const t = fakeTikTok(10 * MB);
    const handover = new AbortController();
    const call = t.d.api.call.bind(t.d.api);
    // The limiter holds init while the group rebalances.
    t.d.api.call = (async (ep: string, o: never) => {
      if (ep === 'publish.init') handover.abort(new HandedOver('the group is rebalancing'));
      return call(ep as never, o);
    }) as typeof t.d.api.call;
    await expect(videosPublish(t.d)(ctxFor('cmd-wait', handover.signal))).rejects.toBeInstanceOf(HandedOver);
    expect(t.inits).toEqual([]);
    expect(t.ledger.get(unitKey('ws1', 'cmd-wait'))).toBeUndefined();
  });

  it("deferred by init's limiter wait (a deferrable command), it leaves no ledger and its next run sends init once", async () => {
    const t = fakeTikTok(10 * MB);
    const call = t.d.api.call.bind(t.d.api);
    const asked: boolean[] = [];
    // As api/client.ts does: the limiter's long wait is thrown before beforeSend, for a call that may defer it.
    t.d.api.call = (async (ep: string, o: { deferLongWaits?: boolean }) => {
      if (ep === 'publish.init') asked.push(o.deferLongWaits === true);
      if (ep === 'publish.init' && asked.length === 1 && o.deferLongWaits) throw new VendorError(429, "TikTok's /v2/post/publish/video/init/ limit is used up", { retryAfterMs: 40_000 });
      return call(ep as never, o as never);
    }) as typeof t.d.api.call;
    const deferrable = { ...ctxFor('cmd-deferred'), deferrable: true } as ActionContext;
    await expect(videosPublish(t.d)(deferrable)).rejects.toMatchObject({ status: 429, retryAfterMs: 40_000 });
    expect(t.ledger.get(unitKey('ws1', 'cmd-deferred'))).toBeUndefined();
    expect(await videosPublish(t.d)(deferrable)).toMatchObject({ status: 'PUBLISH_COMPLETE' });
    expect(t.inits).toHaveLength(1);
    expect(asked).toEqual([true, true]);
    // Not deferrable (the service's shared topic, where releases come): the call waits in place.
    await videosPublish(t.d)(ctxFor('cmd-shared'));
    expect(asked).toEqual([true, true, false]);
  });

  it("after init failed with a 5xx in this process, the retry's outcome_unknown says so instead of 'the worker stopped'", async () => {
    const t = fakeTikTok(10 * MB);
    const call = t.d.api.call.bind(t.d.api);
    t.d.api.call = (async (ep: string, o: never) => {
      if (ep !== 'publish.init') return call(ep as never, o);
      await (o as { beforeSend?: () => Promise<void> }).beforeSend?.();
      throw new VendorError(503, 'TikTok /v2/post/publish/video/init/ answered 503 without its JSON envelope');
    }) as typeof t.d.api.call;
    await expect(videosPublish(t.d)(ctxFor('cmd-5xx'))).rejects.toMatchObject({ status: 503 });
    const retry = (await videosPublish(t.d)(ctxFor('cmd-5xx')).catch((e: unknown) => e)) as { code: string; message: string };
    expect(retry).toMatchObject({ code: 'outcome_unknown' });
    expect(retry.message).toContain('answered 503');
    expect(retry.message).not.toContain('the worker stopped');
  });
});
