"""The simulated board's serial console itself (simulator/serial_console.py), read and typed on
through pyserial as a terminal would: what the tests and a technician rely on when there is no
board. Not a board test: no role marker, so a run against a real board leaves these out."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from gateway.broker import Mosquitto
from gateway.venue import Venue
from simulator.devices import VirtualButton, VirtualPager, device_config
from simulator.serial_console import SerialConsole


class Terminal:
    """The technician's end of the console: lines typed, lines read up to a deadline."""

    def __init__(self, port: str) -> None:
        self.line = serial.serial_for_url(port, baudrate=115200, timeout=0.05)
        self.buffer = b""

    def type(self, data: bytes) -> None:
        self.line.write(data)

    def expect(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """The next line matching `pattern`; the lines before it are passed over, as pexpect does."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            while b"\r\n" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\r\n", 1)
                found = rx.search(raw.decode("utf-8", "replace"))
                if found:
                    return found
            if time.monotonic() > deadline:
                raise AssertionError(f"no line matching {pattern!r} within {timeout} s: {self.buffer!r}")
            self.buffer += self.line.read(4096)

    def close(self) -> None:
        self.line.close()


@pytest.fixture
def console(venue: Venue, broker: Mosquitto, tmp_path: Path) -> Iterator[SerialConsole]:
    c = SerialConsole(VirtualButton(device_config(venue, "btn-t12", broker.url), tmp_path / "flash")).start()
    yield c
    c.stop()


@pytest.fixture
def term(console: SerialConsole) -> Iterator[Terminal]:
    t = Terminal(console.port)
    yield t
    t.close()


def test_noise_and_unknown_commands_get_one_error_line_each_and_the_console_goes_on(term: Terminal) -> None:
    term.type(b"\x00\xff\xfe\x1b[A\x03\r\n")
    term.expect(r"^sim: error: unknown command")
    term.type(b"xyzzy 1 2\n")
    term.expect(r"^sim: error: unknown command 'xyzzy'; commands: press")
    term.type(b"press_b\npress -5\nbattery lots\n")
    term.expect(r"^sim: error: a button has no key B")
    term.expect(r"^sim: error: a hold is a number of ms")
    term.expect(r"^sim: error: battery takes the cell's voltage")
    term.type(b"A" * 5000)  # a line that never ends
    term.expect(r"^sim: error: unknown command 'AAAA")
    term.type(b"\nwhoami\r")
    term.expect(r"^sim: button btn-t12$")


def test_typed_hands_press_reset_and_power_the_board(console: SerialConsole, term: Terminal) -> None:
    term.type(b"battery 3300\n")
    term.expect(r"^sim: battery 3300 mV$")
    term.type(b"reset\n")
    first = term.expect(r"^BOOT button btn-t12 ep=(\d+) fw=\S+$")
    term.expect(r"^READY button")
    term.type(b"press\n")
    term.expect(r"^PRESS seq=\d+ kind=complaint bat=3300$")  # the cell's voltage, read through the ADC
    term.type(b"power off\npress\n")
    term.expect(r"^sim: power off$")
    term.expect(r"^sim: error: the board is off")
    term.type(b"power on\n")
    again = term.expect(r"^BOOT button btn-t12 ep=(\d+) fw=\S+$")  # a cold boot: not `woke`
    assert int(again.group(1)) > int(first.group(1))
    term.expect(r"^sim: power on$")


def test_a_pager_has_key_b(venue: Venue, broker: Mosquitto, tmp_path: Path) -> None:
    c = SerialConsole(VirtualPager(device_config(venue, "pgr-ana", broker.url), tmp_path / "flash")).start()
    t = Terminal(c.port)
    try:
        t.type(b"press_b 2300\n")  # held past 2 s: on / off duty
        t.expect(r"^DUTY (on|off) seq=\d+ sent")
    finally:
        t.close()
        c.stop()
