"""`network` for the simulator: a WLAN that is always joined (the host's loopback is the venue WiFi).
Link faults are injected at the MQTT link instead, where the firmware sees them the same way."""

from __future__ import annotations

from typing import Any

STA_IF = 0
AP_IF = 1


class WLAN:
    def __init__(self, interface: int = STA_IF) -> None:
        self.interface = interface
        self._active = False
        self.sim_rssi = -58

    def active(self, on: bool | None = None) -> bool:
        if on is not None:
            self._active = on
        return self._active

    def connect(self, *_args: Any, **_kw: Any) -> None:
        self._active = True

    def isconnected(self) -> bool:
        return True

    def ifconfig(self, config: Any = None) -> tuple[str, str, str, str]:
        return ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")

    def status(self, param: str | None = None) -> int:
        return self.sim_rssi if param == "rssi" else 1010
