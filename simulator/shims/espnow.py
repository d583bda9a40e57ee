"""`espnow` for the simulator: a virtual air shared by every simulated ESP-NOW radio in the process.

ESPNow() is one radio per chip (machine.chip(), the device's thread), as it is a singleton on the
board. A radio sends from its chip's station interface (network shim): its MAC and channel. What
MicroPython's ESP32 port does, and this shim does too:
- send(mac, msg, sync=True) needs the radio active (else OSError ESP_ERR_ESPNOW_NOT_INIT), the
  station interface active (ESP_ERR_ESPNOW_IF), the peer registered (ESP_ERR_ESPNOW_NOT_FOUND) and
  msg <= 250 bytes (ValueError). It answers True when the peer acknowledged; mac=None sends to
  every registered peer and is True only if all acknowledged; sync=False answers True at once.
- A receiver acknowledges when its station interface is active on the sender's channel, even if
  its ESPNow is not active or its receive buffer is full: then the packet is lost although the
  sender saw True (stats()[4] counts it), as the ESP-NOW documentation warns.
- The receive buffer holds `rxbuf` bytes (default 516: two 250-byte packets with their MAC and
  length); config(rxbuf=...) takes effect at the next active(True).
- recv()/irecv(timeout_ms) give (mac, msg) or (None, None); irecv hands out the same list and
  bytearray every time, so code that keeps a message without copying it breaks here as on the
  board. peers_table maps a sender's MAC to [rssi, ticks_ms] once its message has been read.
- add_peer() raises ESP_ERR_ESPNOW_EXIST / ESP_ERR_ESPNOW_FULL (20 peers); del_peer() of an
  unknown MAC ESP_ERR_ESPNOW_NOT_FOUND; active(False) forgets the peers and the buffer.
Not covered: radio timing (a send is delivered at once), encryption (lmk is stored, not used),
on_recv/irq callbacks, ESP-NOW v2's longer packets, the ESP8266 variant.

Fault injection, per radio: `sim_up = False` takes it off the air (its sends fail, nothing reaches
it, it acknowledges nothing); `sim_loss` is the chance each packet it sends is lost;
`sim_drop(n)` loses its next n packets; `sim_lose_acks(n)` delivers its next n packets but loses
their acknowledgements, so the sender sees a failure and retries."""

from __future__ import annotations

import random
import threading
import time
import weakref
from collections import deque
from typing import Any

from . import network
from .machine import Chip, chip

MAX_DATA_LEN = 250
KEY_LEN = 16
ADDR_LEN = 6
MAX_TOTAL_PEER_NUM = 20
MAX_ENCRYPT_PEER_NUM = 6
BROADCAST = b"\xff" * 6

# esp_now.h numbers its errors from ESP_ERR_WIFI_BASE + 100
_ERRORS = {"ESP_ERR_ESPNOW_NOT_INIT": 12389, "ESP_ERR_ESPNOW_ARG": 12390, "ESP_ERR_ESPNOW_NO_MEM": 12391,
           "ESP_ERR_ESPNOW_FULL": 12392, "ESP_ERR_ESPNOW_NOT_FOUND": 12393, "ESP_ERR_ESPNOW_INTERNAL": 12394,
           "ESP_ERR_ESPNOW_EXIST": 12395, "ESP_ERR_ESPNOW_IF": 12396}
_RXBUF_DEFAULT = 516
_PACKET_OVERHEAD = 8  # buffer bytes per packet beside its data: sender MAC, length, framing
_DEFAULT_TIMEOUT_MS = 300_000
_TICKS = 1 << 30  # ticks_ms wraps here on the ESP32

_air = threading.Condition()  # one lock for the whole air: a send is delivered atomically
_radios: weakref.WeakKeyDictionary[Chip, ESPNow] = weakref.WeakKeyDictionary()


def _error(name: str) -> OSError:
    return OSError(_ERRORS[name], name)


def radio_of(of: Chip) -> ESPNow | None:
    """The chip's radio, if its firmware has made one (for fault injection from a test)."""
    with _air:
        return _radios.get(of)


