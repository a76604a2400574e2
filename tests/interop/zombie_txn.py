"""A writer that keeps a transaction open: with transactional id <id>, writes <value> (keyed by
itself) to partition 0 of <topic>, prints {"open": offset}, waits for a line on stdin, then tries to commit and prints
{"committed": true} or {"committed": false, "error": "..."}. What a processor that lost its
partition (a long pause, a network split) still holds when the new owner takes over.

usage: zombie_txn.py <bootstrap> <topic> <transactional-id> <value>
The principal comes from the environment, as for decode_avro.py.
"""
import json
import sys

from confluent_kafka import KafkaException, Producer

from decode_avro import auth


def main():
    bootstrap, topic, txn_id, value = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id, "transaction.timeout.ms": 120000, **auth()})
    p.init_transactions(30)
    p.begin_transaction()
    offsets = []
    errors = []
    p.produce(topic, key=value.encode(), value=value.encode(), partition=0, on_delivery=lambda err, msg: offsets.append(msg.offset()) if err is None else errors.append(str(err)))
    p.flush(30)
    if errors:
        print(json.dumps({"error": errors[0]}), flush=True)
        sys.exit(1)
    print(json.dumps({"open": offsets[0]}), flush=True)
    sys.stdin.readline()
    try:
        p.commit_transaction(30)
        print(json.dumps({"committed": True}), flush=True)
    except KafkaException as e:
        print(json.dumps({"committed": False, "error": str(e)}), flush=True)


if __name__ == "__main__":
    main()
