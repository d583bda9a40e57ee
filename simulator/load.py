"""`redbutton load`: a thousand light buttons and a hundred light pagers against a real broker and gateway.

A light device is not the firmware's threads and shims (1,100 of those would measure the simulator,
not the system): it is the firmware's own Messenger (rbproto signing, replay window) with its own
key and its own MQTT connection, so the broker sees one client per device and the gateway verifies
every message as it would a board's. The clients are driven by a few selector threads through
paho's loop_read/loop_write/loop_misc; all of a client's work (presses, acks, timers) happens on
its worker's thread, so no paho client is ever touched from two threads.

Ground truth is the gateway's store: a press counts as recorded only when its (device, ep, seq) row
is in the presses table. Latency is press publish -> alert receipt on a pager, stamped in this
process; a plain publish -> subscribe round trip on the same broker is measured in the same run as
the baseline, because the machine is shared and absolute figures drift from run to run."""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import logging
import math
import os
import queue
import random
import resource
import secrets
import selectors
import socket
import tempfile
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

import rbproto
from gateway.broker import Mosquitto
from gateway.cli import DEFAULT_BROKER, sigterm_as_interrupt
from gateway.mqtt_io import parse_broker_url, set_nodelay
from gateway.service import Gateway
from gateway.store import Store
from gateway.venue import BUTTON, PAGER, Venue, load_venue, parse_venue

from . import shims

shims.install()

import device  # noqa: E402  (the firmware's Messenger: importable once the firmware lib is on the path)

log = logging.getLogger("redbutton.load")

KEEPALIVE_S = 60
# After a lost connection a light device connects again after these pauses, as the firmware's MQTT
# link does (firmware/lib/mqtt_link.py _BACKOFF_MS), each +-20 % so a venue does not come back in
# one millisecond; the last one repeats.
RECONNECT_S = (0.5, 1.0, 2.0, 5.0, 10.0)
MISC_EVERY_S = 1.0  # paho's keepalive bookkeeping (loop_misc) for every client, this often
PROBE_EVERY_S = 0.05  # baseline round trips: 20 a second while the presses run
BATTERY_MV = 3900
DEFAULT_RATE = 20.0  # presses per second, all buttons together
SYNTHETIC_SITE = "load"
TABLES_PER_ZONE = 50
MANAGER_SHARE = 10  # one pager in this many is a manager's


# ---- the synthetic venue ------------------------------------------------------------------------

