import { SchemaType, type SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { z } from 'zod';
import { retryingRegistrationRace } from '../events/registry.ts';
import type { Connector } from './types.ts';

/** Subject of an action's input or output contract in the schema registry. */
export const contractSubject = (connector: string, action: string, side: 'input' | 'output') => `ionflux.connector.${connector}.${action}.${side}`;

/**
 * Registers every action's input and output schema as a JSON Schema subject, so any client can
 * read the contracts (GET /subjects/<subject>/versions/latest). Returns the subjects.
 */
export async function registerContracts(registry: SchemaRegistry, connectors: Iterable<Connector>): Promise<string[]> {
  const subjects: string[] = [];
  for (const c of connectors) {
    for (const [name, action] of Object.entries(c.manifest.actions)) {
      for (const side of ['input', 'output'] as const) {
        const json = z.toJSONSchema(action[side], { unrepresentable: 'any', io: side, target: 'draft-7' });
        const subject = contractSubject(c.manifest.id, name, side);
        const schema = JSON.stringify({ title: `${c.manifest.id}.${name} ${side}`, ...json });
        await retryingRegistrationRace(() => registry.register({ type: SchemaType.JSON, schema }, { subject }));
        subjects.push(subject);
      }
    }
  }
  return subjects;
}
