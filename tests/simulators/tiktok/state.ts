import { createHash, randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';

/**
 * What the TikTok simulator knows: apps, users and their videos, OAuth codes and grants, tokens,
 * posts in progress and the rate-limit windows. Shapes follow TikTok's v2 reference (see
 * tests/simulators/tiktok/SOURCES.md).
 */
export interface SimUser {
  open_id: string;
  union_id: string;
  display_name: string;
  username: string;
  avatar_url: string;
  bio_description: string;
  is_verified: boolean;
  follower_count: number;
  following_count: number;
  likes_count: number;
  /** Newest first is how TikTok lists them; kept in any order here. */
  videos: SimVideo[];
  privacy_level_options: string[];
}

export interface SimVideo {
  id: string;
  /** Unix seconds. */
  create_time: number;
  title: string;
  video_description: string;
  duration: number;
  height: number;
  width: number;
  like_count: number;
  comment_count: number;
  share_count: number;
  view_count: number;
}

/** Research API ids are int64 JSON numbers; kept as their digits here. */
export interface ResearchVideo {
  id: string;
  create_time: number;
  region_code: string;
  username: string;
  video_description: string;
  hashtag_names: string[];
  like_count: number;
  comment_count: number;
  share_count: number;
  view_count: number;
  music_id: string;
  effect_ids: string[];
  video_duration: number;
}

export interface Grant {
  id: string;
  client_key: string;
  open_id: string;
  scopes: string[];
  refresh_token: string;
  refresh_expires_at: number;
  revoked: boolean;
}

export interface Publish {
  publish_id: string;
  open_id: string;
  source: 'PULL_FROM_URL' | 'FILE_UPLOAD';
  status: 'PROCESSING_UPLOAD' | 'PROCESSING_DOWNLOAD' | 'SEND_TO_USER_INBOX' | 'PUBLISH_COMPLETE' | 'FAILED';
  fail_reason?: string;
  post_id?: string;
  video_size: number;
  /** FILE_UPLOAD: the chunk plan declared at init, and how many chunks (in order) arrived. */
  chunk_size?: number;
  total_chunk_count?: number;
  chunks_received?: number;
  uploaded_bytes: number;
  downloaded_bytes: number;
  polls: number;
  upload_token?: string;
  post_info: Record<string, unknown>;
}

export interface SimLimits {
  /** Per minute, one-minute sliding window, per app (Display API). */
  'user.info': number;
  'video.list': number;
  'video.query': number;
  /** Per minute, per user access token (Content Posting API). */
  'creator_info': number;
  'publish.init': number;
  'publish.status': number;
  /** Per day, per app (Research API). */
  research: number;
}

export const DEFAULT_LIMITS: SimLimits = { 'user.info': 600, 'video.list': 600, 'video.query': 600, creator_info: 20, 'publish.init': 6, 'publish.status': 30, research: 1000 };

export class SimState {
  readonly users = new Map<string, SimUser>();
  readonly codes = new Map<string, { client_key: string; open_id: string; scopes: string[]; redirect_uri: string; challenge: string; exp: number; used: boolean }>();
  readonly grants = new Map<string, Grant>();
  readonly accessTokens = new Map<string, { grant: string; exp: number }>();
  readonly refreshTokens = new Map<string, string>();
  readonly clientTokens = new Map<string, { client_key: string; exp: number }>();
  readonly publishes = new Map<string, Publish>();
  readonly research: ResearchVideo[] = [];
  private readonly windows = new Map<string, number[]>();
  /** Who "signs in and consents" on the authorize page next, and what they grant (default: all asked). */
  consent: { open_id: string; scopes?: string[]; deny?: boolean } | null = null;

  constructor(
    readonly clients: Map<string, { secret: string; research: boolean }>,
    readonly limits: SimLimits,
  ) {}

  /** True when another request fits `limit` in the window; records it if so. */
  admit(key: string, limit: number, windowMs: number, now = Date.now()): boolean {
    const list = (this.windows.get(key) ?? []).filter((t) => now - t < windowMs);
    this.windows.set(key, list);
    if (list.length >= limit) return false;
    list.push(now);
    return true;
  }

  /** The grant behind a user access token, or null when unknown, expired or revoked. */
  grantOf(token: string | null, now = Date.now()): Grant | null {
    const t = token ? this.accessTokens.get(token) : undefined;
    const g = t ? this.grants.get(t.grant) : undefined;
    return t && g && !g.revoked && t.exp > now ? g : null;
  }

  issueAccess(grant: Grant, ttlS: number): string {
    const token = `act.${randomBytes(24).toString('hex')}`;
    this.accessTokens.set(token, { grant: grant.id, exp: Date.now() + ttlS * 1000 });
    return token;
  }
}

export const rand = (n = 16) => randomBytes(n).toString('hex');
/** TikTok's log ids look like 20220829194722CBE87ED59D524E727021: a timestamp and hex. */
export const logId = () => `${new Date().toISOString().replace(/\D/g, '').slice(0, 14)}${randomBytes(10).toString('hex').toUpperCase()}`;
/** TikTok's PKCE challenge: the hex SHA-256 of the verifier (Login Kit for Desktop). */
export const challengeOf = (verifier: string) => createHash('sha256').update(verifier).digest('hex');

const INT64 = '\u0000int64:';
/** A number too large for a JS number, written as bare JSON digits. */
export const int64 = (digits: string) => `${INT64}${digits}`;

export function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body).replace(/"\\u0000int64:(\d+)"/g, '$1');
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'x-tt-logid': logId(), ...headers }).end(text);
}

/** The v2 envelope: `{data, error: {code, message, log_id}}`, `code: "ok"` on success. */
export function ok(res: ServerResponse, data: unknown): void {
  json(res, 200, { data, error: { code: 'ok', message: '', log_id: logId() } });
}

/** HTTP status per error code, from TikTok's v2 error-handling page (and the posting reference). */
const STATUS: Record<string, number> = {
  access_token_invalid: 401, scope_not_authorized: 401, scope_permission_missed: 400, invalid_params: 400, invalid_file_upload: 400,
  rate_limit_exceeded: 429, internal_error: 500, privacy_level_option_mismatch: 400, url_ownership_unverified: 403,
  spam_risk_too_many_posts: 403, invalid_publish_id: 400,
};
const MESSAGES: Record<string, string> = {
  access_token_invalid: 'The access token is invalid or not found in the request.',
  rate_limit_exceeded: 'The API rate limit was exceeded. Please try again later.',
  internal_error: 'Internal error.',
};

export function fail(res: ServerResponse, code: string, message?: string): void {
  json(res, STATUS[code] ?? 400, { data: {}, error: { code, message: message ?? MESSAGES[code] ?? code, log_id: logId() } });
}

/** OAuth endpoints answer a flat body `{error, error_description, log_id}` (TikTok's OAuth error handling page). */
export function oauthError(res: ServerResponse, error: string, description: string): void {
  json(res, 400, { error, error_description: description, log_id: logId() });
}