def synthetic_doc(buttons: int, pagers: int, site: str = SYNTHETIC_SITE) -> dict[str, Any]:
    """A venue document with `buttons` tables in zones of 50 and `pagers` staff: one in ten a manager
    covering every zone, the rest servers spread over the zones, every table with a responder of
    its zone. Keys are fresh random ones. Built as a document and parsed by the gateway's own
    parser, so it is exactly what a venue file with the same content would give."""
    if buttons < 1 or pagers < 2:
        raise ValueError("a synthetic venue needs at least 1 button and 2 pagers")
    zones = [f"z{i + 1}" for i in range(max(1, math.ceil(buttons / TABLES_PER_ZONE)))]
    managers = max(1, pagers // MANAGER_SHARE)
    servers = pagers - managers
    staff: list[dict[str, Any]] = []
    by_zone: dict[str, list[str]] = {z: [] for z in zones}
    for i in range(servers):
        # More servers than zones: several share a zone; fewer: each covers several.
        covers = [zones[i % len(zones)]] if servers >= len(zones) else zones[i::servers]
        sid = f"s{i + 1}"
        staff.append({"id": sid, "name": f"Server {i + 1}", "pager": f"pgr-s{i + 1}", "zones": covers,
                      "role": "server"})
        for z in covers:
            by_zone[z].append(sid)
    for i in range(managers):
        staff.append({"id": f"m{i + 1}", "name": f"Manager {i + 1}", "pager": f"pgr-m{i + 1}", "zones": zones,
                      "role": "manager"})
    tables = []
    for i in range(buttons):
        zone = zones[i // TABLES_PER_ZONE]
        row: dict[str, Any] = {"id": f"T{i + 1}", "zone": zone, "button": f"btn-{i + 1}"}
        if by_zone[zone]:
            row["responder"] = by_zone[zone][i % len(by_zone[zone])]
        tables.append(row)
    devices = [{"id": t["button"], "role": BUTTON, "key": secrets.token_hex(32)} for t in tables]
    devices += [{"id": s["pager"], "role": PAGER, "key": secrets.token_hex(32)} for s in staff]
    return {"site": site, "name": f"Synthetic venue ({buttons} tables, {pagers} staff)",
            "zones": [{"id": z, "name": f"Zone {z[1:]}"} for z in zones],
            "tables": tables, "staff": staff, "devices": devices,
            # A load run presses each button far more often than a customer would; the prankster
            # rule would otherwise send most calls to the managers instead of the table's server.
            "noise": {"rate_limit_presses": 1000}}


def synthetic_venue(buttons: int, pagers: int, site: str = SYNTHETIC_SITE) -> Venue:
    return parse_venue(synthetic_doc(buttons, pagers, site), "<synthetic>")


def venue_toml(doc: dict[str, Any]) -> str:
    """The synthetic document as a venue file, for a gateway run apart (`redbutton gateway --venue`)."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return str(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(v)  # a TOML basic string is a JSON string for these ASCII values

    lines = [f"site = {value(doc['site'])}", f"name = {value(doc['name'])}", "", "[noise]"]
    lines += [f"{k} = {value(v)}" for k, v in doc["noise"].items()]
    for section in ("zones", "staff", "tables", "devices"):
        for row in doc[section]:
            lines += ["", f"[[{section}]]", *(f"{k} = {value(v)}" for k, v in row.items())]
    return "\n".join(lines) + "\n"


# ---- what the run measures ----------------------------------------------------------------------

class Tally:
    """Everything the light devices see, written from the worker threads under one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pressed: dict[tuple[str, int, int], float] = {}  # (button, ep, seq) -> publish time
        self.counts: dict[str, int] = {}
        self.answered: dict[tuple[str, int, int], float] = {}  # (button, ep, seq) -> its answer's receipt time
        self.alerts: dict[int, list[float]] = {}  # incident -> receipt times on any pager
        self.probe_sent: dict[int, float] = {}
        self.probe_rtt: list[float] = []

    def inc(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.counts[name] = self.counts.get(name, 0) + n

    def get(self, name: str) -> int:
        with self.lock:
            return self.counts.get(name, 0)

    def press(self, key: tuple[str, int, int], at: float) -> None:
        with self.lock:
            self.pressed[key] = at
            self.counts["presses_published"] = self.counts.get("presses_published", 0) + 1

    def answer(self, key: tuple[str, int, int], at: float) -> None:
        """The press (button, ep, seq) has its answer; the first one counts."""
        with self.lock:
            self.answered.setdefault(key, at)

    def alert(self, inc: int, at: float) -> None:
        with self.lock:
            self.alerts.setdefault(inc, []).append(at)
            self.counts["pages_delivered"] = self.counts.get("pages_delivered", 0) + 1


class _Clock:
    """The wall clock a Messenger stamps events with (the board's RTC, set by NTP); `skew_s` sets it
    off, as a board whose RTC drifted or was set wrong (fault injection)."""

    def __init__(self) -> None:
        self.skew_s = 0.0

    def epoch_s(self) -> int:
        return int(time.time() + self.skew_s)


# ---- the selector threads -----------------------------------------------------------------------

class Worker:
    """One thread driving many paho clients: a selector over their sockets, a timer heap, and a queue
    of calls from other threads. paho is told about writes through on_socket_register_write, which
    only marks the client; the marks are flushed once per pass, so a publish from a timer or a
    callback goes out in the same pass without a selector change per message."""

    def __init__(self, name: str, seed: int) -> None:
        self.name = name
        self.rng = random.Random(seed)
        self.sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._calls: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._dirty: set[mqtt.Client] = set()
        self._write_wait: set[mqtt.Client] = set()
        self.clients: list[mqtt.Client] = []
        self._running = True
        self.thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def attach(self, c: mqtt.Client) -> None:
        c.on_socket_open = self._opened
        c.on_socket_close = self._closed
        c.on_socket_register_write = lambda client, _u, _s: self._dirty.add(client)
        c.on_socket_unregister_write = self._unregister_write
        self.clients.append(c)

    def _opened(self, c: mqtt.Client, userdata: Any, sock: Any) -> None:
        set_nodelay(c, userdata, sock)
        self.sel.register(sock, selectors.EVENT_READ, c)

    def _closed(self, c: mqtt.Client, _u: Any, sock: Any) -> None:
        self._dirty.discard(c)
        self._write_wait.discard(c)
        try:
            self.sel.unregister(sock)
        except (KeyError, ValueError):
            pass

    def _unregister_write(self, c: mqtt.Client, _u: Any, sock: Any) -> None:
        self._dirty.discard(c)
        if c in self._write_wait:
            self._write_wait.discard(c)
            self.sel.modify(sock, selectors.EVENT_READ, c)

    def start(self) -> None:
        self.thread.start()

    def call(self, fn: Callable[[], None]) -> None:
        """Run fn on this worker's thread (the only thread that may touch its clients)."""
        self._calls.put(fn)
        try:
            self._wake_w.send(b"x")
        except BlockingIOError:
            pass  # the wake-up socket is full: the worker is awake anyway

    def at(self, when: float, fn: Callable[[], None]) -> None:
        """A timer on perf_counter time; only from this worker's thread."""
        heapq.heappush(self._timers, (when, next(self._order), fn))

    def disconnect_all(self) -> None:
        for c in self.clients:
            c.disconnect()

    def stop(self) -> None:
        def halt() -> None:
            self._running = False

        self.call(halt)
        self.thread.join(10)
        if not self.thread.is_alive():
            self.sel.close()
            self._wake_r.close()
            self._wake_w.close()

    def _loop(self) -> None:
        next_misc = time.perf_counter() + MISC_EVERY_S
        while self._running:
            now = time.perf_counter()
            timeout = min(next_misc, self._timers[0][0] if self._timers else next_misc) - now
            for key, mask in self.sel.select(max(0.0, timeout) if not self._dirty else 0):
                c = key.data
                if c is None:
                    self._drain_wake()
                    continue
                if mask & selectors.EVENT_READ:
                    c.loop_read()
                if mask & selectors.EVENT_WRITE:
                    c.loop_write()
            while True:
                try:
                    self._calls.get_nowait()()
                except queue.Empty:
                    break
            now = time.perf_counter()
            while self._timers and self._timers[0][0] <= now:
                heapq.heappop(self._timers)[2]()
            if now >= next_misc:
                next_misc = now + MISC_EVERY_S
                for c in self.clients:
                    c.loop_misc()
            self._flush()
        for c in self.clients:
            c.loop_write()

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass

    def _flush(self) -> None:
        for c in list(self._dirty):
            c.loop_write()
            if c.want_write() and c not in self._write_wait:  # the socket buffer is full: wait for it
                self._dirty.discard(c)
                self._write_wait.add(c)
                sock = c.socket()
                if sock is not None:
                    self.sel.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)


# ---- light devices ------------------------------------------------------------------------------

class LightDevice:
    """One device's identity, keys, sequence numbers and MQTT connection, without its firmware loop."""

    def __init__(self, venue: Venue, dev_id: str, broker: tuple[str, int], epoch: int, worker: Worker,
                 tally: Tally, run_id: str) -> None:
        self.id = dev_id
        self.worker = worker
        self.tally = tally
        self.broker = broker
        cfg = {"site": venue.site, "device": dev_id, "key": venue.devices[dev_id].key.hex()}
        self.clock = _Clock()
        self.msgr = device.Messenger(cfg, epoch, self.clock, None, log=self._dropped)
        self.configured = False
        self.closing = False  # set before a wanted disconnect: no reconnect then
        self._fails = 0
        self.cv = 0
        self.settings: dict[str, Any] = {}
        self.up_since = time.monotonic()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"load-{run_id}-{dev_id}", protocol=mqtt.MQTTv311)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_publish = self._on_publish
        topic, will = self.msgr.status(rbproto.OFFLINE)
        c.will_set(topic, will, qos=1, retain=True)
        worker.attach(c)
        self.client = c

    def connect(self) -> None:
        try:
            self.client.connect(*self.broker, keepalive=KEEPALIVE_S)
        except OSError as e:
            self.tally.inc("connect_errors")
            log.warning("%s could not connect: %s", self.id, e)

    def _reconnect_later(self) -> None:
        if self.closing:
            return
        pause = RECONNECT_S[min(self._fails, len(RECONNECT_S) - 1)] * self.worker.rng.uniform(0.8, 1.2)
        self._fails += 1
        self.worker.at(time.perf_counter() + pause, self._reconnect)

    def _reconnect(self) -> None:
        """On the worker's thread: a new connection; paho sends again what the broker had not
        acknowledged (its QoS 1 messages in flight and those published while disconnected)."""
        if self.closing or self.client.is_connected():
            return
        try:
            self.client.reconnect()
        except OSError:
            self.tally.inc("reconnect_failed")
            self._reconnect_later()  # the broker is not back yet
            return
        self.tally.inc("reconnects")

    def _dropped(self, line: str) -> None:
        self.tally.inc("device_drops")
        log.warning("%s %s", self.id, line)

    def _on_connect(self, c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        if reason.is_failure:
            self.tally.inc("connect_refused")
            return
        self._fails = 0
        c.subscribe(rbproto.commands_filter(self.msgr.site, self.id), qos=1)
        topic, online = self.msgr.status(rbproto.ONLINE)
        c.publish(topic, online, qos=1, retain=True)

    def _on_disconnect(self, *_args: Any) -> None:
        """The broker went away (or the run ends): connect again, as the firmware does."""
        self.tally.inc("disconnects")
        self._reconnect_later()

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, _reason: ReasonCode, _p: Any) -> None:
        pass

    def _on_message(self, _c: mqtt.Client, _u: Any, m: mqtt.MQTTMessage) -> None:
        msg = self.msgr.receive(m.topic, bytes(m.payload))
        if msg is None:
            return
        if msg.mtype == "config":
            first = not self.configured
            self.configured, self.cv, self.settings = True, msg.body["cv"], dict(msg.body)
            if first:  # as the firmware does once its settings are in: the first heartbeat
                self.heartbeat()
            return
        self.on_command(msg, time.perf_counter())

    def on_command(self, msg: Any, at: float) -> None:
        raise NotImplementedError

    def send(self, mtype: str, fields: dict[str, Any]) -> tuple[int, mqtt.MQTTMessageInfo]:
        seq, topic, payload = self.msgr.sign(mtype, fields)
        return seq, self.client.publish(topic, payload, qos=1)

    def heartbeat(self) -> None:
        self.send("heartbeat", {"bat": BATTERY_MV, "rssi": -55, "fw": device.FIRMWARE,
                                "up": int(time.monotonic() - self.up_since), "q": 0, "cv": self.cv})
        hb = self.settings.get("hb")
        if isinstance(hb, int) and hb > 0:
            self.worker.at(time.perf_counter() + hb, self.heartbeat)


class LightButton(LightDevice):
    """Presses a short press (the venue's gesture map says what kind that is) and keeps the feedback.

    The gateway's answer to a press echoes its (ep, seq) (`pep`/`pseq`, docs/protocol.md): a press
    counts as answered when the feedback that echoes it arrives, and a late answer to another press
    or news of the incident (acknowledged, resolved: no press echoed) answers nothing. A feedback
    without an echo (a gateway that does not echo) answers every press waiting, as it does on a
    button of firmware 0.1.

    With `resend_s` set it also does what the firmware's button does with a press the gateway has
    not answered within DELIVER_TIMEOUT_MS: send the same press (same number, same time) again, so
    a press the broker acknowledged and then lost (killed before it handed it on) still arrives.
    The firmware keeps only its last press for that, and gives up after a few tries; a light button
    keeps every unanswered one and sends them again every `resend_s` until answered, so a run's
    ground truth covers every press."""

    resend_s: float | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._mids: dict[int, int] = {}
        self._unanswered: dict[int, tuple[str, bytes]] = {}  # seq -> (topic, payload), oldest first
        self._sent_at = 0.0
        self._check_armed = False

    @property
    def kind(self) -> str:
        gestures = dict(g.split("=", 1) for g in str(self.settings.get("gest", "")).split(",") if "=" in g)
        return gestures.get("short", "complaint")

    @property
    def unanswered(self) -> int:
        return len(self._unanswered)

    def press(self) -> None:
        at = time.perf_counter()
        seq, topic, payload = self.msgr.sign("press", {"kind": self.kind, "bat": BATTERY_MV})
        info = self.client.publish(topic, payload, qos=1)
        self._mids[info.mid] = seq
        self.tally.press((self.id, self.msgr.epoch, seq), at)
        self._unanswered[seq] = (topic, payload)
        if self.resend_s:
            self._sent_at = at
            if not self._check_armed:
                self._check_armed = True
                self.worker.at(at + self.resend_s, self._check)

    def _check(self) -> None:
        """Unanswered for resend_s since they were last sent: send them all again, oldest first."""
        self._check_armed = False
        if not self._unanswered or self.resend_s is None:
            return
        now = time.perf_counter()
        if now - self._sent_at >= self.resend_s:
            for topic, payload in self._unanswered.values():
                self.client.publish(topic, payload, qos=1)
                self.tally.inc("presses_resent")
            self._sent_at = now
        self._check_armed = True
        self.worker.at(self._sent_at + self.resend_s, self._check)

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        if self._mids.pop(mid, None) is not None:
            self.tally.inc("presses_sent" if not reason.is_failure else "presses_refused")

    def on_command(self, msg: Any, at: float) -> None:
        if msg.mtype != "feedback":
            return
        pep = msg.body.get("pep")
        if pep is None:
            answered = list(self._unanswered)
        elif pep == self.msgr.epoch and msg.body["pseq"] in self._unanswered:
            answered = [msg.body["pseq"]]
        else:
            return  # news of the incident, or an answer already had (a press sent again is answered again)
        for seq in answered:
            del self._unanswered[seq]
            self.tally.answer((self.id, self.msgr.epoch, seq), at)


class LightPager(LightDevice):
    """Acknowledges each new alert after a human delay, then (optionally) resolves it; a repeat alert
    for one it knows is only counted, as the pager only buzzes again."""

    ack_after = 1.0
    resolve_after: float | None = 2.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.known: set[int] = set()
        self.cancelled: set[int] = set()

    def on_command(self, msg: Any, at: float) -> None:
        inc = msg.body["inc"]
        if msg.mtype == "alert":
            self.tally.alert(inc, at)
            if inc not in self.known:
                self.known.add(inc)
                self.worker.at(at + self.ack_after * self.worker.rng.uniform(0.5, 1.5), lambda: self.ack(inc))
        elif msg.mtype == "alert_cancel":
            self.cancelled.add(inc)

    def ack(self, inc: int) -> None:
        if inc in self.cancelled:
            return
        self.send("ack", {"inc": inc})
        self.tally.inc("acks_sent")
        if self.resolve_after:
            delay = self.resolve_after * self.worker.rng.uniform(0.5, 1.5)
            self.worker.at(time.perf_counter() + delay, lambda: self.resolve(inc))

    def resolve(self, inc: int) -> None:
        if inc in self.cancelled:
            return
        actions = str(self.settings.get("acts", "apology")).split(",")
        self.send("resolve", {"inc": inc, "action": actions[0]})
        self.tally.inc("resolves_sent")


class Probe:
    """The baseline: a publisher and a subscriber, plain QoS 1, on the same broker and the same
    worker threads as the devices, so they see the same load and the same scheduling noise."""

    def __init__(self, broker: tuple[str, int], topic: str, pub_worker: Worker, sub_worker: Worker, tally: Tally,
                 run_id: str) -> None:
        self.broker, self.topic, self.tally = broker, topic, tally
        self.worker = pub_worker
        self.n = itertools.count(1)
        self.subscribed = threading.Event()
        self.pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"load-{run_id}-probe-pub",
                               protocol=mqtt.MQTTv311)
        self.sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"load-{run_id}-probe-sub",
                               protocol=mqtt.MQTTv311)
        self.sub.on_connect = lambda c, _u, _f, _r, _p: c.subscribe(topic, qos=1)
        self.sub.on_subscribe = lambda *_a: self.subscribed.set()
        self.sub.on_message = self._on_message
        pub_worker.attach(self.pub)
        sub_worker.attach(self.sub)

    def connect(self, client: mqtt.Client) -> None:
        client.connect(*self.broker, keepalive=KEEPALIVE_S)

    def _on_message(self, _c: mqtt.Client, _u: Any, m: mqtt.MQTTMessage) -> None:
        at = time.perf_counter()
        with self.tally.lock:
            sent = self.tally.probe_sent.pop(int(m.payload), None)
            if sent is not None:
                self.tally.probe_rtt.append(at - sent)

    def tick(self, until: float) -> None:
        now = time.perf_counter()
        if now >= until:
            return
        n = next(self.n)
        with self.tally.lock:
            self.tally.probe_sent[n] = now
        self.pub.publish(self.topic, b"%d" % n, qos=1)
        self.worker.at(now + PROBE_EVERY_S, lambda: self.tick(until))


