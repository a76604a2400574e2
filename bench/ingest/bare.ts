/**
 * bench/ingest's Node floor: what the peer (Redpanda Connect) does, written as plainly as Node
 * and kafkajs allow, so the hub can be read against a Node HTTP-to-Kafka bridge as well as
 * against the Go one. node:http; the Shopify HMAC of the raw body checked (401 otherwise); the
 * record keyed by the order id (admin_graphql_api_id) and appended to FLOOR_TOPIC with acks=all by
 * an idempotent producer; 200 once Kafka acknowledged, 503 when it did not. Records that arrive
 * while a request is in flight go together in the next one (kafkajs sends one request at a time
 * per idempotent producer, and one awaited send per record is about ten times slower).
 * Nothing else: no inbox, no dedupe, no link lookup, no schema, no transaction.
 * Env: KAFKA_BROKERS (+ SASL), FLOOR_PORT, FLOOR_TOPIC, FLOOR_SHOPIFY_SECRET. Prints `ready`.
 */
import { createKafka } from '../../shared/bus/kafka/client.ts';
import { baseEnv, kafkaAuth, parseEnv } from '../../shared/config.ts';
import { createLogger } from '../../shared/logger.ts';
import { floorEdge } from './floor-edge.ts';

const env = process.env;
const topic = env.FLOOR_TOPIC!;
const secret = env.FLOOR_SHOPIFY_SECRET!;
const kafka = createKafka({ brokers: (env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(','), auth: kafkaAuth(parseEnv(baseEnv)), clientId: 'bench-ingest-floor', logger: createLogger({ service: 'bench-ingest-floor', level: 'warn' }) });
const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
await producer.connect();

const server = floorEdge({ producer, topic, secret });
server.listen(Number(env.FLOOR_PORT), '127.0.0.1', () => process.stdout.write('ready\n'));

const stop = () => server.close(() => void producer.disconnect().finally(() => process.exit(0)));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
