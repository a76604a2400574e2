import { readFile } from 'node:fs/promises';
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import { withDeadline } from '../deadline.ts';
import { HubError } from '../errors.ts';

/** Subject of the envelope: one subject for every topic (RecordNameStrategy), so evolution is checked once. */
export const PLATFORM_EVENT_SUBJECT = 'io.ionflux.events.PlatformEvent';

export interface SchemaFile {
  subject: string;
  file: string;
}

/** The schema files the hub owns, and the subjects they are registered under. */
export const schemaFiles: SchemaFile[] = [{ subject: PLATFORM_EVENT_SUBJECT, file: new URL('../../schemas/platform-event.avsc', import.meta.url).pathname }];

export function createRegistry(url: string): SchemaRegistry {
  // JSON Schema contracts use formats (uri, email) the client's Ajv does not know in strict mode.
  return new SchemaRegistry({ host: url, retry: { retries: 2, initialRetryTimeInSecs: 0.1, maxRetryTimeInSecs: 1 } }, { [SchemaType.JSON]: { strict: false, logger: false } });
}

const REGISTRATION_ATTEMPT_MS = 15_000;
class RegistryTimeout extends Error {
  constructor() {
    super(`the schema registry did not answer within ${REGISTRATION_ATTEMPT_MS} ms`);
  }
}

/**
 * Runs a registration again when another process set up the same new subject at the same moment,
 * or when the registry left it unanswered for REGISTRATION_ATTEMPT_MS:
 * the client sets a new subject's compatibility before registering, and the loser of that race
 * gets an error (seen when `make up` starts every service at once).
 */
export async function retryingRegistrationRace<T>(register: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      // The registry client sets no request timeout: a request the registry never answers would
      // stall the caller (a service's start) for good. Registering the same schema again is harmless.
      return await withDeadline(register(), REGISTRATION_ATTEMPT_MS, () => new RegistryTimeout());
    } catch (e) {
      // Apicurio's answers while another process creates the subject: 409 "... already exists", or
      // for a moment the default level instead of the one being set ("Compatibility does not match").
      const message = (e as Error).message;
      const raced = ((e as { status?: number }).status === 409 && /already exists/i.test(message)) || /Compatibility does not match/.test(message);
      if (!(raced || e instanceof RegistryTimeout) || attempt >= 5) throw e;
      await new Promise((r) => setTimeout(r, 50 * attempt));
    }
  }
}

/** Registers an Avro schema with BACKWARD compatibility and returns its id. */
export async function registerAvro(registry: SchemaRegistry, subject: string, schema: string): Promise<number> {
  try {
    const { id } = await retryingRegistrationRace(() => registry.register({ type: SchemaType.AVRO, schema }, { subject, compatibility: 'BACKWARD' as never }));
    return id;
  } catch (e) {
    throw new HubError('schema_registration_failed', `registering ${subject}: ${(e as Error).message}`, { cause: e });
  }
}

export interface CompatibilityVerdict {
  subject: string;
  compatible: boolean;
  /** true when the registry holds no version yet (first registration is always allowed). */
  firstVersion: boolean;
  messages: string[];
}

/**
 * Asks the registry (Confluent REST API) whether `schema` may become the next version of `subject`
 * under the subject's compatibility level. The client library has no call for this.
 */
export async function checkCompatibility(url: string, subject: string, schema: string): Promise<CompatibilityVerdict> {
  const res = await fetch(`${url}/compatibility/subjects/${encodeURIComponent(subject)}/versions/latest?verbose=true`, {
    method: 'POST',
    headers: { 'content-type': 'application/vnd.schemaregistry.v1+json' },
    body: JSON.stringify({ schema, schemaType: 'AVRO' }),
    signal: AbortSignal.timeout(5000),
  });
  const body = (await res.json().catch(() => ({}))) as { is_compatible?: boolean; messages?: string[]; error_code?: number; message?: string };
  if (res.status === 404 && (body.error_code === 40401 || body.error_code === 40402)) {
    return { subject, compatible: true, firstVersion: true, messages: [] };
  }
  if (!res.ok) throw new HubError('registry_error', `registry answered ${res.status}: ${body.message ?? ''}`, { retryable: res.status >= 500 });
  return { subject, compatible: body.is_compatible === true, firstVersion: false, messages: body.messages ?? [] };
}

/** Checks every schema file of the hub against what the registry holds. */
export async function checkSchemaFiles(url: string, files: SchemaFile[] = schemaFiles): Promise<CompatibilityVerdict[]> {
  return Promise.all(files.map(async (f) => checkCompatibility(url, f.subject, await readFile(f.file, 'utf8'))));
}
