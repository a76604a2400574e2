import { randomUUID } from 'node:crypto';
import express, { type Express, type Request, type Response } from 'express';
import type { z } from 'zod';
import type { KafkaTable } from '../../shared/bus/table/table.ts';
import type { Bus } from '../../shared/bus/types.ts';
import { topics } from '../../shared/bus/topics.ts';
import { commandSchema, encodeCommandJson } from '../../shared/commands/envelope.ts';
import { dedupeDigest } from '../../shared/commands/digest.ts';
import { commandKey, sameCommand, type CommandState } from '../../shared/commands/state.ts';
import { sendBulkInput, sendInput } from '../../shared/connectors/catalog/email.ts';
import { isWorkspaceId } from '../../shared/ids.ts';
import type { Logger } from '../../shared/logger.ts';
import type { SecretStore } from '../../shared/secrets/index.ts';
import { authenticate } from './api-auth.ts';
import type { Sealer } from './seal.ts';

export interface ApiDeps {
  bus: Pick<Bus, 'publish'>;
  states: Pick<KafkaTable<CommandState>, 'get'>;
  store: SecretStore;
  sealer: Sealer;
  platformToken?: string;
  logger: Logger;
  /** ionflux.cmd.<service> (email). */
  service?: string;
}

const MAX_WAIT_MS = 30_000;

/** `?wait=5s`, `?wait=1500ms` or `?wait=5` (seconds); at most 30 s. */
export function parseWait(v: unknown): number | null {
  if (v === undefined) return 0;
  const m = typeof v === 'string' ? /^(\d{1,6})(ms|s)?$/.exec(v) : null;
  if (!m) return null;
  return Math.min(MAX_WAIT_MS, Number(m[1]) * (m[2] === 'ms' ? 1 : 1000));
}

const problems = (e: z.ZodError) => e.issues.map((i) => ({ path: i.path.join('.') || '(body)', message: i.message }));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * POST /v1/emails/send (and /v1/emails/bulk): the same params as the `send` (`send_bulk`) command,
 * authenticated by bearer token, put on ionflux.cmd.email keyed by workspace. 202 with the
 * command id, or with `?wait=` the outcome if it comes in time. The platform token's sends are
 * sealed as platform notifications (no approval); a workspace token's wait like an agent's.
 */
export function mountEmailApi(app: Express, d: ApiDeps): void {
  const route = (action: 'send' | 'send_bulk', schema: z.ZodType) => async (req: Request, res: Response) => {
    const caller = await authenticate(req.headers.authorization, { platformToken: d.platformToken, store: d.store }).catch((e: unknown) => {
      d.logger.warn({ err: e }, 'token lookup failed');
      return undefined;
    });
    if (caller === undefined) return void res.status(503).json({ error: 'unavailable', message: 'secret store unavailable' });
    if (!caller) return void res.status(401).set('www-authenticate', 'Bearer').json({ error: 'unauthorized', message: 'a valid Authorization: Bearer token is required' });
    const wait = parseWait(req.query.wait);
    const body = (req.body ?? {}) as Record<string, unknown>;
    const { workspace_id: named, ...given } = typeof body === 'object' && !Array.isArray(body) ? body : {};
    const issues: { path: string; message: string }[] = [];
    if (wait === null) issues.push({ path: 'wait', message: 'wait is a duration like 5s or 1500ms' });
    const ws = caller.kind === 'workspace' ? caller.workspaceId : named;
    if (caller.kind === 'platform' && !isWorkspaceId(ws)) issues.push({ path: 'workspace_id', message: 'the platform token must name the workspace_id the message is for' });
    if (caller.kind === 'workspace' && named !== undefined && named !== ws) issues.push({ path: 'workspace_id', message: "a workspace token sends for its own workspace only" });
    if (given.platform_seal !== undefined) issues.push({ path: 'platform_seal', message: 'set by the dispatcher, never by callers' });
    const key = req.headers['idempotency-key'];
    const commandId = typeof key === 'string' ? key : randomUUID();
    if (!commandSchema.shape.command_id.safeParse(commandId).success) issues.push({ path: 'Idempotency-Key', message: 'letters, digits and _ . : - only, at most 200' });
    const parsed = schema.safeParse(given);
    if (!parsed.success) issues.push(...problems(parsed.error));
    if (issues.length) return void res.status(400).json({ error: 'invalid_request', problems: issues });
    const workspaceId = ws as string;
    // What the worker will read: the params as the action's schema parses them (unknown fields
    // dropped). Sealed and digested as such, or the worker's check of the seal over the parsed
    // params would fail for any body with a field the schema does not know.
    const params = parsed.data as Record<string, unknown>;
    const service = d.service ?? 'email';
    const agentId = caller.kind === 'platform' ? 'platform' : 'http-api';
    // What the worker compares a re-sent key with (the seal, which differs on every retry, left out).
    const digest = dedupeDigest(service, { action, params, workspace_id: workspaceId, reply_to: null, agent_id: agentId });
    const stateKey = commandKey(workspaceId, commandId);
    const reused = () => void res.status(422).json({ error: 'idempotency_key_reused', message: 'this Idempotency-Key was already used for another request (other body, or the other kind of token); nothing was sent for this one: use a new key' });
    const known = d.states.get(stateKey);
    if (known && !sameCommand(known, digest)) return reused();
    const finalParams = caller.kind === 'platform' ? d.sealer.seal(commandId, workspaceId, params) : params;
    const command = { command_id: commandId, workspace_id: workspaceId, agent_id: agentId, service, action, params: finalParams };
    try {
      await d.bus.publish({ topic: topics.command(service), key: workspaceId, value: encodeCommandJson(command) });
    } catch (e) {
      d.logger.warn({ err: e }, 'command not published');
      // The record may have reached Kafka although the answer did not: a retry must carry this id,
      // or it would be another command (and a second message).
      return void res.status(503).json({ error: 'unavailable', command_id: commandId, message: `the command could not be queued; retry with Idempotency-Key: ${commandId}` });
    }
    const deadline = Date.now() + (wait ?? 0);
    for (;;) {
      const state = d.states.get(stateKey);
      // Another request took the key first (it was not in the table yet): the worker refuses this
      // one and keeps that one's state, which is what shows here.
      if (state && !sameCommand(state, digest)) return reused();
      if (state?.outcome && state.phase !== 'started') {
        const outcome = JSON.parse(state.outcome.event.payload_json) as Record<string, unknown>;
        const { agent_id: _a, service: _s, ...rest } = outcome;
        return void res.status(200).json(rest);
      }
      if (Date.now() >= deadline) break;
      await sleep(50);
    }
    res.status(202).json({ command_id: commandId, status: 'queued' });
  };
  const json = express.json({ limit: '1mb' });
  app.post('/v1/emails/send', json, route('send', sendInput));
  app.post('/v1/emails/bulk', json, route('send_bulk', sendBulkInput));
  // Malformed JSON (and a body over the limit) answer in the API's own shape.
  app.use('/v1/emails', (err: Error & { status?: number }, _req: Request, res: Response, next: (e?: unknown) => void) => {
    if (!err) return next();
    res.status(err.status === 413 ? 413 : 400).json({ error: err.status === 413 ? 'too_large' : 'invalid_request', problems: [{ path: '(body)', message: err.status === 413 ? 'body over 1 MiB' : 'not valid JSON' }] });
  });
}
