"""What every measurement stands on: the run's context, the gateway and the relay as processes of
their own, and a round-trip probe driven by the load generator's own selector threads.

The gateway runs as `python -m gateway.cli gateway` (the real command, dashboard and file watcher
off), in a process of its own as in production: the light devices' 1,100 MQTT clients then do not
share its interpreter lock, and its CPU is counted apart from theirs."""

from __future__ import annotations

import itertools
import os
import re
import secrets
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

import rbproto
from gateway.broker import Mosquitto
from gateway.mqtt_io import parse_broker_url, set_nodelay
from simulator.load import KEEPALIVE_S, Worker, venue_toml

from .relay import READY

REPO = Path(__file__).resolve().parents[1]
UP = re.compile(r"gateway for (\S+) up \(command epoch \d+, (\d+) timers restored\)")


def say(line: str) -> None:
    """Progress, flushed at once: `make bench | tee` shows where the run is."""
    print(line, flush=True)


@dataclass
class Context:
    """One bench run: quick (the test's tiny sizes) or full, where its scratch files and results go."""

    quick: bool
    work: Path  # databases, venue files, process logs: thrown away
    results: Path  # latest.json, latest.md, the plot, the profiles
    profile: bool = True
    say: Callable[[str], None] = say
    names: Iterator[int] = field(default_factory=itertools.count)

    def site(self, prefix: str) -> str:
        """A site id used once: every run gets topics, a gateway session and a database of its own."""
        return f"{prefix}{next(self.names)}-{secrets.token_hex(2)}"


@dataclass
class Section:
    """What one measurement found: its figures (JSON) and its latency samples in ms, for the plot."""

    figures: dict[str, Any]
    curves: dict[str, list[float]] = field(default_factory=dict)


def message_sizes() -> dict[str, int]:
    """Bytes of a signed press and of a signed alert as the devices and the gateway send them: the
    baseline's payloads are padded to these."""
    key = bytes(32)
    now = int(time.time())
    _t, press = rbproto.encode(key, "load", "btn-1000", "press",
                               {"ep": now, "seq": 12345, "ts": now, "kind": "complaint", "bat": 3900})
    _t, alert = rbproto.encode(key, "load", "pgr-s100", "alert",
                               {"ep": now, "seq": 123456, "ts": now, "inc": 12345, "table": "T1000",
                                "kind": "complaint", "lvl": 0, "age": 0})
    return {"press": len(press), "alert": len(alert)}


