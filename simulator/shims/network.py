"""`network` for the simulator: a WLAN that is always joined (the host's loopback is the venue WiFi).
Link faults are injected at the MQTT link instead, where the firmware sees them the same way.

As on a board, WLAN(STA_IF) is one interface per chip (machine.chip(): the device's thread): every
WLAN object a device makes for it shares its state (active, channel, MAC, RSSI). The espnow shim's
virtual air reads that state, since ESP-NOW rides on the station interface. Each chip gets its own
locally administered MAC (02:52:42:...), unless the firmware sets one with config(mac=...)."""

from __future__ import annotations

import itertools
import threading
import weakref
from typing import Any

from .machine import Chip, chip

STA_IF = 0
AP_IF = 1

_lock = threading.Lock()
_ifaces: weakref.WeakKeyDictionary[Chip, dict[int, Interface]] = weakref.WeakKeyDictionary()
_serial = itertools.count(1)


class Interface:
    """The state of one chip's WiFi interface."""

    def __init__(self, mac: bytes) -> None:
        self.mac = mac
        self.active = False
        self.channel = 1  # an ESP32 not joined to an access point listens on channel 1
        self.rssi = -58


def interface(of: Chip, interface_id: int = STA_IF) -> Interface:
    with _lock:
        per_chip = _ifaces.setdefault(of, {})
        if interface_id not in per_chip:
            n = next(_serial)
            per_chip[interface_id] = Interface(bytes((0x02, 0x52, 0x42, interface_id, (n >> 8) & 0xFF, n & 0xFF)))
        return per_chip[interface_id]


def mac_of(of: Chip) -> bytes:
    """The station MAC of a chip: what a peer passes to espnow add_peer()/send()."""
    return interface(of).mac


def find(mac: bytes) -> tuple[Chip, Interface] | None:
    """The chip and station interface that answer to `mac` on the air, if any."""
    with _lock:
        for c, per_chip in _ifaces.items():
            iface = per_chip.get(STA_IF)
            if iface is not None and iface.mac == mac:
                return c, iface
    return None


class WLAN:
    def __init__(self, interface_id: int = STA_IF) -> None:
        self.interface = interface_id
        self._iface = interface(chip(), interface_id)

    @property
    def sim_rssi(self) -> int:
        return self._iface.rssi

    @sim_rssi.setter
    def sim_rssi(self, dbm: int) -> None:
        self._iface.rssi = dbm

    def active(self, on: bool | None = None) -> bool:
        if on is not None:
            self._iface.active = bool(on)
        return self._iface.active

    def connect(self, *_args: Any, **_kw: Any) -> None:
        self._iface.active = True

    def disconnect(self) -> None:
        pass

    def isconnected(self) -> bool:
        return True

    def ifconfig(self, config: Any = None) -> tuple[str, str, str, str]:
        return ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")

    def status(self, param: str | None = None) -> int:
        return self._iface.rssi if param == "rssi" else 1010

    def config(self, *args: str, **kw: Any) -> Any:
        """config("mac") / config("channel") read; config(channel=n, mac=b"...") set. Other
        settings (txpower, pm, ...) are accepted and ignored, as they change nothing here."""
        if args:
            if args[0] == "mac":
                return self._iface.mac
            if args[0] == "channel":
                return self._iface.channel
            if args[0] in ("ssid", "essid", "hostname"):
                return ""
            raise ValueError("unknown config param")
        if "channel" in kw:
            if not 1 <= int(kw["channel"]) <= 14:
                raise ValueError("channel must be 1-14")
            self._iface.channel = int(kw["channel"])
        if "mac" in kw:
            if len(kw["mac"]) != 6:
                raise ValueError("mac must be 6 bytes")
            self._iface.mac = bytes(kw["mac"])
        return None
