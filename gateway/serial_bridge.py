"""The serial bridge: an ESP-NOW base station's USB serial frames <-> the venue's MQTT broker.

Up: the base station hands over every ESP-NOW packet it hears as an UP frame (rbproto.frame). The
bridge reassembles the messages (rbproto.air), checks that each topic is an event or status of a
device of this venue, and publishes it as the device itself would have over MQTT: QoS 1, statuses
retained. So the gateway never knows which radio a device used.
Down: it subscribes to the site's commands and sends each one meant for a device it has heard over
ESP-NOW back as DOWN frames to that device's MAC; the base station reports each send's outcome.

Nothing on the serial line can stop it: damage is counted under `serial.<reason>` and logged, and
a port that disappears is reopened with a backoff. While the base station is gone its devices are
unreachable, so the bridge publishes their statuses offline, as their last-will would, and the
gateway pages someone else; when the port is back it publishes their last online status again
(the gateway's heartbeat supervision catches a device that died meanwhile). A device whose online
status this process has not relayed (the bridge restarted) is announced again at its heartbeat."""

from __future__ import annotations

import collections
import json
import logging
import random
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import serial

import rbproto
from rbproto import air, frame

from .metrics import Counters
from .mqtt_io import MqttIO
from .venue import Venue

log = logging.getLogger("redbutton.bridge")
base_log = logging.getLogger("redbutton.base")  # the base station's own print() lines

DEFAULT_BAUD = 115200  # USB CDC ignores it; a USB-UART base station needs it to match
REOPEN_DELAYS_S = (0.5, 1.0, 2.0, 5.0)
READ_TIMEOUT_S = 0.05  # how long a read waits for a first byte; bounds the reaction to stop()


class HostClock:
    """The ms()/diff() clock rbproto.air.Reassembler expects, on the host's monotonic clock."""

    def ms(self) -> int:
        return int(time.monotonic() * 1000)

    def diff(self, later: int, earlier: int) -> int:
        return later - earlier