@contextmanager
def broker(ctx: Context, name: str) -> Iterator[Mosquitto]:
    """A private mosquitto with the project's settings (TCP_NODELAY, no queue limit)."""
    with Mosquitto(ctx.work / f"broker-{name}") as b:
        yield b


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, all its threads, from /proc (0 where there is no /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def write_venue(ctx: Context, doc: dict[str, Any]) -> Path:
    path = ctx.work / f"venue-{doc['site']}.toml"
    path.write_text(venue_toml(doc))
    return path


class Child:
    """A child process in a session of its own, stopped with SIGTERM (its clean way out), killed if
    it does not go within ten seconds."""

    def __init__(self, argv: list[str], log: Path, stdout: int | IO[Any] = subprocess.DEVNULL) -> None:
        self.log = log
        self._log_file = log.open("wb")
        self.spawned = time.perf_counter()
        self.proc = subprocess.Popen(argv, cwd=REPO, stdout=stdout, stderr=self._log_file, start_new_session=True)

    def cpu_s(self) -> float:
        return cpu_seconds(self.proc.pid)

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log_file.close()


class GatewayProcess(Child):
    """`redbutton gateway` on a venue file and a SQLite file; with `profile` or `timings`,
    bench.gateway_proc instead: the same gateway under cProfile, or with its timings stamped."""

    def __init__(self, ctx: Context, venue_file: Path, broker_url: str, db: Path, profile: Path | None = None,
                 timings: Path | None = None) -> None:
        common = ["--venue", str(venue_file), "--broker", broker_url, "--db", str(db)]
        if profile is not None:
            argv = [sys.executable, "-m", "bench.gateway_proc", *common, "--profile", str(profile)]
        elif timings is not None:
            argv = [sys.executable, "-m", "bench.gateway_proc", *common, "--timings", str(timings)]
        else:
            argv = [sys.executable, "-m", "gateway.cli", "gateway", *common, "--http", "off", "--no-watch"]
        super().__init__(argv, db.with_suffix(".log"))
        self.up_s: float | None = None  # spawn -> its "up" log line
        self.restored: int | None = None  # timers it says it restored

    def wait_up(self, timeout: float = 60.0) -> float:
        """Seconds from spawning the process to its log saying it is up; polls its log every 2 ms."""
        deadline = self.spawned + timeout
        seen = ""
        with self.log.open(errors="replace") as f:
            while True:
                seen += f.read()
                m = UP.search(seen)
                if m:
                    now = time.perf_counter()
                    self.up_s, self.restored = now - self.spawned, int(m.group(2))
                    return self.up_s
                if self.proc.poll() is not None or time.perf_counter() > deadline:
                    self.stop()
                    raise RuntimeError(f"the gateway did not come up:\n{self.tail()}")
                time.sleep(0.002)


class RelayProcess(Child):
    """bench.relay between two topics, ready once it says so."""

    def __init__(self, ctx: Context, broker_url: str, source: str, target: str) -> None:
        name = f"relay-{next(ctx.names)}"
        super().__init__([sys.executable, "-m", "bench.relay", "--broker", broker_url, "--source", source,
                          "--target", target, "--client-id", f"bench-{name}-{secrets.token_hex(2)}"],
                         ctx.work / f"{name}.log", stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(30) or READY not in self.proc.stdout.readline().decode():
                self.stop()
                raise RuntimeError(f"the relay did not start:\n{self.tail()}")


class RoundTrip:
    """QoS 1 publish on one topic, receipt on another, both stamped with perf_counter here: one hop
    when the topics are the same, two when a relay forwards between them. The two clients are
    attached to simulator.load's selector threads (the light devices' own), so under load the probe
    sees the scheduling the devices see. Payloads are padded to the size of the message they stand
    for; the first bytes are the probe's sequence number."""

    def __init__(self, broker_url: str, send_topic: str, recv_topic: str, pub_worker: Worker, sub_worker: Worker,
                 size: int, name: str) -> None:
        self.broker = parse_broker_url(broker_url)
        self.send_topic, self.recv_topic, self.size = send_topic, recv_topic, size
        self.pub_worker, self.sub_worker = pub_worker, sub_worker
        self.interval = 0.05
        self.limit: int | None = None
        self._n = itertools.count(1)
        self._lock = threading.Lock()
        self._sent: dict[int, float] = {}
        self._running = False
        self.sent = 0
        self.samples: list[tuple[float, float]] = []  # (sent at, round trip seconds)
        self.subscribed = threading.Event()
        self.done = threading.Event()
        tag = f"bench-{name}-{secrets.token_hex(2)}"
        self.pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{tag}-pub", protocol=mqtt.MQTTv311)
        self.sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{tag}-sub", protocol=mqtt.MQTTv311)
        self.sub.on_connect = lambda c, _u, _f, _r, _p: c.subscribe(recv_topic, qos=1)
        self.sub.on_subscribe = lambda *_a: self.subscribed.set()
        self.sub.on_message = self._on_message
        pub_worker.attach(self.pub)
        sub_worker.attach(self.sub)

    def connect(self) -> None:
        """Queued on the workers: fine before they start (LoadRun starts them in run())."""
        self.pub_worker.call(lambda: self._connect(self.pub))
        self.sub_worker.call(lambda: self._connect(self.sub))

    def _connect(self, client: mqtt.Client) -> None:
        client.connect(*self.broker, keepalive=KEEPALIVE_S)

    def payload(self, n: int) -> bytes:
        head = b"%d " % n
        return head + b"x" * max(0, self.size - len(head))

    def start(self, interval: float, limit: int | None = None) -> None:
        """A publish every `interval` seconds on the publisher's thread, `limit` of them or until stop()."""
        self.interval, self.limit = interval, limit
        self._running = True
        self.pub_worker.call(self._tick)

    def stop(self) -> None:
        self._running = False

    def reset(self) -> None:
        with self._lock:
            self._sent.clear()
            self.samples.clear()
            self.sent = 0
        self.done.clear()

    def _tick(self) -> None:
        if not self._running or (self.limit is not None and self.sent >= self.limit):
            return
        now = time.perf_counter()
        n = next(self._n)
        with self._lock:
            self._sent[n] = now
            self.sent += 1
        self.pub.publish(self.send_topic, self.payload(n), qos=1)
        self.pub_worker.at(now + self.interval, self._tick)

    def _on_message(self, _c: mqtt.Client, _u: Any, m: mqtt.MQTTMessage) -> None:
        at = time.perf_counter()
        n = int(bytes(m.payload).split(b" ", 1)[0])
        with self._lock:
            sent = self._sent.pop(n, None)
            if sent is not None:
                self.samples.append((sent, at - sent))
            if self.limit is not None and len(self.samples) >= self.limit:
                self.done.set()

    def warm_up(self, timeout: float = 20.0) -> None:
        """Publish until messages come back (the relay's subscription is in place), then forget them."""
        if not self.subscribed.wait(timeout):
            raise RuntimeError(f"the probe on {self.recv_topic} was not subscribed within {timeout} s")
        self.start(0.02)
        deadline = time.monotonic() + timeout
        while len(self.samples) < 5:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing came back on {self.recv_topic} within {timeout} s")
            time.sleep(0.02)
        self.stop()
        time.sleep(0.1)  # the last warm-up messages in flight arrive, and are forgotten with the rest
        self.reset()

    def within(self, start: float, end: float) -> tuple[list[float], int]:
        """Round trips (ms) of the probes sent in [start, end], and how many of those never came back."""
        with self._lock:
            got = [rtt * 1000 for sent, rtt in self.samples if start <= sent <= end]
            missing = sum(1 for sent in self._sent.values() if start <= sent <= end)
        return got, missing


def plain_client(name: str, protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv311) -> mqtt.Client:
    """A paho client with TCP_NODELAY set on every socket it opens (Nagle costs ~40 ms a message)."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{name}-{secrets.token_hex(2)}", protocol=protocol)
    c.on_socket_open = set_nodelay
    return c
