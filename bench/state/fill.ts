/**
 * Fills `ionflux.state.commands-noop` with BENCH_STATE_COMMANDS finished commands (default 1M),
 * as the connector worker writes them: key `<workspace>:<command_id>`, value a `done` state with
 * its outcome (commandStateFormat: the compact form), finished at random times within the last 70
 * hours (the worker keeps 72).
 * Prints one JSON line: records, value bytes, seconds. Env: KAFKA_BROKERS.
 */
import { randomUUID } from 'node:crypto';
import { createKafkaBus } from '../../shared/bus/kafka/bus.ts';
import { baseEnv, kafkaAuth, parseEnv } from '../../shared/config.ts';
import { topics } from '../../shared/bus/topics.ts';
import type { OutgoingRecord } from '../../shared/bus/types.ts';
import { commandKey, commandStateFormat, type CommandState } from '../../shared/commands/state.ts';
import { createLogger } from '../../shared/logger.ts';

const N = Number(process.env.BENCH_STATE_COMMANDS ?? 1_000_000);
const CHUNK = 20_000;
// BENCH_STATE_TARGET=ingester: the webhook ingester's delivery markers instead (what its inbox
// processor keeps per delivery for WEBHOOK_DEDUPE_HOURS), as services/webhook-ingester/processor.ts writes them.
const ingester = process.env.BENCH_STATE_TARGET === 'ingester';
const topic = ingester ? topics.state('webhook-deliveries') : topics.state('commands-noop');
const logger = createLogger({ service: 'bench-state-fill', level: 'warn', destination: process.stderr });
const bus = createKafkaBus({ brokers: (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(','), auth: kafkaAuth(parseEnv(baseEnv)), clientId: 'bench-state-fill', logger, maxBatch: 5000 });

function marker(i: number, now: number): OutgoingRecord {
  const at = now - Math.floor(Math.random() * 70 * 3600_000);
  return { topic, key: `shopify:bench${i % 16}.myshopify.com:${randomUUID()}`, value: JSON.stringify({ eventId: randomUUID(), outcome: 'published', at }) };
}

const format = commandStateFormat('noop');
function finished(i: number, now: number): OutgoingRecord {
  const ws = `bench${i % 16}`;
  const commandId = randomUUID();
  const at = now - Math.floor(Math.random() * 70 * 3600_000);
  const state: CommandState = {
    phase: 'done',
    at,
    outcome: {
      topic: `ionflux.noop.ws_${ws}.command.outcomes`,
      event: {
        event_id: randomUUID(),
        event_type: 'noop.command.succeeded',
        timestamp: at,
        source_service_name: 'noop-worker',
        workspace_id: ws,
        payload_schema_version: '1',
        payload_json: JSON.stringify({ command_id: commandId, service: 'noop', action: 'noop', status: 'succeeded', result: { n: i }, attempts: 1 }),
        correlation_id: commandId,
        causation_id: commandId,
      },
    },
  };
  const key = commandKey(ws, commandId);
  return { topic, key, value: format.serialize!(state, key) };
}

await bus.ensureTopics([topic]);
const started = performance.now();
let bytes = 0;
const now = Date.now();
for (let from = 0; from < N; from += CHUNK) {
  const records = Array.from({ length: Math.min(CHUNK, N - from) }, (_, j) => (ingester ? marker : finished)(from + j, now));
  bytes += records.reduce((n, r) => n + Buffer.byteLength(r.value!), 0);
  const failed = (await bus.publishBatch(records)).filter((o) => !o.ok).length;
  if (failed) throw new Error(`${failed} records not acknowledged`);
  if ((from / CHUNK) % 10 === 0) process.stderr.write(`[fill] ${from + records.length} / ${N}\n`);
}
await bus.close();
process.stdout.write(`${JSON.stringify({ records: N, avg_value_bytes: Math.round(bytes / N), seconds: Math.round((performance.now() - started) / 100) / 10 })}\n`);
