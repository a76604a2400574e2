import { readFile } from 'node:fs/promises';
import type { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { HubError } from '../errors.ts';
import { PLATFORM_EVENT_SUBJECT, registerAvro, schemaFiles } from './registry.ts';
import { platformEventSchema, type PlatformEvent } from './platform-event.ts';

/** Encodes PlatformEvents in the Confluent wire format (magic byte, schema id, Avro) and back. */
export interface EventCodec {
  readonly schemaId: number;
  encode(event: PlatformEvent): Promise<Buffer>;
  decode(bytes: Buffer): Promise<PlatformEvent>;
}

/** Registers the envelope schema (BACKWARD) at start-up and returns a codec bound to its id. */
export async function createEventCodec(registry: SchemaRegistry): Promise<EventCodec> {
  const file = schemaFiles.find((f) => f.subject === PLATFORM_EVENT_SUBJECT)!;
  const schemaId = await registerAvro(registry, PLATFORM_EVENT_SUBJECT, await readFile(file.file, 'utf8'));
  return {
    schemaId,
    encode: (event) => registry.encode(schemaId, event),
    async decode(bytes) {
      if (bytes.length < 5 || bytes[0] !== 0) throw new HubError('not_confluent_framed', 'record is not in the Confluent wire format');
      let decoded: unknown;
      try {
        decoded = await registry.decode(bytes);
      } catch (e) {
        throw new HubError('undecodable', `cannot decode record: ${(e as Error).message}`, { cause: e });
      }
      const parsed = platformEventSchema.safeParse(normalize(decoded));
      if (!parsed.success) throw new HubError('not_a_platform_event', 'record decoded but is not a PlatformEvent');
      return parsed.data;
    },
  };
}

// avsc hands back longs as numbers and unions of null|string as plain values; keep only our fields.
function normalize(v: unknown): unknown {
  if (!v || typeof v !== 'object') return v;
  const o = v as Record<string, unknown>;
  return { ...o, timestamp: typeof o.timestamp === 'object' && o.timestamp instanceof Date ? o.timestamp.getTime() : o.timestamp };
}
