"""The gateway as `redbutton gateway --http off --no-watch` runs it (venue file, SQLite store,
Gateway, until SIGTERM), instrumented to say where its time goes. Only the profile runs use this;
measured runs use the real command, so no instrumentation reaches a reported figure.

--profile PREFIX: cProfile on the two threads that do the gateway's work, the MQTT thread's
handling of each message and the escalation thread's ticks (a profiler per thread: cProfile follows
only the thread that enables it); writes PREFIX.handle and PREFIX.tick (pstats files).

--timings FILE: no profiler, only perf_counter stamps, so the figures keep their real size: how
long each press's handling takes and how far into it its alert is published, how long each tick
holds the gateway's lock, how long each SQLite commit takes; written to FILE as JSON (seconds)."""

from __future__ import annotations

import argparse
import cProfile
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway.cli import serve
from gateway.logs import setup_logging
from gateway.mqtt_io import MqttIO
from gateway.service import Gateway
from gateway.store import Store
from gateway.venue import load_venue


def profiled(gw: Gateway, io: MqttIO, prefix: Path) -> list[Any]:
    """cProfile per thread; -> what to do at exit."""
    on_message, on_tick = cProfile.Profile(), cProfile.Profile()
    io.on_message = lambda topic, payload: on_message.runcall(gw.receive, topic, payload)
    gw.scheduler.on_tick = lambda: on_tick.runcall(gw.tick)
    return [lambda: on_message.dump_stats(f"{prefix}.handle"), lambda: on_tick.dump_stats(f"{prefix}.tick")]


def timed(gw: Gateway, io: MqttIO, store: Store, out: Path) -> list[Any]:
    """perf_counter stamps around handle, the alert's publish, tick and commit; -> what to do at exit."""
    t: dict[str, list[float]] = {"press_handle": [], "press_to_alert": [], "handle": [], "tick": [], "commit": []}
    pressed = [0.0]  # when the press being handled came in; 0 once its alert left
    publish, commit = io.publish, getattr(store, "_commit", None)

    def on_message(topic: str, payload: bytes) -> None:
        t0 = time.perf_counter()
        is_press = topic.endswith("/press")
        pressed[0] = t0 if is_press else 0.0
        gw.receive(topic, payload)  # the production path: fair intake, then handle
        took = time.perf_counter() - t0
        t["press_handle" if is_press else "handle"].append(took)

    def on_publish(topic: str, payload: bytes, retain: bool = False) -> Any:
        if pressed[0] and topic.endswith("/cmd/alert"):
            t["press_to_alert"].append(time.perf_counter() - pressed[0])
            pressed[0] = 0.0
        return publish(topic, payload, retain)

    def on_tick() -> None:
        t0 = time.perf_counter()
        gw.tick()
        t["tick"].append(time.perf_counter() - t0)

    def on_commit(raw: Any) -> None:
        assert commit is not None
        t0 = time.perf_counter()
        commit(raw)
        t["commit"].append(time.perf_counter() - t0)

    io.on_message = on_message
    io.publish = on_publish  # type: ignore[method-assign]
    gw.scheduler.on_tick = on_tick
    if commit is not None:  # the store's one place every transaction commits
        store._commit = on_commit  # type: ignore[method-assign]
    started = time.perf_counter()
    return [lambda: out.write_text(json.dumps({**t, "seconds": time.perf_counter() - started}))]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gateway_proc", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--venue", required=True, type=Path)
    p.add_argument("--broker", required=True)
    p.add_argument("--db", required=True)
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--profile", type=Path, help="prefix of the two pstats files written at exit")
    how.add_argument("--timings", type=Path, help="the JSON file of timings written at exit")
    a = p.parse_args(argv)
    setup_logging()
    store = Store(a.db)
    gw = Gateway(load_venue(a.venue), store, a.broker)
    if not isinstance(gw.io, MqttIO):
        raise TypeError("the gateway's publisher is not an MqttIO")
    at_exit = profiled(gw, gw.io, a.profile) if a.profile else timed(gw, gw.io, store, a.timings)

    def stop() -> None:
        gw.stop()
        store.close()
        for write in at_exit:
            write()

    return serve(gw.start, stop)


if __name__ == "__main__":
    sys.exit(main())
