"""`redbutton device monitor`: a board's serial log, line by line, for a person or a script.

`LineReader` is the reusable part: the lines a board prints, decoded so that line noise (a baud
mismatch, the ROM's boot chatter, a half-sent byte at reset) never stops the reader, and
optionally surviving the port going away, which a board on its native USB does at every reset
and deep sleep."""

from __future__ import annotations

import errno
import io
import os
import re
import sys
import time
from collections.abc import Callable
from datetime import datetime
from types import TracebackType

import serial

from . import EXIT_NO_ANSWER, EXIT_OK, DeviceError
from .ports import is_path, is_usb_serial_jtag, no_such_port, open_error

# Control characters other than tab would move the cursor or switch the terminal's modes.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_LINE_END = re.compile(rb"\r\n|\n|\r(?!$)")
POLL_S = 0.05


def clean(raw: bytes) -> str:
    """Bytes from the wire as printable text: undecodable bytes and control characters become U+FFFD."""
    return _CONTROL.sub("\ufffd", raw.decode("utf-8", errors="replace"))


class LineReader:
    """Lines from a serial port (a device path or any pyserial URL), without their line endings.

    A line with no ending yet (a REPL prompt such as `>>> `) is handed out once the board has been
    quiet for `partial_after` seconds. With `reconnect`, a port that disappears is waited for and
    reopened instead of ending the reading; `on_gone` and `on_back` are told when that happens.

    The port is opened with DTR and RTS released: on ESP32 boards those lines drive EN and GPIO0,
    and merely watching a board must not reset it or hold it in the bootloader."""

    def __init__(self, port: str, baud: int = 115200, *, reconnect: bool = False, partial_after: float = 1.0,
                 on_gone: Callable[[], None] | None = None, on_back: Callable[[], None] | None = None) -> None:
        self.port = port
        self.baud = baud
        self.reconnect = reconnect
        self.partial_after = partial_after
        self._on_gone = on_gone
        self._on_back = on_back
        self._serial: serial.Serial | None = None
        self._buffer = b""
        self._last_byte = 0.0

    def __enter__(self) -> LineReader:
        self.open()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def open(self) -> None:
        """Open the port; a DeviceError says why not (missing, permission, in use)."""
        if is_path(self.port) and not os.path.exists(self.port):
            raise no_such_port(self.port)
        try:
            port = serial.serial_for_url(self.port, do_not_open=True, baudrate=self.baud, timeout=POLL_S,
                                         exclusive=True)
            port.dtr = False
            port.rts = False
            port.open()
        except (serial.SerialException, OSError) as e:
            raise open_error(self.port, e) from None
        except ValueError as e:  # a malformed pyserial URL
            raise DeviceError(f"{self.port}: {e}") from None
        self._serial = port

    def close(self) -> None:
        if self._serial is not None:
            try:
                self._serial.close()
            except (serial.SerialException, OSError):
                pass
            self._serial = None

    def reset(self) -> bool:
        """Restart the board with esptool's own hard-reset sequence (EN pulsed low through RTS).

        False when the port has no modem lines to pulse (a pseudo-terminal, a network port)."""
        from esptool.reset import HardReset  # type: ignore[import-untyped]

        port = self._require_open()
        try:
            port.rts = False  # released already: this only asks whether the port has the line at all
        except OSError as e:
            if e.errno in (errno.ENOTTY, errno.EINVAL):
                return False
            raise open_error(self.port, e) from None
        # The chip's own USB peripheral needs a longer pulse, and drops off the bus while reset.
        HardReset(port, uses_usb=is_usb_serial_jtag(self.port))()
        return True

    def read_line(self, timeout: float | None = None) -> str | None:
        """The next line, or None when `timeout` seconds pass without one (None: wait for ever)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            found = _LINE_END.search(self._buffer)
            if found:
                line, self._buffer = self._buffer[:found.start()], self._buffer[found.end():]
                return clean(line)
            now = time.monotonic()
            if self._buffer and now - self._last_byte >= self.partial_after:
                line, self._buffer = self._buffer.rstrip(b"\r"), b""
                return clean(line)
            if deadline is not None and now >= deadline:
                return None
            self._fill(deadline)

    def expect(self, pattern: str | re.Pattern[str], timeout: float) -> str:
        """The first line matching `pattern` (re.search) within `timeout` seconds; lines before it are skipped."""
        deadline = time.monotonic() + timeout
        wanted = re.compile(pattern) if isinstance(pattern, str) else pattern
        while (line := self.read_line(max(0.0, deadline - time.monotonic()))) is not None:
            if wanted.search(line):
                return line
        raise DeviceError(f"{self.port}: no line matched {wanted.pattern!r} within {timeout:g} s", EXIT_NO_ANSWER)

    def _require_open(self) -> serial.Serial:
        if self._serial is None:
            raise DeviceError(f"{self.port}: not open")
        return self._serial

    def _fill(self, deadline: float | None) -> None:
        """Read what has arrived (waiting at most POLL_S), or wait for a lost port to come back."""
        if self._serial is None:
            if not self.reconnect:
                raise DeviceError(f"{self.port}: not open")
            self._reopen(deadline)
            return
        try:
            chunk = self._serial.read(max(1, self._serial.in_waiting))
        except (serial.SerialException, OSError) as e:
            self.close()
            if not self.reconnect:
                raise DeviceError(f"{self.port}: the board went away: {e}", EXIT_NO_ANSWER) from None
            if self._on_gone is not None:
                self._on_gone()
            self._reopen(deadline)
            return
        if chunk:
            self._buffer += chunk
            self._last_byte = time.monotonic()

    def _reopen(self, deadline: float | None) -> None:
        while deadline is None or time.monotonic() < deadline:
            try:
                self.open()
            except DeviceError:
                time.sleep(0.2)  # polling for the device node udev creates when the board is back
            else:
                if self._on_back is not None:
                    self._on_back()
                return


def stamp() -> str:
    """Local wall-clock time to the millisecond: what a technician compares with the venue's clock."""
    return datetime.now().strftime("%H:%M:%S.%f")[:-3]


def monitor(port: str, baud: int, until: re.Pattern[str] | None, timeout: float | None, reset: bool) -> int:
    """Print the board's lines until `until` matches (0), `timeout` passes (1 with `until`, else 0), or Ctrl-C."""
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="replace")  # a terminal in a legacy encoding must not end the watch

    def gone() -> None:
        print(f"{stamp()} -- {port} went away (a reset or deep sleep on native USB?); waiting for it --",
              file=sys.stderr, flush=True)

    def back() -> None:
        print(f"{stamp()} -- {port} is back --", file=sys.stderr, flush=True)

    with LineReader(port, baud, reconnect=True, on_gone=gone, on_back=back) as reader:
        if reset and not reader.reset():
            print(f"{port}: this port has no RTS/DTR lines: the board was not reset", file=sys.stderr)
        print(f"watching {port} at {baud} baud" + (f" until a line matches {until.pattern!r}" if until else "")
              + " (Ctrl-C to stop)", file=sys.stderr, flush=True)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            line = reader.read_line(remaining)
            if line is None:
                break
            print(f"{stamp()} {line}", flush=True)
            if until is not None and until.search(line):
                return EXIT_OK
    if until is not None:
        raise DeviceError(f"{port}: no line matched {until.pattern!r} within {timeout:g} s", EXIT_NO_ANSWER)
    return EXIT_OK
