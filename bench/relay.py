"""The two-hop baseline's forwarder: every message on one topic is published again on another.

It runs as a process of its own, as the gateway does, and talks through the gateway's own MQTT
client (gateway.mqtt_io.MqttIO: MQTT 5, TCP_NODELAY, the same session and flow-control settings),
so publisher -> broker -> relay -> broker -> subscriber is the gateway's path minus the gateway's
work on the message: what the gateway adds is measured against this floor.

    python -m bench.relay --broker mqtt://127.0.0.1:PORT --source IN --target OUT"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gateway.cli import serve
from gateway.mqtt_io import MqttIO

READY = "relay ready"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.relay", description=__doc__)
    p.add_argument("--broker", required=True)
    p.add_argument("--source", required=True, help="topic to subscribe to")
    p.add_argument("--target", required=True, help="topic each message is published again on")
    p.add_argument("--client-id", default="bench-relay")
    a = p.parse_args(argv)
    holder: list[MqttIO] = []

    def forward(_topic: str, payload: bytes) -> None:
        holder[0].publish(a.target, payload)

    io = MqttIO(a.broker, "bench", a.client_id, forward, subscriptions=[a.source], status_id=None)
    holder.append(io)

    def start() -> None:
        io.start()
        print(READY, flush=True)

    return serve(start, io.stop)


if __name__ == "__main__":
    sys.exit(main())