# ---- the run ------------------------------------------------------------------------------------

@dataclass
class Options:
    seconds: float = 60.0
    rate: float = DEFAULT_RATE
    ack_after: float = 1.0  # mean seconds from alert to acknowledgement (uniform, +-50 %)
    resolve_after: float | None = 2.0  # mean seconds from ack to resolve; None: never resolve
    threads: int = 2
    drain_s: float = 30.0  # after the last press: how long to wait for the gateway to catch up
    connect_s: float = 60.0
    seed: int = 1
    resend_s: float | None = None  # a press unanswered this long is sent again (the firmware: 5 s); None: never


@dataclass
class Figures:
    n: int = 0
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None


def figures(samples: Iterable[float]) -> Figures:
    """Nearest-rank percentiles, in milliseconds."""
    s = sorted(samples)
    if not s:
        return Figures()

    def rank(p: float) -> float:
        return round(s[min(len(s) - 1, max(0, math.ceil(p / 100 * len(s)) - 1))] * 1000, 3)

    return Figures(len(s), rank(50), rank(90), rank(99), round(s[-1] * 1000, 3))


@dataclass
class Report:
    buttons: int
    pagers: int
    seconds: float
    rate: float
    presses_published: int = 0
    presses_sent: int = 0  # acknowledged by the broker (PUBACK)
    presses_recorded: int | None = None  # rows in the store's presses table; None without a store
    lost: int | None = None
    incidents: int | None = None
    joined: int | None = None
    answered: int = 0  # presses whose own answer (the feedback echoing them) reached their button
    alerted: int = 0  # presses whose incident reached a pager after them
    pages_delivered: int = 0
    acks_sent: int = 0
    resolves_sent: int = 0
    latency: Figures = field(default_factory=Figures)  # press publish -> first alert on a pager
    feedback_latency: Figures = field(default_factory=Figures)  # press publish -> its answer on the button
    baseline: Figures = field(default_factory=Figures)  # publish -> subscriber on the same broker
    ratio_p50: float | None = None
    ratio_p99: float | None = None
    wall_s: float = 0.0  # the measured phase: first press to the end of the drain
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds in the measured phase
    device_counts: dict[str, int] = field(default_factory=dict)
    gateway_counters: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.lost in (0, None) and self.answered == self.presses_sent == self.presses_published


