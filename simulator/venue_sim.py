"""A simulated venue: one virtual device per button and pager in the venue file."""

from __future__ import annotations

import tempfile
from pathlib import Path

from gateway.venue import BUTTON, Venue

from .devices import VirtualButton, VirtualDevice, VirtualPager, device_config


class SimulatedVenue:
    def __init__(self, venue: Venue, broker_url: str, state_dir: Path | None = None, echo: bool = False) -> None:
        self.venue = venue
        state = state_dir or Path(tempfile.mkdtemp(prefix="rb-sim-"))
        self.buttons: dict[str, VirtualButton] = {}
        self.pagers: dict[str, VirtualPager] = {}
        for dev in venue.devices.values():
            cfg = device_config(venue, dev.id, broker_url)
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
        for d in self.devices:
            d.start()
        for d in self.devices:
            if not d.wait_connected(timeout):
                raise ConnectionError(f"simulated {d.id} did not connect to the broker")
        return self

    def stop(self) -> None:
        for d in self.devices:
            d.stop()
