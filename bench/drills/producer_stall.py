"""`python -m bench.drills.producer_stall`: kafka-python's idempotent producer after a broker
stall with records in flight, alone (no Django, no web process).

A producer with the web process's settings (acks=all, idempotence, delivery 4.5 s,
request 4.4 s, max block 1 s) sends a record every 0.2 s; the stack's broker is frozen
(SIGSTOP) for 10 s, then continued. kafka-python 3.0.x never sends again: the records in
flight expire after they were retried, `Sender._send_producer_data` calls
`TransactionManager.reset_producer_id()`, which clears the producer id but leaves the
state READY, and `init_producer_id()` acts only in UNINITIALIZED, so no new id is ever
asked for. Exit status 0 when the producer recovers within 10 s, 1 when it does not (the
bug is there). docs/RELIABILITY.md has the details; votes/producer.py the remedy.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import uuid
from collections import Counter

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from stack import faults
from stack.profiles import get_profile

SETTINGS = {
    "acks": "all",
    "enable_idempotence": True,
    "linger_ms": 1,
    "delivery_timeout_ms": 4500,
    "request_timeout_ms": 4400,
    "max_block_ms": 1000,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.drills.producer_stall")
    parser.add_argument("--profile", default="dev", help="stack profile whose Kafka to freeze")
    parser.add_argument("--stall", type=float, default=10.0, help="seconds the broker is frozen")
    args = parser.parse_args(argv)
    profile = get_profile(args.profile)
    servers = profile.kafka_bootstrap
    topic = f"producer-stall-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=servers)
    admin.create_topics([NewTopic(topic, 4, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=servers, **SETTINGS)
    producer.partitions_for(topic)
    began = time.monotonic()
    results: list[tuple[float, str]] = []
    lock = threading.Lock()
    resumed: list[float] = []

    def send(n: int) -> None:
        sent = time.monotonic() - began
        try:
            producer.send(topic, key=str(n % 7).encode(), value=b"x").get(timeout=5)
            outcome = "ok"
        except Exception as exc:
            outcome = type(exc).__name__
        with lock:
            results.append((sent, outcome))

    def stall() -> None:
        time.sleep(3)
        with faults.frozen("kafka", profile):
            print(f"{time.monotonic() - began:5.1f} s  broker frozen", flush=True)
            time.sleep(args.stall)
        resumed.append(time.monotonic() - began)
        print(f"{resumed[0]:5.1f} s  broker continued", flush=True)

    threading.Thread(target=stall, daemon=True).start()
    n = 0
    while time.monotonic() - began < 3 + args.stall + 15:
        threading.Thread(target=send, args=(n,), daemon=True).start()
        n += 1
        time.sleep(0.2)
    time.sleep(6)
    after = [(sent, outcome) for sent, outcome in results if resumed and sent > resumed[0]]
    first_ok = min((sent for sent, outcome in after if outcome == "ok"), default=None)
    manager = producer._transaction_manager
    print(f"sends after the broker continued: {dict(Counter(o for _, o in after))}")
    print(
        f"producer id {manager.producer_id_and_epoch.producer_id}, "
        f"transaction manager state {manager._current_state.name}"
    )
    recovered = first_ok is not None and first_ok - resumed[0] <= 10
    if recovered:
        assert first_ok is not None
        print(f"recovered: first acknowledged send {first_ok - resumed[0]:.1f} s after")
    else:
        print("never recovered: every send after the stall failed (the kafka-python bug)")
    return 0 if recovered else 1


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    # Not sys.exit: the stuck producer's close() (also at exit) waits for records that a
    # producer without an id never expires.
    os._exit(code)
