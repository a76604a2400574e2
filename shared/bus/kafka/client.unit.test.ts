import { connect, createServer, type AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { logLevel, type LogEntry } from 'kafkajs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../logger.ts';
import { classifyKafkaLog, createKafka, RETRY_WARN_AFTER_MS, retryWatch, type SocketFactory } from './client.ts';

/**
 * Entries shaped the way kafkajs builds them (src/loggers/index.js createLevel: namespace, level,
 * label, log = { timestamp, logger: 'kafkajs', message, ...extra }), with the messages and extras
 * of the call sites that log them (src/network/connection.js, cluster/brokerPool.js,
 * consumer/index.js onCrash, consumer/runner.js, producer/sendMessages.js). The texts are the ones
 * a fresh `make up` and a broker restart printed.
 */
const entry = (namespace: string, level: 'ERROR' | 'WARN' | 'INFO' | 'DEBUG', message: unknown, extra: Record<string, unknown> = {}): LogEntry => ({
  namespace,
  level: logLevel[level],
  label: level,
  log: { timestamp: '2026-11-27T12:59:05.306Z', logger: 'kafkajs', message, ...extra },
} as LogEntry);

const response = (api: string, error: string) =>
  entry('Connection', 'ERROR', `Response ${api}`, { broker: '127.0.0.1:29100', clientId: 'ionflux-email-dispatcher', error, correlationId: 7, size: 42 });
const crash = (name: string, message: string) =>
  entry('Consumer', 'ERROR', `Crash: ${name}: ${message}`, { groupId: 'ionflux-email-worker', retryCount: 10, stack: `${name}: ${message}\n    at retry/index.js:55:18` });

describe('classifyKafkaLog: what kafkajs retries by itself goes to debug', () => {
  it.each([
    // the group coordinator while a fresh broker creates and loads __consumer_offsets
    ['GROUP_COORDINATOR_NOT_AVAILABLE', response('GroupCoordinator(key: 10, version: 2)', 'The group coordinator is not available')],
    ['GROUP_LOAD_IN_PROGRESS', response('InitProducerId(key: 22, version: 1)', "The coordinator is loading and hence can't process requests for this group")],
    ['NOT_COORDINATOR_FOR_GROUP', response('Heartbeat(key: 12, version: 3)', 'This is not the correct coordinator for this group')],
    // a topic just created: no leader yet
    ['LEADER_NOT_AVAILABLE', response('Metadata(key: 3, version: 6)', 'There is no leader for this topic-partition as we are in the middle of a leadership election')],
    ['UNKNOWN_TOPIC_OR_PARTITION', response('Metadata(key: 3, version: 6)', 'This server does not host this topic-partition')],
    ['CONCURRENT_TRANSACTIONS', response('AddPartitionsToTxn(key: 24, version: 1)', 'The producer attempted to update a transaction while another concurrent operation on the same transaction was ongoing')],
    // rebalances: kafkajs marks these non-retriable but its consumer re-joins on them
    ['REBALANCE_IN_PROGRESS', response('Heartbeat(key: 12, version: 3)', 'The group is rebalancing, so a rejoin is needed')],
    ['rebalancing runner', entry('Runner', 'WARN', 'The group is rebalancing, re-joining', { groupId: 'g', memberId: 'm', error: 'The group is rebalancing, so a rejoin is needed' })],
    ['unknown member runner', entry('Runner', 'ERROR', 'The coordinator is not aware of this member, re-joining the group', { groupId: 'g', memberId: 'm', error: 'The coordinator is not aware of this member' })],
    // consumer crash that kafkajs restarts, and the restart itself
    ['crash after retries', crash('KafkaJSNumberOfRetriesExceeded', "The coordinator is loading and hence can't process requests for this group")],
    ['crash on a retriable protocol error', crash('KafkaJSProtocolError', "The coordinator is loading and hence can't process requests for this group")],
    ['crash on a connection error', crash('KafkaJSNonRetriableError', 'Connection error: connect ECONNREFUSED 127.0.0.1:29100')],
    ['crash with no broker', crash('KafkaJSNoBrokerAvailableError', 'No broker available')],
    ['restart', entry('Consumer', 'ERROR', 'Restarting the consumer in 312ms', { retryCount: 10, retryTime: 312, groupId: 'g' })],
    // the broker's port not open yet (starting, restarting)
    ['connection refused', entry('Connection', 'ERROR', 'Connection error: connect ECONNREFUSED 127.0.0.1:29100', { broker: '127.0.0.1:29100', clientId: 'c', stack: 'Error: connect ECONNREFUSED' })],
    ['connection timeout', entry('Connection', 'ERROR', 'Connection timeout', { broker: '127.0.0.1:29100', clientId: 'c' })],
    ['seed broker', entry('BrokerPool', 'ERROR', 'Failed to connect to seed broker, trying another broker from the list: Connection error: connect ECONNREFUSED 127.0.0.1:29100', { retryCount: 0, retryTime: 282 })],
    ['request timeout', entry('BrokerPool', 'ERROR', 'Request Metadata(key: 3, version: 6) timed out', { retryCount: 1, retryTime: 600 })],
    // the producer retrying a send whose partition leader moved
    ['send', entry('Producer', 'ERROR', 'Failed to send messages: This server is not the leader for that topic-partition', { retryCount: 0, retryTime: 300 })],
    // two services creating one topic
    ['create topics race', response('CreateTopics(key: 19, version: 3)', 'Topic creation errors')],
    // a kafkajs error object logged as the message carries its own flag
    ['flagged error object', entry('BrokerPool', 'ERROR', Object.assign(new Error('Closed connection'), { name: 'KafkaJSConnectionClosedError', retriable: true }), { retryCount: 2 })],
  ])('%s', (_what, e) => {
    expect(classifyKafkaLog(e)).toEqual({ level: 'debug', retried: true });
  });
});

describe('classifyKafkaLog: what is not retried keeps its level', () => {
  it.each([
    // kafkajs does not restart this consumer: it is gone (seen after a broker restart)
    ['crash without restart', crash('KafkaJSNonRetriableError', 'Failed to find group coordinator'), 'error'],
    // a non-retriable cause: kafkajs does not restart, even though a response with it is only a re-join
    ['crash on a rebalance error', crash('KafkaJSNonRetriableError', 'The group is rebalancing, so a rejoin is needed'), 'error'],
    ['group not authorized', crash('KafkaJSNonRetriableError', 'Not authorized to access group: Group authorization failed'), 'error'],
    ['topic not authorized', response('Produce(key: 0, version: 7)', 'Not authorized to access topics: [Topic authorization failed]'), 'error'],
    ['SASL failure', entry('BrokerPool', 'ERROR', 'SASL SCRAM SHA256 authentication failed: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256', { retryCount: 0, retryTime: 300 }), 'error'],
    ['listener failure', entry('Consumer', 'ERROR', 'Failed to execute listener: boom', { eventName: 'consumer.crash', stack: 'Error: boom' }), 'error'],
    ['eachMessage failure', entry('Runner', 'ERROR', 'Error when calling eachMessage', { topic: 't', partition: 0, offset: '5', stack: 'Error: x', error: 'x' }), 'error'],
    ['unflagged error object', entry('BrokerPool', 'ERROR', Object.assign(new Error('Unsupported SASL mechanism'), { retriable: false })), 'error'],
    ['a warning', entry('Producer', 'WARN', 'Limiting retries for the idempotent producer may invalidate EoS guarantees'), 'warn'],
    ['an info line', entry('Consumer', 'INFO', 'Starting', { groupId: 'g' }), 'info'],
    ['a debug line', entry('Connection', 'DEBUG', 'Request Metadata(key: 3, version: 6)', { correlationId: 1 }), 'debug'],
  ] as const)('%s -> %s', (_what, e, level) => {
    expect(classifyKafkaLog(e)).toEqual({ level, retried: false });
  });
});

describe('retryWatch', () => {
  it('reports a retry that lasts RETRY_WARN_AFTER_MS once per period, and starts over after a quiet spell', () => {
    let t = 0;
    const persisting = retryWatch(() => t);
    const seen: boolean[] = [];
    for (t = 0; t <= 2 * RETRY_WARN_AFTER_MS; t += 5_000) seen.push(persisting('Connection:refused'));
    // at 60 s and again at 120 s
    expect(seen.filter(Boolean)).toHaveLength(2);
    expect(seen.indexOf(true)).toBe(RETRY_WARN_AFTER_MS / 5_000);
    expect(persisting('Connection:other')).toBe(false);
    t += RETRY_WARN_AFTER_MS + 1; // quiet for longer than a period: a new streak
    expect(persisting('Connection:refused')).toBe(false);
  });
});

describe('createKafka log creator', () => {
  afterEach(() => vi.useRealTimers());

  function capture() {
    const lines: Array<Record<string, unknown>> = [];
    const destination = new Writable({ write: (c, _e, cb) => (String(c).split('\n').filter(Boolean).forEach((l) => lines.push(JSON.parse(l))), cb()) });
    const logger = createLogger({ service: 'unit', level: 'debug', destination });
    const kafka = createKafka({ brokers: ['127.0.0.1:1'], clientId: 'unit', logger });
    return { log: kafka.logger().namespace('Connection'), lines };
  }

  it('writes retried entries at debug with kafkajs own level beside, others at their level', () => {
    const { log, lines } = capture();
    log.error('Response GroupCoordinator(key: 10, version: 2)', { error: 'The group coordinator is not available', correlationId: 1 });
    log.error('Response Produce(key: 0, version: 7)', { error: 'Not authorized to access topics: [Topic authorization failed]' });
    expect(lines.map((l) => [l.level, l.kafkajs, l.kafkajsLevel, l.msg])).toEqual([
      [20, 'Connection', 'error', 'Response GroupCoordinator(key: 10, version: 2)'],
      [50, 'Connection', undefined, 'Response Produce(key: 0, version: 7)'],
    ]);
  });

  it('warns once a retry has gone on for RETRY_WARN_AFTER_MS', () => {
    vi.useFakeTimers();
    vi.setSystemTime(new Date('2026-11-27T13:00:00Z'));
    const { log, lines } = capture();
    for (let i = 0; i <= RETRY_WARN_AFTER_MS / 2_000; i++) {
      log.error(`Connection error: connect ECONNREFUSED 127.0.0.1:${29100}`, { broker: '127.0.0.1:29100' });
      vi.advanceTimersByTime(2_000);
    }
    const warns = lines.filter((l) => (l.level as number) >= 40);
    expect(warns).toHaveLength(1);
    expect(warns[0]).toMatchObject({ level: 40, kafkajsLevel: 'error', retryingForMs: RETRY_WARN_AFTER_MS });
    expect(String(warns[0]!.msg)).toMatch(/^still retrying after 60 s: Connection error: connect ECONNREFUSED/);
    expect(lines.filter((l) => l.level === 50)).toEqual([]);
  });
});

describe('createKafka connections', () => {
  it('open with TCP_NODELAY, whatever socket factory is given (requests are not held back by Nagle)', async () => {
    const server = createServer((s) => s.destroy()); // not a broker: the client only has to open a connection
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    const noDelay: boolean[] = [];
    const factory: SocketFactory = ({ host, port, onConnect }) => {
      const socket = connect({ host, port }, onConnect);
      const set = socket.setNoDelay.bind(socket);
      socket.setNoDelay = (v?: boolean) => (noDelay.push(v ?? true), set(v));
      return socket;
    };
    const kafka = createKafka({ brokers: [`127.0.0.1:${port}`], clientId: 'nodelay-test', logger: createLogger({ service: 'nodelay-test', level: 'silent' }), socketFactory: factory });
    const admin = kafka.admin({ retry: { retries: 0 } });
    const connecting = admin.connect().catch(() => undefined);
    await vi.waitFor(() => expect(noDelay.length).toBeGreaterThan(0), { timeout: 3000 });
    expect(noDelay.every((v) => v)).toBe(true);
    await admin.disconnect();
    server.close();
    void connecting;
  });
});
