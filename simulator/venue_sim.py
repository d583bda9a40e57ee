"""A simulated venue: one virtual device per button and pager in the venue file.

Devices named in `espnow` talk ESP-NOW to a virtual base station instead of MQTT over WiFi; the
venue then also runs the gateway's serial bridge on the base station's pseudo-terminal, so their
messages reach the broker the way a real installation's do."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Collection
from pathlib import Path

from gateway.serial_bridge import SerialBridge
from gateway.venue import BUTTON, Venue

from .basestation import VirtualBaseStation
from .devices import VirtualButton, VirtualDevice, VirtualPager, device_config


class SimulatedVenue:
    def __init__(self, venue: Venue, broker_url: str, state_dir: Path | None = None, echo: bool = False,
                 espnow: Collection[str] = ()) -> None:
        self.venue = venue
        state = state_dir or Path(tempfile.mkdtemp(prefix="rb-sim-"))
        self.buttons: dict[str, VirtualButton] = {}
        self.pagers: dict[str, VirtualPager] = {}
        unknown = set(espnow) - set(venue.devices)
        if unknown:
            raise ValueError(f"not devices of {venue.site}: {', '.join(sorted(unknown))}")
        self.espnow = set(espnow)
        self.base: VirtualBaseStation | None = None
        self.bridge: SerialBridge | None = None
        if espnow:
            self.base = VirtualBaseStation(state_dir=state / "base", echo=echo)
            self.bridge = SerialBridge(venue, broker_url, self.base.port, reopen_delays=(0.05, 0.1, 0.2, 0.5))
        for dev in venue.devices.values():
            cfg = device_config(venue, dev.id, broker_url)
            if self.base is not None and dev.id in espnow:
                cfg["link"] = "espnow"
                cfg["espnow"] = {"base_mac": self.base.mac.hex(), "channel": self.base.channel}
            if dev.role == BUTTON:
                self.buttons[dev.id] = VirtualButton(cfg, state, echo)
            else:
                self.pagers[dev.id] = VirtualPager(cfg, state, echo)

    @property
    def devices(self) -> list[VirtualDevice]:
        return [*self.buttons.values(), *self.pagers.values()]

    def button_at(self, table_id: str) -> VirtualButton:
        return self.buttons[self.venue.tables[table_id].button]

    def pager_of(self, staff_id: str) -> VirtualPager:
        return self.pagers[self.venue.staff[staff_id].pager]

    def start(self, timeout: float = 10.0) -> SimulatedVenue:
        if self.base is not None and self.bridge is not None:
            self.base.start(timeout)
            self.bridge.start(timeout)
            if not self.bridge.wait_open(timeout):
                raise ConnectionError(f"the serial bridge did not open {self.base.port}")
        for d in self.devices:
            d.start()
        for d in self.devices:
            if not d.wait_connected(timeout):
                raise ConnectionError(f"simulated {d.id} did not connect to the broker")
        if self.bridge is not None:
            deadline = time.monotonic() + timeout
            while not self.espnow <= set(self.bridge.macs):  # heard: commands can reach them
                if time.monotonic() > deadline:
                    missing = ", ".join(sorted(self.espnow - set(self.bridge.macs)))
                    raise ConnectionError(f"the serial bridge never heard {missing}")
                time.sleep(0.005)
        return self

    def stop(self) -> None:
        for d in self.devices:
            d.stop()
        if self.bridge is not None:
            self.bridge.stop()
        if self.base is not None:
            self.base.stop()