def hexmac(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


class SerialBridge:
    def __init__(self, venue: Venue, broker_url: str, port: str, baud: int = DEFAULT_BAUD,
                 counters: Counters | None = None, reopen_delays: Sequence[float] = REOPEN_DELAYS_S,
                 broker_ca: str | Path | None = None) -> None:
        """`broker_ca`: for an mqtts:// broker, the venue CA (default $REDBUTTON_BROKER_CA), as for the gateway."""
        self.venue = venue
        self.port = port
        self.baud = baud
        self.counters = counters or Counters()
        self.reopen_delays = tuple(reopen_delays)
        self.io = MqttIO(broker_url, venue.site, f"rb-bridge-{venue.site}", self.on_command,
                         subscriptions=[rbproto.commands_filter(venue.site, "+")], status_id=None, ca=broker_ca)
        self.macs: dict[str, bytes] = {}  # device id -> the MAC it was last heard from
        self.base_mac: bytes | None = None
        self.base_stats: dict[str, Any] = {}
        self.base_log: collections.deque[str] = collections.deque(maxlen=500)
        self.opened = threading.Event()  # set while the port is open
        self._status: dict[str, tuple[str, int]] = {}  # device -> (fw, ep) for its status messages
        self._online: set[str] = set()  # devices whose online status this process has published
        self._restore: set[str] = set()  # marked offline because the port was lost: online when back
        self._ser: serial.SerialBase | None = None
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._msg_id = random.randrange(256)  # a device drops a message whose id repeats the last one
        self._decoder = frame.Decoder()
        self._reasm = air.Reassembler(HostClock(), slots=16)
        # damage counts (decoder's, reassembler's) already passed on to self.counters
        self._seen_frames: dict[str, int] = {}
        self._seen_air: dict[str, int] = {}

    # ---- life cycle ----------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> SerialBridge:
        self.io.start(timeout)
        self._thread = threading.Thread(target=self._run, name="serial-bridge", daemon=True)
        self._thread.start()
        log.info("bridge for %s: base station on %s, broker %s:%d%s", self.venue.site, self.port,
                 self.io.host, self.io.port, " (TLS)" if self.io.tls else "")
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        self._close()
        self._mark_offline("bridge stopped")
        self.io.stop()

    def wait_open(self, timeout: float = 10.0) -> bool:
        return self.opened.wait(timeout)

    # ---- the serial port -----------------------------------------------------------------------

    def _open(self, quiet: bool) -> bool:
        try:
            ser = serial.serial_for_url(self.port, baudrate=self.baud, timeout=READ_TIMEOUT_S, write_timeout=1)
        except (serial.SerialException, OSError, ValueError) as e:
            self.counters.inc("serial.open_failed")
            (log.debug if quiet else log.warning)("cannot open %s: %s", self.port, e)
            return False
        with self._write_lock:
            self._ser = ser
        self._decoder = frame.Decoder()  # whatever was half-read belonged to the old port
        self._seen_frames = {}
        self.opened.set()
        self.counters.inc("serial.opened")
        log.info("serial port %s open", self.port)
        for device in sorted(self._restore):
            self._announce(device)
        self._restore.clear()
        return True

    def _close(self) -> None:
        with self._write_lock:
            ser, self._ser = self._ser, None
        self.opened.clear()
        if ser is not None:
            try:
                ser.close()
            except (serial.SerialException, OSError):
                pass

    def _lost(self, why: str) -> None:
        self.counters.inc("serial.port_lost")
        log.warning("serial port %s lost: %s", self.port, why)
        self._close()
        self._restore |= self._mark_offline("base station lost")

    def _run(self) -> None:
        fails = 0
        while not self._stop.is_set():
            ser = self._ser
            if ser is None:
                if not self._open(quiet=fails > 0):
                    delay = self.reopen_delays[min(fails, len(self.reopen_delays) - 1)]
                    fails += 1
                    self._stop.wait(delay)
                continue
            fails = 0
            try:
                # every pyserial port class has in_waiting, the stubs' SerialBase does not
                data = ser.read(max(1, int(getattr(ser, "in_waiting", 0))))
            except (serial.SerialException, OSError, TypeError) as e:  # TypeError: pyserial on a closed fd
                self._lost(str(e))
                continue
            if data:
                self.feed(data)
            self._expire()

    def _write(self, data: bytes) -> bool:
        with self._write_lock:
            if self._ser is None:
                return False
            try:
                self._ser.write(data)
            except (serial.SerialException, OSError) as e:
                log.warning("write to %s failed: %s", self.port, e)
                return False
        return True

    # ---- up: serial -> MQTT --------------------------------------------------------------------

    def _count_damage(self, errors: dict[str, int], seen: dict[str, int]) -> None:
        for reason, n in errors.items():
            new = n - seen.get(reason, 0)
            if new > 0:
                seen[reason] = n
                self.counters.inc(f"serial.{reason}", new)
                # a duplicate is a send retried because its acknowledgement was lost: normal
                (log.info if reason == air.DUPLICATE else log.warning)("serial: dropped %d (%s)", new, reason)

    def feed(self, data: bytes) -> None:
        """Everything read from the port, in order; never raises on what the line carries."""
        for kind, mac, body in self._decoder.feed(data):
            try:
                if kind == frame.LOG:
                    self._base_line(body)
                elif kind == frame.UP:
                    self._up(mac, body)
                elif kind == frame.SENT:
                    self._sent(mac, body)
                elif kind == frame.STATS:
                    self._stats(mac, body)
                else:
                    self._drop("unexpected_kind", f"kind {kind} from the base station")
            except Exception:  # a bug in one frame's handling must not stop the bridge
                log.exception("handling a serial frame of kind %s failed", kind)
        self._count_damage(self._decoder.errors, self._seen_frames)

    def _expire(self) -> None:
        if self._reasm.expire():
            self._count_damage(self._reasm.errors, self._seen_air)

    def _drop(self, reason: str, detail: str) -> None:
        self.counters.inc(f"serial.{reason}")
        log.warning("DROP reason=%s %s", reason, detail[:160])

    def _base_line(self, text: str) -> None:
        self.counters.inc("base.log_lines")
        self.base_log.append(text)
        base_log.info("%s", text)

    def _stats(self, mac: bytes, body: bytes) -> None:
        self.base_mac = mac
        try:
            stats = json.loads(body)
        except ValueError:
            self._drop("bad_stats", repr(body[:60]))
            return
        if isinstance(stats, dict):
            self.base_stats = stats
            self.counters.inc("base.stats")
            log.debug("base station %s: %s", hexmac(mac), stats)

    def _sent(self, mac: bytes, body: bytes) -> None:
        if not body:
            self._drop("bad_sent", hexmac(mac))
            return
        head = body[1:4]
        which = f"message {head[0]} fragment {head[1] + 1}/{head[2]}" if len(head) == 3 else "?"
        if body[0] == frame.SENT_OK:
            self.counters.inc("down.acked")
            log.debug("DOWN acknowledged by %s (%s)", hexmac(mac), which)
        else:
            self.counters.inc("serial.send_failed")
            log.warning("DOWN not acknowledged by %s (%s)", hexmac(mac), which)

    def _up(self, mac: bytes, packet: bytes) -> None:
        self.counters.inc("up.packets")
        message = self._reasm.add(mac, packet)
        self._count_damage(self._reasm.errors, self._seen_air)
        if message is None:
            return
        try:
            topic, payload = air.split(message)
            site, device, mtype = rbproto.parse_topic(topic)
        except (ValueError, UnicodeError) as e:  # rbproto.ProtocolError is a ValueError
            self._drop("bad_topic", f"from {hexmac(mac)}: {e}")
            return
        where = f"topic={topic} from {hexmac(mac)}"
        if site != self.venue.site:
            self._drop("wrong_site", where)
            return
        if device not in self.venue.devices:
            self._drop("unknown_device", where)
            return
        if mtype != "status" and rbproto.SCHEMA[mtype][0] != rbproto.EVT:
            self._drop("bad_topic", where + " (a device sends events, not commands)")
            return
        if mtype == "status":
            if not self._learn_status(device, mac, topic, payload):
                return
        else:
            self._learn_event(device, mac, topic, payload)
        self.io.publish(topic, payload, retain=mtype == "status")
        self.counters.inc("up.published")
        log.debug("UP %s %s from %s", device, mtype, hexmac(mac))

    def _learn_status(self, device: str, mac: bytes, topic: str, payload: bytes) -> bool:
        """A status is unsigned: it may name a device's MAC only while none is known. A bad one is
        dropped here, as it would stay retained on the broker."""
        try:
            _site, _dev, state, fw, ep = rbproto.decode_status(topic, payload)
        except rbproto.ProtocolError as e:
            self._drop("bad_status", f"{topic}: {e}")
            return False
        known = self.macs.get(device)
        if known is None:
            self._learn(device, mac)
        elif known != mac:
            self.counters.inc("serial.mac_conflict")
            log.warning("status for %s from %s, but it was heard at %s: MAC kept until a signed message",
                        device, hexmac(mac), hexmac(known))
        self._status[device] = (fw, ep)
        if state == rbproto.ONLINE:
            self._online.add(device)
        else:
            self._online.discard(device)
        return True

    def _learn_event(self, device: str, mac: bytes, topic: str, payload: bytes) -> None:
        """A signed event that verifies moves the device's downlink to the MAC it came from (a
        replaced board keeps its id). One that does not is passed on: the gateway counts it."""
        try:
            msg = rbproto.decode(topic, payload, self.venue.key_for)
        except rbproto.ProtocolError:
            return
        if self.macs.get(device) != mac:
            self._learn(device, mac)
        fw = msg.body["fw"] if msg.mtype == "heartbeat" else self._status.get(device, ("", 0))[0]
        if fw:
            self._status[device] = (fw, msg.body["ep"])
            if device not in self._online:
                self._announce(device)

    def _learn(self, device: str, mac: bytes) -> None:
        self.macs[device] = mac
        log.info("DEVICE %s on ESP-NOW at %s", device, hexmac(mac))

    def _announce(self, device: str) -> None:
        """Publish a device's online status for it (retained), from what it last said of itself."""
        fw, ep = self._status[device]
        self.io.publish(rbproto.status_topic(self.venue.site, device), rbproto.encode_status(rbproto.ONLINE, fw, ep),
                        retain=True)
        self._online.add(device)
        log.info("DEVICE %s reachable again: online", device)

    def _mark_offline(self, why: str) -> set[str]:
        """The devices this bridge speaks for are unreachable: say so, as their last-will would.
        Returns the devices marked."""
        marked = set(self._online)
        infos = []
        for device in sorted(marked):
            fw, ep = self._status[device]
            infos.append(self.io.publish(rbproto.status_topic(self.venue.site, device),
                                         rbproto.encode_status(rbproto.OFFLINE, fw, ep), retain=True))
        self._online.clear()
        if marked:
            log.warning("%s: ESP-NOW devices %s marked offline", why, ", ".join(sorted(marked)))
        for info in infos:
            if self.io.connected.is_set():
                try:
                    info.wait_for_publish(1)
                except (RuntimeError, ValueError):
                    pass
        return marked

    # ---- down: MQTT -> serial ------------------------------------------------------------------

    def on_command(self, topic: str, payload: bytes) -> None:
        """A command from the gateway (on the MQTT thread): to the device's MAC, if heard here."""
        try:
            _site, device, mtype = rbproto.parse_topic(topic)
        except rbproto.ProtocolError:
            return
        mac = self.macs.get(device)
        if mac is None:
            self.counters.inc("down.not_espnow")  # a device on WiFi, or one not heard yet
            return
        self._msg_id = (self._msg_id + 1) & 0xFF
        try:
            packets = air.fragment(self._msg_id, air.join(topic, payload))
        except ValueError as e:
            self.counters.inc("down.oversized")
            log.warning("DOWN %s %s dropped: %s", device, mtype, e)
            return
        if not self._write(b"".join(frame.encode(frame.DOWN, mac, p) for p in packets)):
            self.counters.inc("down.port_down")
            log.warning("DOWN %s %s dropped: no base station on %s", device, mtype, self.port)
            return
        self.counters.inc("down.messages")
        self.counters.inc("down.packets", len(packets))
        log.info("DOWN %s %s to %s (%d packet%s)", device, mtype, hexmac(mac), len(packets),
                 "" if len(packets) == 1 else "s")
