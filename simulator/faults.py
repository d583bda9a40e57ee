"""Fault injection for scenarios: what can go wrong in a venue, done to the real parts.

Device faults go through the virtual boards' hooks (radio out, latency, loss, clock skew, flat cell,
reboot, death). Broker faults stop and start the real mosquitto on its port (persistence on, as the
venue runs it), or kill it (SIGKILL: what it had not saved to its persistence file is gone). The
gateway runs as a real `redbutton gateway` process, so a crash is a real SIGKILL: whatever it had
not committed to SQLite is gone, as it would be on the venue's host. A full disk is a real one for
that process: its file-size limit (RLIMIT_FSIZE) is lowered from outside, so SQLite's next write
fails with EFBIG (CPython ignores SIGXFSZ) as it would with ENOSPC. A flooding device is a rogue
client with a real device's key, publishing signed presses and garbage as fast as it can."""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

import rbproto
from gateway.broker import Mosquitto
from gateway.venue import Venue

from .devices import VirtualButton, VirtualDevice
from .venue_sim import SimulatedVenue

READY = "up (command epoch"  # the gateway's log line once it listens and its timers are restored
_UP = re.compile(r"up \(command epoch (\d+), (\d+) timers restored\)")
_DASHBOARD = re.compile(r"dashboard on (http://\S+)")
FULL_DISK_BYTES = 1  # RLIMIT_FSIZE while "full": no file of the process may grow past its first byte