class ESPNow:
    chip: Chip
    peers_table: dict[bytes, list[int]]

    def __new__(cls) -> ESPNow:
        c = chip()
        with _air:
            radio = _radios.get(c)
            if radio is None:
                radio = super().__new__(cls)
                radio._setup(c)
                _radios[c] = radio
            return radio

    def _setup(self, c: Chip) -> None:
        self.chip = c
        self._on = False
        self._rxbuf_wanted = _RXBUF_DEFAULT
        self._rxbuf = _RXBUF_DEFAULT
        self._timeout_ms = _DEFAULT_TIMEOUT_MS
        self._queue: deque[tuple[bytes, bytes]] = deque()
        self._queued = 0
        self._peers: dict[bytes, tuple[bytes, int, int, bool]] = {}  # mac -> (lmk, channel, ifidx, encrypt)
        self._stats = [0, 0, 0, 0, 0]  # tx_pkts, tx_responses, tx_failures, rx_packets, rx_dropped
        self._ibuf: list[Any] = [None, bytearray()]
        self.peers_table = {}
        self.sim_up = True
        self.sim_loss = 0.0
        self._drop = 0
        self._lose_acks = 0
        self._rng = random.Random(network.mac_of(c))

    # ---- fault injection ---------------------------------------------------------------------

    def sim_drop(self, n: int = 1) -> None:
        with _air:
            self._drop += n

    def sim_lose_acks(self, n: int = 1) -> None:
        with _air:
            self._lose_acks += n

    # ---- configuration and peers -------------------------------------------------------------

    def active(self, flag: Any = None) -> bool | None:
        if flag is None:
            return self._on
        with _air:
            self._on = bool(flag)
            self._queue.clear()
            self._queued = 0
            if self._on:
                self._rxbuf = self._rxbuf_wanted
            else:
                self._peers.clear()
            _air.notify_all()
        return None

    def config(self, *args: str, **kw: Any) -> Any:
        if args:
            if args[0] == "rxbuf":
                return self._rxbuf_wanted
            if args[0] in ("timeout", "timeout_ms"):
                return self._timeout_ms
            raise ValueError("unknown config param")
        for name, value in kw.items():
            if name == "rxbuf":
                self._rxbuf_wanted = int(value)
            elif name in ("timeout", "timeout_ms"):
                self._timeout_ms = int(value)
            elif name != "rate":
                raise ValueError(f"unknown config param {name}")
        return None

    def _check_on(self) -> None:
        if not self._on:
            raise _error("ESP_ERR_ESPNOW_NOT_INIT")

    @staticmethod
    def _check_mac(mac: Any) -> bytes:
        if not isinstance(mac, (bytes, bytearray)) or len(mac) != ADDR_LEN:
            raise ValueError("invalid mac")
        return bytes(mac)

    def add_peer(self, mac: bytes, lmk: bytes | None = None, channel: int = 0, ifidx: int = 0,
                 encrypt: bool = False) -> None:
        self._check_on()
        key = self._check_mac(mac)
        with _air:
            if key in self._peers:
                raise _error("ESP_ERR_ESPNOW_EXIST")
            if len(self._peers) >= MAX_TOTAL_PEER_NUM:
                raise _error("ESP_ERR_ESPNOW_FULL")
            self._peers[key] = (lmk or b"", channel, ifidx, bool(encrypt and lmk))

    def del_peer(self, mac: bytes) -> None:
        self._check_on()
        key = self._check_mac(mac)
        with _air:
            if self._peers.pop(key, None) is None:
                raise _error("ESP_ERR_ESPNOW_NOT_FOUND")

    def get_peer(self, mac: bytes) -> tuple[bytes, bytes, int, int, bool]:
        key = self._check_mac(mac)
        with _air:
            if key not in self._peers:
                raise _error("ESP_ERR_ESPNOW_NOT_FOUND")
            return (key, *self._peers[key])

    def get_peers(self) -> tuple[tuple[bytes, bytes, int, int, bool], ...]:
        with _air:
            return tuple((m, *info) for m, info in self._peers.items())

    def peer_count(self) -> tuple[int, int]:
        with _air:
            return len(self._peers), sum(1 for info in self._peers.values() if info[3])

    def stats(self) -> tuple[int, int, int, int, int]:
        with _air:
            s = self._stats
            return s[0], s[1], s[2], s[3], s[4]

    # ---- sending -----------------------------------------------------------------------------

    def send(self, mac: Any, msg: Any = None, sync: bool = True) -> bool:
        if msg is None:  # send(msg): to every peer
            mac, msg = None, mac
        self._check_on()
        data = msg.encode() if isinstance(msg, str) else bytes(msg)
        if len(data) > MAX_DATA_LEN:
            raise ValueError("msg too long")
        iface = network.interface(self.chip)
        if not iface.active:
            raise _error("ESP_ERR_ESPNOW_IF")
        with _air:
            if mac is None:
                targets = [m for m in self._peers if m != BROADCAST]
            else:
                key = self._check_mac(mac)
                if key not in self._peers:
                    raise _error("ESP_ERR_ESPNOW_NOT_FOUND")
                targets = [key]
            all_acked = True
            for dest in targets:
                self._stats[0] += 1
                if self._transmit(iface, dest, data):
                    self._stats[1] += 1
                else:
                    self._stats[2] += 1
                    all_acked = False
        return all_acked or not sync

    def _transmit(self, iface: network.Interface, dest: bytes, data: bytes) -> bool:
        """One packet through the air (the caller holds the air's lock); True when acknowledged."""
        if not self.sim_up:
            return False
        if self._drop:
            self._drop -= 1
            return False
        if self.sim_loss and self._rng.random() < self.sim_loss:
            return False
        if dest == BROADCAST:
            for c, radio in list(_radios.items()):
                rx_iface = network.interface(c)
                if radio is not self and rx_iface.active and rx_iface.channel == iface.channel and radio.sim_up:
                    radio._deliver(iface.mac, data)
            return True  # nobody acknowledges a broadcast
        found = network.find(dest)
        if found is None:
            return False
        rx_chip, rx_iface = found
        if not rx_iface.active or rx_iface.channel != iface.channel:
            return False
        receiver = _radios.get(rx_chip)
        if receiver is not None:
            if not receiver.sim_up:
                return False
            receiver._deliver(iface.mac, data)
        if self._lose_acks:
            self._lose_acks -= 1
            return False
        return True

    def _deliver(self, sender: bytes, data: bytes) -> None:
        if not self._on:
            return  # acknowledged by the WiFi layer, never read
        cost = len(data) + _PACKET_OVERHEAD
        if self._queued + cost > self._rxbuf:
            self._stats[4] += 1
            return
        self._queue.append((sender, data))
        self._queued += cost
        self._stats[3] += 1
        _air.notify_all()

    # ---- receiving ---------------------------------------------------------------------------

    def any(self) -> bool:
        with _air:
            return bool(self._queue)

    def _take(self, timeout_ms: int | None) -> tuple[bytes, bytes] | None:
        self._check_on()
        if timeout_ms is None:
            timeout_ms = self._timeout_ms
        deadline = None if timeout_ms < 0 else time.monotonic() + timeout_ms / 1000
        with _air:
            while not self._queue:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                _air.wait(left)
                if not self._on:
                    return None
            sender, data = self._queue.popleft()
            self._queued -= len(data) + _PACKET_OVERHEAD
            # the RSSI a packet arrives with: the receiving interface's simulated signal
            self.peers_table[sender] = [network.interface(self.chip).rssi, int(time.monotonic() * 1000) % _TICKS]
            return sender, data

    def recv(self, timeout_ms: int | None = None) -> list[Any]:
        got = self._take(timeout_ms)
        if got is None:
            return [None, None]
        return [got[0], got[1]]

    def irecv(self, timeout_ms: int | None = None) -> list[Any]:
        got = self._take(timeout_ms)
        if got is None:
            return [None, None]
        self._ibuf[0] = got[0]
        self._ibuf[1][:] = got[1]  # the same bytearray every time, as on the board
        return self._ibuf

    def __iter__(self) -> ESPNow:
        return self

    def __next__(self) -> list[Any]:
        return self.irecv()
