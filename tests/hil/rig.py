"""What a hardware-in-the-loop test works with, the same whether the board is simulated or real:
the board's identity (`Board`), hands that act on it (`ConsoleHands` type on a simulated board's
console, `HumanHands` ask the technician and reset through the serial line) and a watch on the
board's broker (`BrokerWatch`) that verifies every event it sees with the board's key."""

from __future__ import annotations

import re
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

import rbproto
from gateway.mqtt_io import broker_login, parse_broker_url, set_nodelay

SHORT_MS = 120  # a short press
LONG_MS = 1700  # past the 1.5 s of a long press (a button's cancel, a pager's decline)
RESET_PULSE_S = 0.1  # how long esptool holds EN low through RTS


@dataclass(frozen=True)
class Board:
    role: str  # "button" or "pager"
    device: str
    site: str
    key: bytes
    broker_url: str  # where the test watches and commands: the broker the board uses
    port: str  # its serial console
    boot_s: float  # a boot, WiFi join and broker connection take at most this long
    min_free: int  # the least heap the firmware may have left after boot


KEYS = {"button": {"main": "the red button"}, "pager": {"main": "key A", "b": "key B"}}


class ConsoleHands:
    """A simulated board's hands: commands typed on its console (simulator/serial_console.py)."""

    patience = 10.0  # the board acts on a typed command at once

    def __init__(self, dut: Any) -> None:
        self.dut = dut

    def tap(self, key: str = "main") -> None:
        self.dut.write(f"{'press' if key == 'main' else 'press_b'} {SHORT_MS}")

    def hold(self, key: str = "main") -> None:
        self.dut.write(f"{'press' if key == 'main' else 'press_b'} {LONG_MS}")

    def reset(self) -> None:
        self.dut.write("reset")


class HumanHands:
    """A real board's hands: the technician, told on the terminal what to do; the reset goes
    through the serial line as esptool does it (RTS pulls EN low while DTR keeps IO0 high, so the
    chip boots the app, not the ROM loader). A port without modem lines (a pty) cannot reset
    that way: then the technician is asked to press the board's reset (EN) button."""

    def __init__(self, dut: Any, role: str, say: Callable[[str], None], patience: float) -> None:
        self.dut = dut
        self.role = role
        self.say = say
        self.patience = patience

    def tap(self, key: str = "main") -> None:
        self.say(f"press {KEYS[self.role][key]} once, briefly (within {self.patience:.0f} s)")

    def hold(self, key: str = "main") -> None:
        self.say(f"hold {KEYS[self.role][key]} down for 2 seconds, then let go (within {self.patience:.0f} s)")

    def reset(self) -> None:
        line = self.dut.serial.proc
        try:
            line.dtr = False
            line.rts = True
            time.sleep(RESET_PULSE_S)  # the pulse width EN needs, not a wait for anything
            line.rts = False
        except OSError:
            self.say(f"press the board's reset (EN) button (within {self.patience:.0f} s)")


class BrokerWatch:
    """Every signed event of one board, as the broker delivers it, decoded and verified with the
    board's key (rbproto.decode raises on a bad signature, so a message kept here is authentic).
    Also publishes commands to it. MQTT 5, so a publish the broker's ACL refuses is an error, not
    silence. On a real venue's broker the URL names a user allowed both (the gateway's)."""

    def __init__(self, board: Board, ca: str | None = None) -> None:
        self.board = board
        self.messages: list[rbproto.Message] = []
        self.refused: list[str] = []  # events that failed verification: "topic: why"
        self._pubacks: dict[int, ReasonCode] = {}
        self._cv = threading.Condition()
        url = board.broker_url
        host, port = parse_broker_url(url)
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"rb-hil-{board.device}-{time.time_ns() % 10**9}",
                        protocol=mqtt.MQTTv5)
        c.on_socket_open = set_nodelay
        user, password = broker_login(url)
        if user is not None:
            c.username_pw_set(user, password)
        if url.startswith("mqtts://"):
            c.tls_set_context(ssl.create_default_context(cafile=ca))
        subscribed = threading.Event()
        c.on_subscribe = lambda *_a: subscribed.set()
        c.on_message = self._on_message
        c.on_publish = self._on_publish
        self.client = c
        c.connect(host, port)
        c.loop_start()
        c.subscribe(f"{rbproto.ROOT}/{board.site}/{board.device}/{rbproto.EVT}/+", qos=1)
        if not subscribed.wait(10):
            self.close()
            raise ConnectionError(f"no SUBACK from the broker at {host}:{port}")

    def _key_for(self, device: str) -> bytes | None:
        return self.board.key if device == self.board.device else None

    def _on_message(self, _c: mqtt.Client, _u: Any, m: mqtt.MQTTMessage) -> None:
        try:
            msg = rbproto.decode(m.topic, bytes(m.payload), self._key_for)
        except rbproto.ProtocolError as e:
            with self._cv:
                self.refused.append(f"{m.topic}: {e}")
            return
        with self._cv:
            self.messages.append(msg)
            self._cv.notify_all()

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        with self._cv:
            self._pubacks[mid] = reason
            self._cv.notify_all()

    def _wait(self, found: Callable[[], Any], timeout: float, failed: Callable[[], str]) -> Any:
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                value = found()
                if value is not None:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(failed())
                self._cv.wait(left)

    def wait_for(self, mtype: str, timeout: float, **body: Any) -> rbproto.Message:
        """The first verified `mtype` event from the board whose body has these values."""
        def found() -> rbproto.Message | None:
            return next((m for m in self.messages if m.mtype == mtype
                         and all(m.body.get(k) == v for k, v in body.items())), None)

        msg: rbproto.Message = self._wait(found, timeout, lambda: (
            f"no {mtype} {body} from {self.board.device} on the broker within {timeout} s; "
            f"seen: {self.messages}; refused: {self.refused}"))
        return msg

    def command(self, mtype: str, fields: dict[str, int | str], timeout: float = 10.0) -> None:
        """Sign a command with the board's key and publish it (QoS 1), as the gateway does; returns
        once the broker has taken it (its PUBACK says so: an ACL refusal fails here)."""
        b = self.board
        topic, payload = rbproto.encode(b.key, b.site, b.device, mtype, fields)
        mid = self.client.publish(topic, payload, qos=1).mid
        reason: ReasonCode = self._wait(lambda: self._pubacks.get(mid), timeout,
                                        lambda: f"no PUBACK for the {mtype} within {timeout} s")
        assert not reason.is_failure, f"the broker refused the {mtype} for {b.device}: {reason}"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def fresh_boot(dut: Any, hands: ConsoleHands | HumanHands, board: Board) -> tuple[int, int]:
    """Reset the board and wait for it to come up: BOOT, then `LINK up` and `READY` in whichever
    order its radio gives them (the board's MQTT link connects before READY, the simulator's after).
    -> (boot epoch, free heap)."""
    hands.reset()
    wait = board.boot_s + hands.patience
    boot = dut.expect(rf"BOOT {board.role} {re.escape(board.device)} ep=(\d+) fw=(\S+)\r\n".encode(), timeout=wait)
    found = dut.expect([rb"LINK up\r\n", rf"READY {board.role} free=(\d+)\r\n".encode()], expect_all=True,
                       timeout=board.boot_s)
    ready = next(m for m in found if m.group(0).startswith(b"READY"))
    return int(boot.group(1)), int(ready.group(1))
