import type { Producer } from 'kafkajs';

/**
 * Connects a transactional producer and fences every earlier holder of its transactional id:
 * Kafka aborts what that one left open (so the topics' readable ends move past it at once) and
 * refuses its later commits. kafkajs's `connect()` alone does not: it asks for an idempotent
 * producer id only, and the transactional InitProducerId comes with the first transaction. So one
 * is begun and dropped here (nothing was added to it, so nothing is sent for the drop).
 */
export async function connectFenced(producer: Producer): Promise<void> {
  await producer.connect();
  await (await producer.transaction()).abort();
}
