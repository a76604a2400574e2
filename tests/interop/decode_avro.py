"""Reads a topic with Confluent's own Python client and prints each record, decoded through the
schema registry by confluent-kafka's AvroDeserializer, as one JSON line. None of the hub's code
is involved: this is what an analytics consumer in another language sees.

usage: decode_avro.py <bootstrap> <registry-url> <topic> <count> [timeout-seconds]
The principal comes from the same variables the hub uses: KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME,
KAFKA_SASL_PASSWORD (or KAFKA_SASL_PASSWORD_FILE), KAFKA_SSL and KAFKA_SSL_CA_FILE.
"""
import datetime
import json
import os
import sys
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext


def plain(value):
    if isinstance(value, datetime.datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def auth():
    """confluent-kafka settings for the principal in the environment (none: an anonymous client)."""
    env = os.environ
    out = {}
    tls = env.get("KAFKA_SSL", "").lower() in ("true", "1", "yes")
    if env.get("KAFKA_SASL_USERNAME"):
        password = env.get("KAFKA_SASL_PASSWORD") or open(env["KAFKA_SASL_PASSWORD_FILE"]).read().strip()
        out.update({
            "security.protocol": "SASL_SSL" if tls else "SASL_PLAINTEXT",
            "sasl.mechanisms": env.get("KAFKA_SASL_MECHANISM", "scram-sha-256").upper(),
            "sasl.username": env["KAFKA_SASL_USERNAME"],
            "sasl.password": password,
        })
    elif tls:
        out["security.protocol"] = "SSL"
    if tls and env.get("KAFKA_SSL_CA_FILE"):
        out["ssl.ca.location"] = env["KAFKA_SSL_CA_FILE"]
    return out


def reader(bootstrap, topic):
    """A read_committed consumer of no group's, every partition of `topic` assigned from its
    beginning (no group join to wait for); and the partitions."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"interop-{uuid.uuid4()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        **auth(),
    })
    metadata = consumer.list_topics(topic, timeout=10)
    partitions = sorted(metadata.topics[topic].partitions)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    return consumer, partitions


def main():
    bootstrap, registry_url, topic, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    timeout = float(sys.argv[5]) if len(sys.argv) > 5 else 30
    # Without a timeout the client waits on a stalled HTTP connection forever (seen once in CI).
    deserializer = AvroDeserializer(SchemaRegistryClient({"url": registry_url, "timeout": 10}))
    consumer, _ = reader(bootstrap, topic)
    seen, deadline = 0, time.time() + timeout
    try:
        while seen < count and time.time() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                print(json.dumps({"error": str(msg.error())}), flush=True)
                continue
            record = deserializer(msg.value(), SerializationContext(msg.topic(), MessageField.VALUE))
            print(json.dumps({
                "topic": msg.topic(),
                "schema_id": int.from_bytes(msg.value()[1:5], "big"),
                "key": msg.key().decode() if msg.key() else None,
                "value": {k: plain(v) for k, v in record.items()},
            }), flush=True)
            seen += 1
    finally:
        consumer.close()
    sys.exit(0 if seen >= count else 3)


if __name__ == "__main__":
    main()