class GatewayProcess:
    """`redbutton --log-format json gateway ...` as a process of its own, its log kept line by line
    (`lines`) and as parsed records (`records`; a line that is not JSON is kept as {"msg": line} and
    counted in `not_json`). Extra arguments replace the default `--no-watch`."""

    def __init__(self, venue: Path, broker_url: str, db: Path, *args: str) -> None:
        self.cmd = [sys.executable, "-m", "gateway.cli", "--log-format", "json", "gateway", "--venue", str(venue),
                    "--broker", broker_url, "--db", str(db), "--http", "127.0.0.1:0",  # any free port
                    *(args or ("--no-watch",))]
        self.lines: list[str] = []
        self.records: list[dict[str, Any]] = []
        self.not_json = 0
        self.proc: subprocess.Popen[str] | None = None
        self.reader: threading.Thread | None = None
        self._ready = threading.Event()
        self._fsize: int | None = None  # the file-size limit before disk_full()

    def start(self, timeout: float = 15.0) -> None:
        self._ready.clear()
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     cwd=Path(__file__).resolve().parents[1])
        self.reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self.reader.start()
        if not self._ready.wait(timeout):
            tail = "".join(self.lines[-5:])
            raise RuntimeError(f"the gateway did not come up within {timeout} s: {tail}")

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            try:
                record = json.loads(line)
            except ValueError:
                record = {"msg": line}
                self.not_json += 1
            self.lines.append(line)
            self.records.append(record)
            if READY in str(record.get("msg", "")):
                self._ready.set()

    def kill(self) -> None:
        """kill -9: no shutdown, no last goodbye but the broker's last will."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def _last(self, pattern: re.Pattern[str]) -> re.Match[str] | None:
        for record in reversed(self.records):
            found = pattern.search(str(record.get("msg", "")))
            if found:
                return found
        return None

    @property
    def epoch(self) -> int:
        """The command epoch of the latest start (its READY line)."""
        found = self._last(_UP)
        if found is None:
            raise RuntimeError("the gateway has not said it is up")
        return int(found.group(1))

    @property
    def restored(self) -> int:
        """How many timers the latest start restored from the store."""
        found = self._last(_UP)
        if found is None:
            raise RuntimeError("the gateway has not said it is up")
        return int(found.group(2))

    def http_url(self, timeout: float = 10.0) -> str:
        """The dashboard's address (--http 127.0.0.1:0 picks a free port, the log names it)."""
        deadline = time.monotonic() + timeout
        while (found := self._last(_DASHBOARD)) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the gateway named no dashboard address within {timeout} s")
            time.sleep(0.02)
        return found.group(1)

    def metrics(self) -> dict[str, float]:
        """The gateway's /metrics as {name{labels}: value}, comments left out."""
        with urllib.request.urlopen(self.http_url() + "/metrics", timeout=10) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def disk_full(self) -> None:
        """From now on every write that would grow one of the process's files fails (EFBIG), as on a
        disk with no room left; what is already on disk stays readable."""
        assert self.proc is not None
        soft, hard = resource.prlimit(self.proc.pid, resource.RLIMIT_FSIZE)
        if self._fsize is None:
            self._fsize = soft
        resource.prlimit(self.proc.pid, resource.RLIMIT_FSIZE, (FULL_DISK_BYTES, hard))

    def disk_room(self) -> None:
        """The disk has room again: the file-size limit back to what it was."""
        assert self.proc is not None
        _soft, hard = resource.prlimit(self.proc.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(self.proc.pid, resource.RLIMIT_FSIZE, (hard if self._fsize is None else self._fsize, hard))
        self._fsize = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.reader is not None:
            self.reader.join(5)


def kill_broker(broker: Mosquitto) -> None:
    """SIGKILL mosquitto: no persistence file written, so its sessions, subscriptions, retained
    messages and queues since it last saved are gone; start() brings it back on the same port."""
    if broker.proc is not None and broker.proc.poll() is None:
        broker.proc.kill()
        broker.proc.wait(10)
    broker.stop()  # reaps what is left of the process


class Flooder:
    """A rogue client holding a real device's key (a stolen or broken button): publishes signed
    presses as fast as paho takes them, and with them garbage: a random payload, a body changed
    after signing, an oversized one, and a replay of a press already sent."""

    def __init__(self, venue: Venue, device: str, broker: tuple[str, int], epoch: int) -> None:
        self.venue, self.device, self.epoch = venue, device, epoch
        self.key = venue.devices[device].key
        self.published = 0
        self.garbage = 0
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"rogue-{device}-{os.getpid()}",
                                  protocol=mqtt.MQTTv311)
        self.client.max_inflight_messages_set(0)  # no limit: as fast as the broker takes them
        self.client.connect(*broker)
        self.client.loop_start()

    def flood(self, presses: int, garbage_every: int = 0) -> list[mqtt.MQTTMessageInfo]:
        """Publish `presses` signed presses (seq 1..n of its epoch) and, every `garbage_every`
        presses, one of each kind of garbage; -> the presses' publish infos (wait on them for
        the broker's PUBACK)."""
        infos = []
        for seq in range(1, presses + 1):
            body: dict[str, int | str] = {"ep": self.epoch, "seq": seq, "ts": int(time.time()), "kind": "complaint",
                                          "bat": 3900}
            topic, payload = rbproto.encode(self.key, self.venue.site, self.device, "press", body)
            infos.append(self.client.publish(topic, payload, qos=1))
            if garbage_every and seq % garbage_every == 0:
                for junk in (os.urandom(64), payload.replace(b'"complaint"', b'"compliment"'),
                             b"{" + b" " * (rbproto.MAX_PAYLOAD * 4) + b"}", payload):
                    self.client.publish(topic, junk, qos=1)
                    self.garbage += 1
        self.published += presses
        return infos

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Plant:
    """What a scenario can break: the simulated venue, and (self-contained) the broker and gateway."""

    def __init__(self, sim: SimulatedVenue, broker: Mosquitto | None, gateway: GatewayProcess | None) -> None:
        self.sim = sim
        self.broker = broker
        self.gateway = gateway

    def device(self, args: dict[str, Any]) -> VirtualDevice:
        """A device named by `device`, by `table` (its button) or by `staff` (their pager)."""
        if "device" in args:
            found = {d.id: d for d in self.sim.devices}.get(args["device"])
            if found is None:
                raise KeyError(f"no device {args['device']!r} in the venue")
            return found
        if "table" in args:
            return self.sim.button_at(args["table"])
        if "staff" in args:
            return self.sim.pager_of(args["staff"])
        raise KeyError("name a device, table or staff")

    def _need_broker(self) -> Mosquitto:
        if self.broker is None:
            raise RuntimeError("broker faults need a self-contained scenario (its own broker)")
        return self.broker

    def _need_gateway(self) -> GatewayProcess:
        if self.gateway is None:
            raise RuntimeError("gateway faults need a self-contained scenario (its own gateway)")
        return self.gateway

    def apply(self, action: str, args: dict[str, Any]) -> str:
        """Inject one fault; -> what was done, for the run's log."""
        fault = FAULTS.get(action)
        if fault is None:
            raise KeyError(f"unknown fault {action!r}")
        return fault(self, args)


