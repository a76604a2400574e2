import type { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { z } from 'zod';
import { isWorkspaceId } from '../ids.ts';
import { HubError } from '../errors.ts';

const segment = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** The command envelope (SPEC.md), as the worker sees it after decoding either wire form. */
export const commandSchema = z.object({
  command_id: z.string().min(1).max(200).regex(/^[A-Za-z0-9_.:-]+$/, 'letters, digits and _ . : - only'),
  workspace_id: z.string().refine(isWorkspaceId, 'invalid workspace id'),
  agent_id: z.string().regex(segment, 'invalid agent id'),
  service: z.string().regex(segment),
  action: z.string().min(1).max(100).regex(/^[a-z0-9_.-]+$/),
  params: z.record(z.string(), z.unknown()).default({}),
  reply_to: z.string().max(249).nullish(),
  approval_id: z.string().max(200).nullish(),
  /** ISO 8601 or epoch milliseconds. */
  deadline: z.union([z.iso.datetime({ offset: true }).transform((s) => Date.parse(s)), z.number().int().positive()]).nullish(),
});
export type Command = z.infer<typeof commandSchema>;
export type CommandInput = z.input<typeof commandSchema>;

export const COMMAND_SUBJECT = 'io.ionflux.commands.Command';

/**
 * Plain JSON (`{`) or Confluent-framed Avro (magic byte 0). Throws HubError `invalid_command`
 * saying what is wrong; never returns a half-valid command.
 */
export async function decodeCommand(bytes: Buffer | null, registry: SchemaRegistry): Promise<Command> {
  if (!bytes || bytes.length === 0) throw new HubError('invalid_command', 'empty record');
  let raw: unknown;
  if (bytes[0] === 0) {
    try {
      const avro = (await registry.decode(bytes)) as Record<string, unknown>;
      raw = { ...avro, params: JSON.parse(String(avro.params_json ?? '{}')) };
    } catch (e) {
      throw new HubError('invalid_command', `not a decodable Avro command: ${(e as Error).message}`);
    }
  } else {
    try {
      raw = JSON.parse(bytes.toString('utf8'));
    } catch {
      throw new HubError('invalid_command', 'not valid JSON and not Confluent-framed Avro');
    }
  }
  const parsed = commandSchema.safeParse(raw);
  if (!parsed.success) throw new HubError('invalid_command', z.prettifyError(parsed.error).replace(/\s+/g, ' ').slice(0, 500));
  return parsed.data;
}

/** JSON wire form of a command, for clients that do not use the registry. */
export function encodeCommandJson(c: CommandInput): Buffer {
  return Buffer.from(JSON.stringify(c));
}
