import { z } from 'zod';
import { KafkaTable, jsonValue } from '../../shared/bus/table/table.ts';
import { topics } from '../../shared/bus/topics.ts';
import type { IncomingRecord, Subscription } from '../../shared/bus/types.ts';
import type { PlatformEvent } from '../../shared/events/platform-event.ts';
import type { Runtime } from '../../shared/runtime.ts';

/** Why an address gets no more mail from a workspace. */
export const suppressionSchema = z.object({
  reason: z.enum(['bounced', 'dropped', 'complained', 'unsubscribed']),
  at: z.number(),
  /** sendgrid (a delivery event), unsubscribe_link (RFC 8058), or cli. */
  source: z.string(),
  event_id: z.string().optional(),
  detail: z.string().optional(),
});
export type Suppression = z.infer<typeof suppressionSchema>;

export const SUPPRESSIONS_TOPIC = topics.state('email-suppressions');
export const suppressionKey = (workspaceId: string, address: string) => `${workspaceId}:${address.toLowerCase()}`;

/** The part of the table a send needs. */
export interface SuppressionList {
  get(key: string): Suppression | undefined;
}

export async function openSuppressions(rt: Pick<Runtime, 'bus' | 'logger' | 'stateDir'>): Promise<KafkaTable<Suppression>> {
  const t = new KafkaTable<Suppression>({ ...rt, topic: SUPPRESSIONS_TOPIC, parse: jsonValue((v) => suppressionSchema.parse(v)) });
  await t.start(120_000);
  return t;
}

type Change = { add: Suppression } | { remove: 'unsubscribed' } | null;

/**
 * The `dropped` reasons that are about the address (SendGrid's event webhook reference lists
 * Invalid SMTPAPI header, Spam Content, Unsubscribed Address, Bounced Address, Spam Reporting
 * Address, Invalid, Recipient List over Package Quota): the address is on one of the account's
 * suppression lists. The others are about the message or the account (spam-checker content, our
 * own header, a quota) and say nothing of the recipient.
 */
const ADDRESS_DROPS = new Set(['bounced address', 'unsubscribed address', 'spam reporting address', 'invalid']);

/**
 * What a delivery event means for the address (SendGrid event webhook reference): a hard bounce,
 * a drop because the address is on a suppression list (ADDRESS_DROPS), a spam report or an unsubscribe suppresses; a soft
 * bounce (`type: blocked`) does not; a group resubscribe lifts an unsubscribe.
 */
export function suppressionFor(event: Pick<PlatformEvent, 'event_type' | 'event_id' | 'timestamp'>, payload: Record<string, unknown>): Change {
  const base = { at: event.timestamp, source: 'sendgrid', event_id: event.event_id };
  const detail = typeof payload.reason === 'string' ? payload.reason.slice(0, 200) : undefined;
  switch (event.event_type) {
    case 'email.delivery.bounced':
      return payload.type === 'blocked' ? null : { add: { ...base, reason: 'bounced', detail } };
    case 'email.delivery.dropped':
      return ADDRESS_DROPS.has(String(payload.reason ?? '').trim().toLowerCase()) ? { add: { ...base, reason: 'dropped', detail } } : null;
    case 'email.delivery.spam_reported':
      return { add: { ...base, reason: 'complained' } };
    case 'email.delivery.unsubscribed':
    case 'email.delivery.group_unsubscribed':
      return { add: { ...base, reason: 'unsubscribed' } };
    case 'email.delivery.group_resubscribed':
      return { remove: 'unsubscribed' };
    default:
      return null;
  }
}

/**
 * Learns suppressions from `ionflux.internal.email`, where the ingester copies the delivery events
 * that matter in every workspace. At-least-once is enough: writing the same suppression twice is harmless.
 */
export async function consumeDeliveryEvents(rt: Runtime, table: KafkaTable<Suppression>, groupId = 'ionflux-email-suppressions'): Promise<Subscription> {
  return rt.bus.subscribe({
    service: 'email',
    groupId,
    subscriptions: [topics.internal('email')],
    fromBeginning: true,
    handler: async (record: IncomingRecord) => {
      if (!record.value) return;
      const event = await rt.codec.decode(record.value);
      const payload = JSON.parse(event.payload_json) as Record<string, unknown>;
      const address = typeof payload.email === 'string' ? payload.email.trim().toLowerCase() : '';
      const change = address ? suppressionFor(event, payload) : null;
      if (!change) return;
      const key = suppressionKey(event.workspace_id, address);
      if ('add' in change) {
        await table.set(key, change.add);
        rt.logger.info({ workspace: event.workspace_id, reason: change.add.reason }, 'address suppressed');
      } else if (table.get(key)?.reason === change.remove) await table.delete(key);
    },
  });
}