def _link(p: Plant, a: dict[str, Any]) -> str:
    d = p.device(a)
    d.set_link(bool(a["up"]))
    return f"{d.id} radio {'back' if a['up'] else 'out'}"


def _delay(p: Plant, a: dict[str, Any]) -> str:
    d = p.device(a)
    d.set_delay(int(a["ms"]))
    return f"{d.id} link delay {a['ms']} ms each way"


def _loss(p: Plant, a: dict[str, Any]) -> str:
    d = p.device(a)
    d.set_loss(float(a["share"]))
    return f"{d.id} loses {float(a['share']):.0%} of its publish attempts"


def _skew(p: Plant, a: dict[str, Any]) -> str:
    d = p.device(a)
    d.set_skew(int(a["s"]))
    return f"{d.id} wall clock off by {a['s']} s"


def _battery(p: Plant, a: dict[str, Any]) -> str:
    d = p.device(a)
    if not isinstance(d, VirtualButton):
        raise TypeError(f"{d.id}: only a button's cell can be set")
    d.set_battery(int(a["mv"]))
    return f"{d.id} cell at {a['mv']} mV"


def _reboot(p: Plant, a: dict[str, Any]) -> str:
    d = p.device(a)
    d.reboot()
    return f"{d.id} rebooted (boot {d.boots})"


def _power_off(p: Plant, a: dict[str, Any]) -> str:
    d = p.device(a)
    d.power_off()
    return f"{d.id} died"


def _broker_stop(p: Plant, _a: dict[str, Any]) -> str:
    p._need_broker().stop()
    return "broker stopped"


def _broker_kill(p: Plant, _a: dict[str, Any]) -> str:
    kill_broker(p._need_broker())
    return "broker killed (SIGKILL)"


def _broker_start(p: Plant, _a: dict[str, Any]) -> str:
    p._need_broker().start()
    return "broker started on the same port"


def _gateway_kill(p: Plant, _a: dict[str, Any]) -> str:
    p._need_gateway().kill()
    return "gateway killed (SIGKILL)"


def _gateway_start(p: Plant, _a: dict[str, Any]) -> str:
    t0 = time.monotonic()
    p._need_gateway().start()
    return f"gateway restarted, up in {time.monotonic() - t0:.2f} s"


def _disk_full(p: Plant, _a: dict[str, Any]) -> str:
    p._need_gateway().disk_full()
    return "the gateway's disk is full"


def _disk_room(p: Plant, _a: dict[str, Any]) -> str:
    p._need_gateway().disk_room()
    return "the gateway's disk has room again"


FAULTS: dict[str, Callable[[Plant, dict[str, Any]], str]] = {
    "link": _link, "delay": _delay, "loss": _loss, "skew": _skew, "battery": _battery, "reboot": _reboot,
    "power_off": _power_off, "broker_stop": _broker_stop, "broker_kill": _broker_kill, "broker_start": _broker_start,
    "gateway_kill": _gateway_kill, "gateway_start": _gateway_start, "disk_full": _disk_full,
    "disk_room": _disk_room,
}
