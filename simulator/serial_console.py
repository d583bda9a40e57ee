"""A simulated board behind a serial port, so the hardware-in-the-loop tests (tests/hil) and a
technician's terminal reach it the way they reach a board on USB.

The port is a pseudo-terminal: pyserial and pytest-embedded's serial service open its slave side
as they open /dev/ttyACM0. Everything the firmware prints goes out as `line\\r\\n`. What is typed in
is a person's hands on the board, one command per line (HELP below). A board has no such commands:
on one the tests ask the technician instead.

A pty carries no modem lines (setting RTS or DTR on it fails with ENOTTY), so the reset a test
does on a board by pulsing RTS is the typed `reset` here."""

from __future__ import annotations

import os
import select
import threading
import time
import tty

from .devices import VirtualButton, VirtualDevice, VirtualPager

SHORT_MS = 120
MAX_HOLD_MS = 60_000
MAX_LINE = 200  # a longer run of bytes without an end of line is noise, not a command
SETTLE_S = 1.0  # longest wait for a board on its way into deep sleep (below)

HELP = ("commands: press [ms] (main key; key A on a pager), press_b [ms] (pager key B), reset, "
        "power off|on, battery MV, whoami, help")


class ConsoleError(Exception):
    """A command that cannot be done: answered with one line, the console goes on."""


class SerialConsole:
    def __init__(self, device: VirtualDevice) -> None:
        self.device = device
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo, no line discipline: bytes pass as a USB serial passes them
        os.set_blocking(self.master, False)
        # The console keeps its own slave fd open: with no reader, writes then fill the pty's buffer
        # (pyserial flushes it when a reader opens the port) instead of failing with EIO.
        self.port = os.ttyname(self.slave)
        self.dropped = 0  # lines nobody read while the buffer was full (a USB CDC nobody reads drops too)
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None

    def start(self, timeout: float = 10.0) -> SerialConsole:
        """Power the board on, its console on the pty; returns once the firmware is READY."""
        self.device.console = self.emit
        self._reader = threading.Thread(target=self._read, name=f"console-{self.device.id}", daemon=True)
        self._reader.start()
        self.device.start(timeout)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._reader is not None:
            self._reader.join(2)
        self.device.stop()
        self.device.console = None
        with self._write_lock:
            for fd in (self.master, self.slave):
                try:
                    os.close(fd)
                except OSError:
                    pass

    def emit(self, line: str) -> None:
        """One line out, as the board's print() sends it over USB."""
        data = line.encode("utf-8", "replace") + b"\r\n"
        with self._write_lock:
            if self._stop.is_set():
                return
            try:
                while data:
                    data = data[os.write(self.master, data):]
            except OSError:  # the buffer is full (nobody reading) or the pty is gone
                self.dropped += 1

    def _read(self) -> None:
        pending = b""
        while not self._stop.is_set():
            ready, _w, _x = select.select([self.master], [], [], 0.1)
            if not ready:
                continue
            try:
                chunk = os.read(self.master, 1024)
            except BlockingIOError:
                continue
            except OSError:
                return
            pending += chunk
            *lines, pending = pending.replace(b"\r", b"\n").split(b"\n")
            for raw in lines:
                self.handle(raw)
            if len(pending) > MAX_LINE:
                self.handle(pending)
                pending = b""

    def handle(self, raw: bytes) -> None:
        """One typed line: do it, or answer why not. Never raises: garbage gets an error line."""
        text = raw.decode("utf-8", "replace").strip()
        if not text:
            return
        try:
            done = self._do(text.split())
        except ConsoleError as e:
            self.emit(f"sim: error: {e}")
        except Exception as e:  # a command must never take the console down
            self.emit(f"sim: error: {type(e).__name__}: {e}")
        else:
            if done:
                self.emit(f"sim: {done}")

    def _do(self, words: list[str]) -> str:
        cmd, args = words[0].lower(), words[1:]
        dev = self.device
        if cmd in ("help", "?"):
            return HELP
        if cmd in ("whoami", "sim?"):
            return f"{dev.role} {dev.id}"
        if cmd == "power":
            return self._power(args)
        if not dev.powered:
            raise ConsoleError("the board is off (power on)")
        if cmd == "press":
            ms = _hold_ms(args)
            self._settle()
            dev.press(ms)
            return ""
        if cmd == "press_b":
            if not isinstance(dev, VirtualPager):
                raise ConsoleError(f"a {dev.role} has no key B")
            ms = _hold_ms(args)
            dev.press_b(ms)
            return ""
        if cmd == "reset":
            _no_args(cmd, args)
            dev.reboot()
            return ""
        if cmd == "battery":
            if not isinstance(dev, VirtualButton):
                raise ConsoleError(f"a {dev.role} has no simulated cell")
            if len(args) != 1 or not args[0].isdigit() or not 2500 <= int(args[0]) <= 4500:
                raise ConsoleError("battery takes the cell's voltage in mV, 2500 to 4500")
            dev.set_battery(int(args[0]))
            return f"battery {int(args[0])} mV"
        raise ConsoleError(f"unknown command {_shown(words[0])}; {HELP}")

    def _power(self, args: list[str]) -> str:
        dev = self.device
        if args == ["off"]:
            if dev.powered:
                dev.power_off()
            return "power off"
        if args == ["on"]:
            if not dev.powered:
                dev.power_on()
            return "power on"
        raise ConsoleError("power takes on or off")

    def _settle(self) -> None:
        """A board that has printed SLEEP is about to stop: on the chip the wake pin is
        level-triggered, so a key held across that moment still wakes it. The simulated board
        watches its pin only once asleep, so a press waits (briefly) until it is."""
        dev = self.device
        deadline = time.monotonic() + SETTLE_S
        while (dev.lines and dev.lines[-1][1].startswith("SLEEP ") and not dev.asleep
               and time.monotonic() < deadline):
            time.sleep(0.002)


def _hold_ms(args: list[str]) -> int:
    if not args:
        return SHORT_MS
    if len(args) == 1 and args[0].isdigit() and 0 < int(args[0]) <= MAX_HOLD_MS:
        return int(args[0])
    raise ConsoleError(f"a hold is a number of ms, 1 to {MAX_HOLD_MS}")


def _no_args(cmd: str, args: list[str]) -> None:
    if args:
        raise ConsoleError(f"{cmd} takes no arguments")


def _shown(word: str) -> str:
    """A typed word as it can be shown back: printable, short."""
    clean = "".join(c if c.isprintable() else "?" for c in word)
    return repr(clean[:24] + ("..." if len(clean) > 24 else ""))
