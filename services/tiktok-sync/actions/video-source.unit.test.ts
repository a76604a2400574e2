import { describe, expect, it } from 'vitest';
import { chunking, chunkRanges, type ChunkPlan } from './video-source.ts';

const MB = 1024 * 1024;

/**
 * TikTok's chunk restrictions, as its Media Transfer Guide words them
 * (developers.tiktok.com/doc/content-posting-api-media-transfer-guide), checked on a plan and the
 * byte ranges the upload sends.
 */
function broken(size: number, plan: ChunkPlan, ranges: { first: number; end: number }[]): string[] {
  const out: string[] = [];
  if (plan.count !== Math.floor(size / plan.chunkSize)) out.push('total_chunk_count is not floor(video_size / chunk_size)');
  if (plan.count < 1 || plan.count > 1000) out.push('not 1 to 1000 chunks');
  if (size < 5 * MB && plan.chunkSize !== size) out.push('under 5 MB but not uploaded whole');
  if (size >= 5 * MB && (plan.chunkSize < 5 * MB || plan.chunkSize > 64 * MB)) out.push('chunk_size not 5-64 MB');
  if (size > 64 * MB && plan.count < 2) out.push('over 64 MB in one chunk');
  if (ranges.length !== plan.count) out.push('not total_chunk_count ranges');
  ranges.forEach((r, i) => {
    if (r.first !== (i === 0 ? 0 : ranges[i - 1]!.end)) out.push(`chunk ${i} does not follow the previous one`);
    const last = i === ranges.length - 1;
    if (!last && r.end - r.first !== plan.chunkSize) out.push(`chunk ${i} is not chunk_size`);
    if (last && (r.end !== size || r.end - r.first < plan.chunkSize || r.end - r.first > 128 * MB)) out.push('the last chunk does not take the trailing bytes (chunk_size to 128 MB, to the end)');
  });
  return out;
}

describe('upload chunk plan (TikTok media transfer rules)', () => {
  it('sends a video of at most one chunk whole, with chunk_size = its size (floor would give 0 chunks)', () => {
    expect(chunking(3 * MB, 10 * MB)).toEqual({ chunkSize: 3 * MB, count: 1 });
    expect(chunking(7 * MB, 10 * MB)).toEqual({ chunkSize: 7 * MB, count: 1 });
    expect(chunking(10 * MB, 10 * MB)).toEqual({ chunkSize: 10 * MB, count: 1 });
  });

  it('lets the last chunk take the trailing bytes, as in the guide: 50,000,123 bytes in chunks of 10,000,000', () => {
    const plan = chunking(50_000_123, 10_000_000);
    expect(plan).toEqual({ chunkSize: 10_000_000, count: 5 });
    expect(chunkRanges(50_000_123, plan).at(-1)).toEqual({ first: 40_000_000, end: 50_000_123 }); // Content-Range: bytes 40000000-50000122/50000123
    expect(chunking(10 * MB + 1, 10 * MB)).toEqual({ chunkSize: 10 * MB, count: 1 });
    expect(chunkRanges(21 * MB + 5, chunking(21 * MB + 5, 10 * MB))).toEqual([{ first: 0, end: 10 * MB }, { first: 10 * MB, end: 21 * MB + 5 }]);
  });

  it('splits a video over 64 MB in two when one chunk of TIKTOK_UPLOAD_CHUNK_BYTES would hold it', () => {
    expect(chunking(100 * MB + 1, 64 * MB)).toEqual({ chunkSize: 50 * MB, count: 2 });
  });

  it('follows every rule for any size and any allowed TIKTOK_UPLOAD_CHUNK_BYTES, around each boundary', () => {
    const marks = [1, 5 * MB, 7 * MB, 10 * MB, 20 * MB, 64 * MB, 65 * MB, 100 * MB, 128 * MB, 256 * MB, 1000 * MB, 4096 * MB];
    for (const chunkBytes of [5 * MB, 5 * MB + 7, 10 * MB, 33 * MB, 64 * MB]) {
      const edges = [...marks, chunkBytes, 2 * chunkBytes, 3 * chunkBytes];
      for (const size of edges.flatMap((m) => [m - 1, m, m + 1]).filter((n) => n > 0 && n <= 4096 * MB)) {
        const plan = chunking(size, chunkBytes);
        expect(broken(size, plan, chunkRanges(size, plan)), `${size} bytes in chunks of ${chunkBytes}`).toEqual([]);
      }
    }
  });
});
