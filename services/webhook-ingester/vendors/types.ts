/** One POST as received: the raw bytes are what gets verified, never a re-serialized body. */
export interface RawDelivery {
  rawBody: Buffer;
  /** lower-cased header names */
  headers: Record<string, string | undefined>;
  /** endpoint id for generic (and the optional account segment of /webhooks/email/sendgrid/<account>) */
  pathParam?: string;
  receivedAt: Date;
}

export type VerifyResult = { valid: true } | { valid: false; reason: string; missingHeaders?: string[] };

export interface MappedEvent {
  /** the vendor's delivery id, unique per vendor delivery; event ids get derived from it */
  deliveryId: string;
  /** vendor account that maps to a workspace (shop domain, tiktok open id, phone_number_id, endpoint id, ...) */
  account: string;
  /** topic parts, each matching ^[a-z0-9][a-z0-9_-]{0,62}$ */
  entity: string;
  action: string;
  /** '<source>.<entity>.<action>' */
  eventType: string;
  /** entity id where order matters (order id, product id, message id), else the account */
  orderingKey: string;
  /**
   * The entity whose `updated_at` is this event's version, where that is not the ordering key:
   * a fulfillment, ordered with its order but versioned on its own.
   */
  versionKey?: string;
  /** the parsed vendor JSON for this one event (one item of a batch) */
  payload: unknown;
}

/** reason: schema failure or unknown topic, human readable */
export type MapResult = { ok: true; events: MappedEvent[] } | { ok: false; reason: string };

export type VendorSource = 'shopify' | 'tiktok' | 'email' | 'whatsapp' | 'generic';

/**
 * Where a vendor posts: `POST /webhooks/<path>` and, by `param`, a segment after it. A param
 * that names a linked account (`paramLink`) must be linked, or the request is 404 before its
 * body is read.
 */
export interface VendorRoute {
  path: string;
  param: 'none' | 'optional' | 'required';
  paramLink?: 'generic' | 'email';
}

/**
 * Where the verification secret comes from: the environment variable `env` (with `<env>_PREVIOUS`
 * and `<env>_PREVIOUS_UNTIL` for rotation), else the secret store at `platformPath`; a route
 * param with `accountPath` uses that account's own secret only (never the platform one).
 */
export interface SecretSource {
  env?: string;
  platformPath?: string;
  accountPath?: (account: string) => string;
}

/**
 * One vendor, declared once (the registry in index.ts): its route, its secret, how it is verified
 * and mapped, and what of it the inbox keeps. The edge (app.ts, edge.ts) and the inbox processor
 * (processor.ts) read everything vendor-specific from here.
 */
export interface VendorModule {
  source: VendorSource;
  route: VendorRoute;
  secret: SecretSource;
  /** A delivery of one event is published byte-for-byte (JSON.parse would round ids past 2^53). */
  verbatim: boolean;
  /** The (lower-cased) headers `map` reads: the inbox keeps these with the body. */
  mapHeaders: string[];
  /** headers that must be present; checked before anything else */
  requiredHeaders: string[];
  /** constant-time verification over the raw bytes with every currently valid secret (rotation: several secrets) */
  verify(d: RawDelivery, secrets: string[], now: Date): VerifyResult;
  /** parse + zod-validate + map to events; never throws */
  map(d: RawDelivery): MapResult;
  /**
   * `<entity>.<action>` of the events a worker acts on: each is also written, in the same
   * transaction and with the same bytes, to `ionflux.internal.<source>` (topics.internal).
   */
  internal?: ReadonlySet<string>;
}
