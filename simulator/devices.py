"""Virtual devices: the firmware's own board wiring and apps, on host shims, each on its own thread.

A VirtualButton is pressed by driving its button pin, as a finger would; a VirtualPager is read
from its OLED shim and vibration motor pin. Every firmware log line is kept with its time, so a
test or the demo can wait for a marker such as `ALERT inc=1 shown`."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

from gateway.venue import Venue

from . import shims

shims.install()

import board  # noqa: E402  (firmware modules: importable only once the shims are installed)
import button_app  # noqa: E402
import clock  # noqa: E402
import device  # noqa: E402
import pager_app  # noqa: E402

from .hostlink import HostLink  # noqa: E402

LOOP_MS = 2  # the board loops every 10 ms; the simulator is quicker so latency figures stay honest


def device_config(venue: Venue, device_id: str, broker_url: str) -> dict[str, Any]:
    """The config.json a provisioned device would carry, built from the venue file."""
    return {"site": venue.site, "device": device_id, "key": venue.devices[device_id].key.hex(),
            "role": venue.devices[device_id].role, "broker_url": broker_url}


class VirtualDevice:
    def __init__(self, cfg: dict[str, Any], state_dir: Path, echo: bool = False) -> None:
        self.cfg = cfg
        self.id: str = cfg["device"]
        self.echo = echo
        self.clock = clock.SystemClock()
        state_dir.mkdir(parents=True, exist_ok=True)
        self.epoch: int = device.next_epoch(str(state_dir / f"{self.id}.epoch"), self.clock.epoch_s())
        self.msgr = device.Messenger(cfg, self.epoch, self.clock, None, log=self.log)
        self.link = HostLink(cfg, cfg["broker_url"], self.msgr.status)
        self.msgr.link = self.link
        self.lines: list[tuple[float, str]] = []
        self._cv = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.app: Any = None
        self.hw: Any = None

    def log(self, line: str) -> None:
        with self._cv:
            self.lines.append((time.time(), line))
            self._cv.notify_all()
        if self.echo:
            print(f"  [{self.id}] {line}", flush=True)

    def start(self) -> VirtualDevice:
        self.app.start()
        self._thread = threading.Thread(target=self._run, name=self.id, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.app.tick()
            self.clock.sleep_ms(LOOP_MS)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        self.link.stop()

    def press(self, hold_ms: int = 120) -> None:
        """A finger on the device's button for hold_ms (1,500 ms or more is a long press)."""
        self.hw.button_pin.sim_level(0)
        time.sleep(hold_ms / 1000)
        self.hw.button_pin.sim_level(1)

    def wait_connected(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while not self.link.is_up():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def wait_for(self, pattern: str, timeout: float = 10.0) -> tuple[float, str] | None:
        """The first log line matching `pattern` (a regex), waiting up to `timeout` seconds."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cv:
            seen = 0
            while True:
                for t, line in self.lines[seen:]:
                    if rx.search(line):
                        return t, line
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cv.wait(left)


class VirtualButton(VirtualDevice):
    def __init__(self, cfg: dict[str, Any], state_dir: Path, echo: bool = False) -> None:
        super().__init__(cfg, state_dir, echo)
        self.hw = board.ButtonBoard()
        self.app = button_app.ButtonApp(self.msgr, self.clock, self.hw.pressed, self.hw.led, self.hw.battery,
                                        log=self.log, gestures=cfg.get("gestures"))

    @property
    def state(self) -> str:
        return str(self.app.state)

    @property
    def colour(self) -> tuple[int, int, int]:
        return tuple(self.hw._np.shown[0])


class VirtualPager(VirtualDevice):
    def __init__(self, cfg: dict[str, Any], state_dir: Path, echo: bool = False) -> None:
        super().__init__(cfg, state_dir, echo)
        self.hw = board.PagerBoard()
        self.app = pager_app.PagerApp(self.msgr, self.clock, self.hw.pressed, self.hw.motor, self.hw.display,
                                      self.hw.battery, log=self.log)

    @property
    def screen(self) -> list[str]:
        return list(self.hw.display.oled.lines)

    @property
    def buzzing(self) -> bool:
        return bool(self.hw._motor.level)
