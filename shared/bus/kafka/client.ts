import { createRequire } from 'node:module';
import { Kafka, logLevel, type ISocketFactory, type LogEntry, type SASLOptions } from 'kafkajs';
import type { KafkaAuth } from '../../config.ts';
import type { Logger } from '../../logger.ts';

const levels: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [logLevel.ERROR]: 'error',
  [logLevel.WARN]: 'warn',
  [logLevel.INFO]: 'info',
  [logLevel.DEBUG]: 'debug',
};

// kafkajs logs every failed request at ERROR, including the ones it retries by itself: while a
// fresh broker creates and loads the group coordinator (GROUP_COORDINATOR_NOT_AVAILABLE,
// GROUP_LOAD_IN_PROGRESS, NOT_COORDINATOR_FOR_GROUP), elects the leaders of a topic just created
// (LEADER_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION), rebalances a group (REBALANCE_IN_PROGRESS),
// after each transaction (CONCURRENT_TRANSACTIONS), and while the broker's port is closed (a broker
// stopped for 10 s under the running services printed about 870 ERROR lines, every one retried).
// Those go to debug; what kafkajs gives up on still surfaces as an error from the call that failed
// (or from kafkajs itself: a consumer crash it does not restart stays an error), and a retry that
// goes on for RETRY_WARN_AFTER_MS is reported at warn, once per period, so a broker that stays
// away is not silent at info.
const errorCodes = (createRequire(import.meta.url)('kafkajs/src/protocol/error.js') as { errorCodes: { type: string; retriable: boolean; message: string }[] }).errorCodes;
const retriableMessages: ReadonlySet<string> = new Set(errorCodes.filter((e) => e.retriable).map((e) => e.message));
// Marked non-retriable by kafkajs, but its consumer answers them by re-joining the group
// (runner.js: isRebalancing, UNKNOWN_MEMBER_ID): noise in a response log, not in a crash.
const REJOIN = new Set(['REBALANCE_IN_PROGRESS', 'ILLEGAL_GENERATION', 'UNKNOWN_MEMBER_ID']);
const rejoinMessages: ReadonlySet<string> = new Set(errorCodes.filter((e) => REJOIN.has(e.type)).map((e) => e.message));

/**
 * kafkajs's own errors (not broker error codes) that it retries, by message as it logs them
 * (src/network/connection.js, requestQueue/socketRequest.js, cluster/index.js, producer/sendMessages.js).
 */
const retriableKafkaJsMessages: readonly RegExp[] = [
  /^Connection error: /, // KafkaJSConnectionError: ECONNREFUSED / ECONNRESET while the broker (re)starts
  /^Connection timeout$/,
  /^Closed connection$/, // KafkaJSConnectionClosedError
  /^Request .* timed out$/, // KafkaJSRequestTimeoutError
  /^Topic metadata not loaded$/, // KafkaJSMetadataNotLoaded / KafkaJSTopicMetadataNotLoaded
  /^Producing to topic without metadata$/,
];

/** kafkajs error classes that are retriable (KafkaJSError's default) and appear in crash lines. */
const retriableErrorNames: ReadonlySet<string> = new Set([
  // kafkajs restarts a consumer that crashed with this (consumer/index.js onCrash), whatever the cause.
  'KafkaJSNumberOfRetriesExceeded',
  'KafkaJSConnectionError', 'KafkaJSConnectionClosedError', 'KafkaJSRequestTimeoutError',
  'KafkaJSMetadataNotLoaded', 'KafkaJSTopicMetadataNotLoaded', 'KafkaJSStaleTopicMetadataAssignment',
  'KafkaJSBrokerNotFound', 'KafkaJSNoBrokerAvailableError',
]);

export function isRetriableMessage(text: unknown): boolean {
  if (typeof text !== 'string') return false;
  return retriableMessages.has(text) || retriableKafkaJsMessages.some((re) => re.test(text));
}

export type KafkaLogLevel = 'error' | 'warn' | 'info' | 'debug';

/**
 * The level a kafkajs log entry gets in our logs: retriable noise (see above) at debug, anything
 * else at kafkajs's own level. Pure, for the unit test; `retried` is true when it was lowered.
 */
