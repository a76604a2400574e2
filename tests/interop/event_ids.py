"""Reads every partition of a topic to its end with Confluent's own Python client (read_committed)
and prints one JSON line: [[partition, offset, event id], ...], the event id from the
`ionflux.event_id` header. An independent count: exactly-once checks do not rest on the hub's
Kafka client alone.

usage: event_ids.py <bootstrap> <topic> [timeout-seconds]
The principal comes from the environment, as for decode_avro.py.
"""
import json
import sys
import time

from confluent_kafka import TopicPartition

from decode_avro import reader


def main():
    bootstrap, topic = sys.argv[1], sys.argv[2]
    timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 30
    consumer, partitions = reader(bootstrap, topic)
    ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
    out, deadline = [], time.time() + timeout
    try:
        while time.time() < deadline:
            # Done once every partition's position passed its end as of the start (control records included).
            positions = consumer.position([TopicPartition(topic, p) for p in partitions])
            if all(tp.offset >= ends[tp.partition] for tp in positions if ends[tp.partition] > 0):
                break
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            if msg.offset() >= ends[msg.partition()]:
                continue
            headers = dict(msg.headers() or [])
            event_id = headers.get("ionflux.event_id")
            out.append([msg.partition(), msg.offset(), event_id.decode() if event_id else None])
    finally:
        consumer.close()
    print(json.dumps(out))
    sys.exit(0 if time.time() < deadline else 3)


if __name__ == "__main__":
    main()
