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
  /** the parsed vendor JSON for this one event (one item of a batch) */
  payload: unknown;
  /** vendor timestamp, ISO 8601, if the vendor gave one */
  occurredAt?: string;
}

/** reason: schema failure or unknown topic, human readable */
export type MapResult = { ok: true; events: MappedEvent[] } | { ok: false; reason: string };

export type VendorSource = 'shopify' | 'tiktok' | 'email' | 'whatsapp' | 'generic';

export interface VendorModule {
  source: VendorSource;
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