export function classifyKafkaLog(entry: Pick<LogEntry, 'level' | 'log'>): { level: KafkaLogLevel; retried: boolean } {
  const level = levels[entry.level] ?? 'info';
  if (level !== 'error' && level !== 'warn') return { level, retried: false };
  const log = entry.log as { message?: unknown; error?: unknown };
  const message = typeof log.message === 'string' ? log.message : '';
  const lowered = { level: 'debug' as const, retried: true };
  // A kafkajs error object logged as such carries its own flag (KafkaJSError.retriable).
  const flagged = (v: unknown) => typeof v === 'object' && v !== null && (v as { retriable?: unknown }).retriable === true;
  if (flagged(log.message) || flagged(log.error)) return lowered;
  // `Response <Api>(key, version)` and most retry loops carry the failed request's error message.
  if (isRetriableMessage(log.error) || (typeof log.error === 'string' && rejoinMessages.has(log.error))) return lowered;
  // The entry whose message is the error: "Failed to send messages: <e>", a bare "<e>" from the
  // producer or broker pool, "Failed to connect to seed broker, trying another broker from the list: <e>".
  const inner = /^(?:Failed to send messages: |Failed to connect to seed broker, trying another broker from the list: )?(.*)$/s.exec(message)![1]!;
  if (isRetriableMessage(inner)) return lowered;
  if (message === 'Failed to connect to broker, reconnecting') return lowered;
  // A consumer that crashed on a retriable error restarts by itself (kafkajs's own rule in
  // consumer/index.js: KafkaJSNumberOfRetriesExceeded, or a retriable cause), and says so next.
  const crash = /^Crash: (KafkaJS\w+): (.*)$/s.exec(message);
  if (crash && (retriableErrorNames.has(crash[1]!) || isRetriableMessage(crash[2]))) return lowered;
  if (message.startsWith('Restarting the consumer in')) return lowered;
  // A rebalance (REBALANCE_IN_PROGRESS, or the coordinator forgetting the member after one): the
  // runner re-joins by itself.
  if (message === 'The group is rebalancing, re-joining' || message === 'The coordinator is not aware of this member, re-joining the group') return lowered;
  // Two services creating the same topic at once: the loser's TOPIC_ALREADY_EXISTS is expected, and
  // a refusal by the ACLs surfaces as a HubError from the provisioner (provision.ts).
  if (message.startsWith('Response CreateTopics')) return lowered;
  return { level, retried: false };
}

export const RETRY_WARN_AFTER_MS = 60_000;

/**
 * Lowered entries, by what they are about: a retry that keeps coming back for RETRY_WARN_AFTER_MS
 * is logged once at warn (then again every RETRY_WARN_AFTER_MS while it lasts).
 */
export function retryWatch(now: () => number = Date.now): (key: string) => boolean {
  const seen = new Map<string, { first: number; last: number; warned: number }>();
  return (key) => {
    const t = now();
    let s = seen.get(key);
    if (!s || t - s.last > RETRY_WARN_AFTER_MS) {
      if (!s && seen.size >= 256) seen.clear(); // bounded: keys are a few messages per broker
      s = { first: t, last: t, warned: -Infinity };
      seen.set(key, s);
    }
    s.last = t;
    if (t - s.first < RETRY_WARN_AFTER_MS || t - s.warned < RETRY_WARN_AFTER_MS) return false;
    s.warned = t;
    return true;
  };
}

/**
 * How the client opens its connections (kafkajs's socket factory): given to route them through a
 * network that misbehaves on purpose (tests/helpers/faulty-network.ts). Unset, plain TCP/TLS.
 */
export type SocketFactory = ISocketFactory;

/** kafkajs's own socket factory (TCP or TLS, with keep-alive), which its index does not export. */
const kafkajsSockets = (createRequire(import.meta.url)('kafkajs/src/network/socketFactory.js') as () => SocketFactory)();

/**
 * Requests leave at once (TCP_NODELAY, as the Java client and the broker set it): with Nagle's
 * algorithm a small request written while an earlier one is unacknowledged (a heartbeat or
 * commit beside a fetch the broker holds) waits for that ACK, which the broker's kernel may delay.
 */
function noDelay(factory: SocketFactory): SocketFactory {
  return (args) => {
    const socket = factory(args);
    socket.setNoDelay(true);
    return socket;
  };
}

/** A kafkajs client whose own logs go through our (redacting) pino logger. */
export function createKafka(opts: { brokers: string[]; clientId: string; logger: Logger; auth?: KafkaAuth; connectionTimeoutMs?: number; socketFactory?: SocketFactory }): Kafka {
  process.env.KAFKAJS_NO_PARTITIONER_WARNING ??= '1';
  const { sasl, ssl } = opts.auth ?? {};
  return new Kafka({
    brokers: opts.brokers,
    clientId: opts.clientId,
    ...(sasl ? { sasl: { mechanism: sasl.mechanism, username: sasl.username, password: sasl.password } as SASLOptions } : {}),
    ...(ssl ? { ssl: ssl.ca ? { ca: [ssl.ca] } : true } : {}),
    connectionTimeout: opts.connectionTimeoutMs ?? 1000,
    requestTimeout: 10_000,
    socketFactory: noDelay(opts.socketFactory ?? kafkajsSockets),
    logLevel: logLevel.WARN,
    logCreator: () => {
      const persisting = retryWatch();
      return (entry: LogEntry) => {
        const { message, ...rest } = entry.log;
        const { level, retried } = classifyKafkaLog(entry);
        if (!retried) return void opts.logger[level]({ kafkajs: entry.namespace, ...rest }, message);
        // Keep kafkajs's own level beside the lowered one, for whoever reads the debug log.
        const fields = { kafkajs: entry.namespace, kafkajsLevel: levels[entry.level], ...rest };
        // What the retry is about, without the counters and delays that change between attempts.
        const about = `${entry.namespace}:${String(typeof rest.error === 'string' ? rest.error : message).replace(/\d+/g, '#')}`;
        if (persisting(about)) opts.logger.warn({ ...fields, retryingForMs: RETRY_WARN_AFTER_MS }, `still retrying after ${RETRY_WARN_AFTER_MS / 1000} s: ${message}`);
        else opts.logger.debug(fields, message);
      };
    },
  });
}