def _cpu_ticks(path: str) -> float:
    """utime + stime of a process or thread from /proc, in seconds (0 where /proc is not there)."""
    try:
        with open(path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_snapshot(broker_pid: int | None) -> dict[str, float]:
    """CPU seconds so far: the whole process, its gateway threads, its load threads, mosquitto."""
    out = {"process": sum(resource.getrusage(resource.RUSAGE_SELF)[:2]), "gateway_threads": 0.0,
           "load_threads": 0.0}
    for t in threading.enumerate():
        if t.native_id is None:
            continue
        group = ("gateway_threads" if t.name.startswith(("paho-mqtt-client-rb-gateway", "escalation"))
                 else "load_threads" if t.name.startswith("load-") else None)
        if group:
            out[group] += _cpu_ticks(f"/proc/self/task/{t.native_id}/stat")
    if broker_pid is not None:
        out["mosquitto"] = _cpu_ticks(f"/proc/{broker_pid}/stat")
    return out


def raise_fd_limit(needed: int) -> None:
    """Each device is a socket here and another in mosquitto (which inherits this limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def recorded_presses(db_path: str, epoch: int, buttons: set[str]) -> dict[tuple[str, int, int], int]:
    """(button, ep, seq) -> incident id of this run's presses, as the gateway's store recorded them."""
    store = Store(db_path)
    try:
        log = store.press_log()
    finally:
        store.close()
    return {(d, ep, seq): inc for d, ep, seq, inc in log if ep == epoch and d in buttons}


def _connect_all(devices: list[LightDevice]) -> None:
    for d in devices:
        d.connect()


class LoadRun:
    def __init__(self, venue: Venue, broker_url: str, options: Options, db_path: str | None = None,
                 gateway: Gateway | None = None, broker_pid: int | None = None) -> None:
        self.venue, self.opts, self.db_path = venue, options, db_path
        self.gateway, self.broker_pid = gateway, broker_pid
        broker = parse_broker_url(broker_url)
        self.run_id = secrets.token_hex(3)
        self.epoch = int(time.time())  # as a board with its clock set: ahead of any earlier run's epoch
        self.tally = Tally()
        self.workers = [Worker(f"load-{i}", options.seed + i) for i in range(max(1, options.threads))]
        self.buttons: list[LightButton] = []
        self.pagers: list[LightPager] = []
        on_table = set(venue.table_by_button)
        for i, dev in enumerate(sorted(venue.devices.values(), key=lambda d: d.id)):
            w = self.workers[i % len(self.workers)]
            if dev.role == BUTTON and dev.id in on_table:
                b = LightButton(venue, dev.id, broker, self.epoch, w, self.tally, self.run_id)
                b.resend_s = options.resend_s
                self.buttons.append(b)
            elif dev.role == PAGER:
                p = LightPager(venue, dev.id, broker, self.epoch, w, self.tally, self.run_id)
                p.ack_after, p.resolve_after = options.ack_after, options.resolve_after
                self.pagers.append(p)
        self.probe = Probe(broker, f"rbload/{venue.site}/{self.run_id}/probe", self.workers[0], self.workers[-1],
                           self.tally, self.run_id)
        self.during: Callable[[LoadRun], None] | None = None

    @property
    def devices(self) -> list[LightDevice]:
        return [*self.buttons, *self.pagers]

    def run(self, out: Callable[[str], None] = print, during: Callable[[LoadRun], None] | None = None) -> Report:
        """Connect every device, press for `seconds`, wait for everything to arrive; -> the figures.
        `during(run)`, if given, is called once the presses have started (fault injection: kill the
        broker, the gateway, fill the disk ...); the presses go on for `seconds` whatever it does."""
        self.during = during
        raise_fd_limit(len(self.venue.devices) * 2 + 256)
        for w in self.workers:
            w.start()
        try:
            self._connect(out)
            return self._measure(out)
        finally:
            for d in self.devices:
                d.closing = True
            for w in self.workers:
                w.call(w.disconnect_all)
            for w in self.workers:
                w.stop()

    def _connect(self, out: Callable[[str], None]) -> None:
        t0 = time.monotonic()
        for w in self.workers:
            mine = [d for d in self.devices if d.worker is w]
            w.call(partial(_connect_all, mine))
        self.workers[0].call(lambda: self.probe.connect(self.probe.pub))
        self.workers[-1].call(lambda: self.probe.connect(self.probe.sub))
        deadline = t0 + self.opts.connect_s
        while sum(d.configured for d in self.devices) < len(self.devices) or not self.probe.subscribed.is_set():
            if time.monotonic() > deadline:
                missing = [d.id for d in self.devices if not d.configured]
                raise ConnectionError(f"{len(missing)} devices had no config from the gateway within "
                                      f"{self.opts.connect_s:.0f} s (first: {', '.join(missing[:5])})")
            time.sleep(0.05)
        out(f"{len(self.buttons)} buttons and {len(self.pagers)} pagers connected and configured "
            f"in {time.monotonic() - t0:.1f} s")

    def _first_press(self, w: Worker, buttons: list[LightButton], rate: float, until: float) -> None:
        w.at(time.perf_counter() + w.rng.expovariate(rate), partial(self._press_loop, w, buttons, rate, until))

    def _press_loop(self, w: Worker, buttons: list[LightButton], rate: float, until: float) -> None:
        """A Poisson process of presses over this worker's buttons: the workers' processes add up to
        one of the total rate."""
        now = time.perf_counter()
        if now >= until:
            return
        w.rng.choice(buttons).press()
        w.at(now + w.rng.expovariate(rate), partial(self._press_loop, w, buttons, rate, until))

    def _measure(self, out: Callable[[str], None]) -> Report:
        o = self.opts
        cpu0 = cpu_snapshot(self.broker_pid)
        start = time.perf_counter()
        until = start + o.seconds
        for w in self.workers:
            mine = [b for b in self.buttons if b.worker is w]
            if mine and o.rate > 0:
                rate = o.rate * len(mine) / len(self.buttons)
                w.call(partial(self._first_press, w, mine, rate, until))
        self.workers[0].call(lambda: self.probe.tick(until))
        out(f"pressing for {o.seconds:.0f} s at {o.rate:g} presses/s in total ...")
        if self.during is not None:
            self.during(self)
        time.sleep(max(0.0, until - time.perf_counter()))
        report = self._drain(out)
        report.wall_s = round(time.perf_counter() - start, 3)
        cpu1 = cpu_snapshot(self.broker_pid)
        report.cpu = {k: round(cpu1[k] - cpu0.get(k, 0.0), 2) for k in cpu1}
        return report

    def _drain(self, out: Callable[[str], None]) -> Report:
        """Wait for every PUBACK, for the store to hold every press, for every answer and alert, or
        for the drain time to run out; then count."""
        deadline = time.monotonic() + self.opts.drain_s
        buttons = {b.id for b in self.buttons}
        report = Report(len(self.buttons), len(self.pagers), self.opts.seconds, self.opts.rate)
        while True:
            recorded = recorded_presses(self.db_path, self.epoch, buttons) if self.db_path else None
            self._count(report, recorded)
            done = self._drained(report, recorded)
            if done or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if not done:
            out(f"the drain ran out after {self.opts.drain_s:.0f} s: the figures below are what had arrived")
        return report

    def _drained(self, r: Report, recorded: dict[tuple[str, int, int], int] | None) -> bool:
        """Everything has arrived: every press acknowledged by the broker, recorded, answered on its
        button and alerted on a pager."""
        sent = r.presses_sent
        return (r.presses_published == sent and r.answered == sent and r.alerted == sent
                and (recorded is None or len(recorded) >= sent))

    def _count(self, r: Report, recorded: dict[tuple[str, int, int], int] | None) -> None:
        t = self.tally
        with t.lock:
            pressed = dict(t.pressed)
            answered = dict(t.answered)
            alerts = {k: sorted(v) for k, v in t.alerts.items()}
            counts = dict(t.counts)
            rtt = list(t.probe_rtt)
        r.presses_published = counts.get("presses_published", 0)
        r.presses_sent = counts.get("presses_sent", 0)
        r.pages_delivered = counts.get("pages_delivered", 0)
        r.acks_sent, r.resolves_sent = counts.get("acks_sent", 0), counts.get("resolves_sent", 0)
        r.device_counts = {k: v for k, v in counts.items() if k not in asdict(r)}
        r.baseline = figures(rtt)
        if self.gateway is not None:
            r.gateway_counters = self.gateway.counters.snapshot()
        to_answer = [answered[key] - at for key, at in pressed.items() if key in answered]
        r.answered, r.feedback_latency = len(to_answer), figures(to_answer)
        if recorded is None:
            return
        r.presses_recorded = len(recorded)
        r.lost = r.presses_sent - len(set(recorded) & set(pressed))
        r.incidents = len(set(recorded.values()))
        r.joined = r.presses_recorded - r.incidents
        to_alert = []
        for key, at in pressed.items():
            inc = recorded.get(key)
            if inc is None:
                continue
            times = alerts.get(inc, [])
            i = bisect_left(times, at)
            if i < len(times):
                to_alert.append(times[i] - at)
        r.alerted, r.latency = len(to_alert), figures(to_alert)
        if r.latency.p50_ms and r.baseline.p50_ms:
            r.ratio_p50 = round(r.latency.p50_ms / r.baseline.p50_ms, 1)
        if r.latency.p99_ms and r.baseline.p99_ms:
            r.ratio_p99 = round(r.latency.p99_ms / r.baseline.p99_ms, 1)


def run_self_contained(venue: Venue, options: Options, workdir: Path | None = None,
                       out: Callable[[str], None] = print) -> Report:
    """A private mosquitto (the project's settings) and a Gateway on a SQLite file in this process."""
    raise_fd_limit(len(venue.devices) * 2 + 256)
    with tempfile.TemporaryDirectory(prefix="rb-load-") as tmp:
        base = workdir or Path(tmp)
        with Mosquitto(base / "broker") as broker:
            store = Store(base / "incidents.db")
            gw = Gateway(venue, store, broker.url).start()
            try:
                pid = broker.proc.pid if broker.proc else None
                return LoadRun(venue, broker.url, options, store.path, gw, pid).run(out)
            finally:
                gw.stop()
                store.close()


# ---- the command --------------------------------------------------------------------------------

def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def format_report(r: Report) -> str:
    rows = [
        ("buttons / pagers", f"{r.buttons} / {r.pagers}"),
        ("presses sent (PUBACK)", f"{r.presses_sent} of {r.presses_published} published"),
        ("presses recorded (store)", "-" if r.presses_recorded is None else str(r.presses_recorded)),
        ("incidents / joined", f"{r.incidents if r.incidents is not None else '-'} / "
                               f"{r.joined if r.joined is not None else '-'}"),
        ("LOST", "-" if r.lost is None else str(r.lost)),
        ("answered with feedback", str(r.answered)),
        ("pages delivered (alerts)", f"{r.pages_delivered} ({r.alerted} presses alerted)"),
        ("acks / resolves sent", f"{r.acks_sent} / {r.resolves_sent}"),
    ]
    lines = [f"{k:<28}{v}" for k, v in rows]
    lines.append(f"{'latency (ms)':<28}{'n':>7}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}")
    for name, f in (("press -> pager alert", r.latency), ("press -> button feedback", r.feedback_latency),
                    ("broker round trip", r.baseline)):
        lines.append(f"  {name:<26}{f.n:>7}{_ms(f.p50_ms):>9}{_ms(f.p90_ms):>9}{_ms(f.p99_ms):>9}{_ms(f.max_ms):>9}")
    lines.append(f"{'alert / baseline':<28}p50 x{r.ratio_p50 or '-'}  p99 x{r.ratio_p99 or '-'}")
    drops = {k: v for k, v in r.gateway_counters.items() if k.startswith("dropped.")}
    if r.gateway_counters:
        lines.append(f"{'gateway drops':<28}{drops or 'none'}")
    if r.device_counts:
        lines.append(f"{'device side':<28}{r.device_counts}")
    if r.cpu and r.wall_s:
        cpu = ", ".join(f"{k} {v:.1f} s ({100 * v / r.wall_s:.0f} %)" for k, v in r.cpu.items())
        lines.append(f"{'CPU over ' + format(r.wall_s, '.0f') + ' s':<28}{cpu}")
    return "\n".join(lines)


def _pair(text: str) -> tuple[int, int]:
    try:
        b, p = (int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected BUTTONS,PAGERS such as 1000,100, got {text!r}") from None
    if b < 1 or p < 2:
        raise argparse.ArgumentTypeError("at least 1 button and 2 pagers")
    return b, p


def cmd_load(a: argparse.Namespace) -> int:
    if a.synthetic:
        doc = synthetic_doc(*a.synthetic)
        if a.write_venue:
            a.write_venue.write_text(venue_toml(doc))
            print(f"wrote {a.write_venue}: run `redbutton gateway --venue {a.write_venue}`, then "
                  f"`redbutton load --venue {a.write_venue} --broker URL --db GATEWAY_DB`")
            return 0
        venue = parse_venue(doc, "<synthetic>")
    else:
        venue = load_venue(a.venue)
    if not a.verbose:  # a line per incident (and per zone alert) would cost more than the incident
        logging.getLogger("redbutton").setLevel(logging.ERROR)
    opts = Options(seconds=a.seconds, rate=a.rate, ack_after=a.ack_after, resolve_after=a.resolve_after or None,
                   threads=a.threads, drain_s=a.drain)
    sigterm_as_interrupt()
    report = run_self_contained(venue, opts) if a.self_contained else LoadRun(venue, a.broker, opts, a.db).run()
    print(format_report(report))
    if a.json:
        a.json.write_text(json.dumps(asdict(report), indent=2) + "\n")
    return 0 if report.ok else 1


def register(sub: Any) -> None:
    p = sub.add_parser("load", help="load test: many light buttons and pagers against a broker and gateway")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--venue", type=Path, help="a venue file: one light device per button on a table and pager")
    src.add_argument("--synthetic", type=_pair, metavar="B,P", help="a venue built in memory: B tables, P staff")
    p.add_argument("--broker", default=DEFAULT_BROKER, help=f"broker URL (default {DEFAULT_BROKER})")
    p.add_argument("--self-contained", action="store_true",
                   help="start a private mosquitto and a gateway (SQLite in a temporary folder) in this process")
    p.add_argument("--db", help="the SQLite file of the gateway at --broker, read-only: counts recorded presses")
    p.add_argument("--seconds", type=float, default=60.0, help="how long the buttons press (default 60)")
    p.add_argument("--rate", type=float, default=DEFAULT_RATE,
                   help=f"presses per second, all buttons together, Poisson (default {DEFAULT_RATE:g})")
    p.add_argument("--ack-after", type=float, default=1.0, metavar="S", help="mean seconds to acknowledge")
    p.add_argument("--resolve-after", type=float, default=2.0, metavar="S",
                   help="mean seconds from ack to resolve; 0: never resolve (default 2)")
    p.add_argument("--threads", type=int, default=2, help="selector threads driving the clients (default 2)")
    p.add_argument("--drain", type=float, default=30.0, metavar="S",
                   help="after the last press, how long to wait for everything to arrive (default 30)")
    p.add_argument("--json", type=Path, metavar="FILE", help="write the figures as JSON")
    p.add_argument("--write-venue", type=Path, metavar="FILE",
                   help="with --synthetic: write the venue file for a separate gateway and stop")
    p.set_defaults(func=cmd_load)
