"""Fault injection for scenarios: what can go wrong in a venue, done to the real parts.

Device faults go through the virtual boards' hooks (radio out, latency, loss, clock skew, flat cell,
reboot, death). Broker faults stop and start the real mosquitto on its port (persistence on, as the
venue runs it). The gateway runs as a real `redbutton gateway` process, so a crash is a real
SIGKILL: whatever it had not committed to SQLite is gone, as it would be on the venue's host."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.broker import Mosquitto

from .devices import VirtualButton, VirtualDevice
from .venue_sim import SimulatedVenue

READY = "up (command epoch"  # the gateway's log line once it listens and its timers are restored


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

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.reader is not None:
            self.reader.join(5)


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


FAULTS: dict[str, Callable[[Plant, dict[str, Any]], str]] = {
    "link": _link, "delay": _delay, "loss": _loss, "skew": _skew, "battery": _battery, "reboot": _reboot,
    "power_off": _power_off, "broker_stop": _broker_stop, "broker_start": _broker_start,
    "gateway_kill": _gateway_kill, "gateway_start": _gateway_start,
}
