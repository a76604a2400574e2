"""Writes two overlapping transactions to partition 0 of a topic with Confluent's own Python
client and aborts both, the later-begun one first, then commits one record; reads the partition
back with a read_committed librdkafka consumer. Prints one JSON object: the offset of each
record written ({"a1": 0, "b1": 1, ...}) and what librdkafka's consumer read ("seen").

This is what a crashed transactional writer leaves behind when several of its transactions were
open on one partition (the inbox processor has one per inbox partition): aborts that come in
another order than the transactions began.

usage: aborted_txns.py <bootstrap> <topic> <tag>
The principal comes from the environment, as for decode_avro.py.
"""
import json
import sys
import time

from confluent_kafka import Producer

from decode_avro import auth, reader


def main():
    bootstrap, topic, tag = sys.argv[1], sys.argv[2], sys.argv[3]
    offsets = {}

    def producer(name):
        p = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"{tag}-{name}", **auth()})
        p.init_transactions(30)
        return p

    def send(p, value):
        def done(err, msg):
            if err is not None:
                raise RuntimeError(f"{value}: {err}")
            offsets[value] = msg.offset()
        p.produce(topic, value=value.encode(), partition=0, on_delivery=done)
        p.flush(30)

    a, b = producer("a"), producer("b")
    a.begin_transaction()
    send(a, "a1")
    b.begin_transaction()
    send(b, "b1")
    send(a, "a2")
    send(b, "b2")
    # The later-begun transaction is aborted first: the broker's list of aborted transactions is
    # then not in the order they began.
    b.abort_transaction(30)
    a.abort_transaction(30)
    a.begin_transaction()
    send(a, "end")
    a.commit_transaction(30)

    consumer, _ = reader(bootstrap, topic)
    seen = []
    deadline = time.time() + 20
    while time.time() < deadline and "end" not in seen:
        msg = consumer.poll(0.5)
        if msg is None or msg.error():
            continue
        seen.append(msg.value().decode())
    consumer.close()
    print(json.dumps({**offsets, "seen": seen}))


if __name__ == "__main__":
    main()
