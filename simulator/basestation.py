"""A virtual ESP-NOW base station: the firmware's own base_board.run and base_app on a simulated chip,
its USB serial the master side of a real pseudo-terminal.

The serial bridge opens the other side (a stable symlink to the pty's slave, as udev gives a real
board a /dev/serial/by-id/ name) with pyserial, exactly as it opens a board. The radio is the
espnow shim's virtual air, shared with the simulated devices. `unplug()` and `plug()` take the
port away and bring it back; `inject()` puts noise on the line."""

from __future__ import annotations

import errno
import json
import os
import select
import tempfile
import threading
import time
import tty
from pathlib import Path
from typing import Any

from . import shims

shims.install()

import base_app  # noqa: E402  (firmware modules: importable only once the shims are installed)
import base_board  # noqa: E402

from .logbook import LogBook  # noqa: E402
from .shims import espnow, machine, network  # noqa: E402

BASE_PINS = Path(__file__).resolve().parents[1] / "hardware" / "pins" / "base.json"
LOOP_MS = 1
WRITE_WAIT_S = 0.5  # how long a serial write waits for the host to read (the board's watchdog allows 10 s)


class PtySerial:
    """The base station's end of the USB serial: write(bytes) and a non-blocking read().

    A write goes out whole or not at all, so a frame is never cut. The pty takes only what fits in
    its buffer (a partial os.write, then EAGAIN), so a write waits up to `write_wait_s` for the
    host to read, as a blocking write would. Whatever the host has not taken by then is kept
    and goes out before anything else, as bytes in a transmit buffer would. A write that cannot even
    start (the host is not reading) is dropped whole with OSError EAGAIN, which BaseApp counts, and
    while the host is not reading, writes do not wait, so the radio keeps running as a USB CDC
    nobody reads lets it. Writes happen under a lock, so a log line and a frame never interleave."""

    def __init__(self, write_wait_s: float = WRITE_WAIT_S) -> None:
        self._lock = threading.Lock()
        self.master: int | None = None
        self.slave: int | None = None
        self.write_wait_s = write_wait_s
        self._pending = b""  # the rest of a write the host had not read in time
        self._stalled = False  # the last write found the host not reading: do not wait again
        self.waited = 0  # times a write waited for the host to read
        self.dropped = 0  # writes dropped whole

    def open(self) -> str:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line discipline: bytes pass as they are, before pyserial opens it
        os.set_blocking(master, False)
        with self._lock:
            self.master, self.slave = master, slave
            self._pending, self._stalled = b"", False
        return os.ttyname(slave)

    def close(self) -> None:
        with self._lock:
            fds, self.master, self.slave = (self.master, self.slave), None, None
            self._pending = b""  # the cable is out: what it had not carried is gone
        for fd in fds:
            if fd is not None:
                os.close(fd)

    def read(self) -> bytes | None:
        with self._lock:
            if self.master is None:
                return None
            if self._pending:  # the loop reads every tick: the rest of a write goes out meanwhile
                self._pending = self._push(self.master, self._pending, 0.0)
            try:
                return os.read(self.master, 4096) or None
            except (BlockingIOError, OSError):
                return None

    def _push(self, fd: int, data: bytes, deadline: float) -> bytes:
        """Write as much of `data` as the host takes until `deadline` (monotonic); -> what is left."""
        view = memoryview(data)
        while view:
            try:
                n = os.write(fd, view)
            except BlockingIOError:
                n = 0
            if n:
                view = view[n:]
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.waited += 1
            select.select([], [fd], [], left)
        return bytes(view)

    def write(self, data: bytes) -> None:
        with self._lock:
            fd = self.master
            if fd is None:
                raise OSError(errno.ENODEV, "unplugged")
            if not data:
                return
            deadline = time.monotonic() + (0.0 if self._stalled else self.write_wait_s)
            self._pending = self._push(fd, self._pending, deadline)
            rest = data if self._pending else self._push(fd, data, deadline)
            self._stalled = bool(rest)
            if len(rest) == len(data):
                self.dropped += 1
                raise OSError(errno.EAGAIN, "host not reading")
            self._pending = rest  # begun: the rest goes out before anything else


class VirtualBaseStation(LogBook):
    def __init__(self, channel: int = 1, state_dir: Path | None = None, echo: bool = False) -> None:
        super().__init__("base", echo)
        self.channel = channel
        self.flash = Path(state_dir or tempfile.mkdtemp(prefix="rb-base-"))
        self.flash.mkdir(parents=True, exist_ok=True)
        (self.flash / "config.json").write_text(json.dumps({"role": "base", "espnow": {"channel": channel}}))
        if BASE_PINS.exists():
            (self.flash / "pins.json").write_text(BASE_PINS.read_text())
        self.chip = machine.Chip()
        self.mac: bytes = network.mac_of(self.chip)
        self.port = str(self.flash / "ttyRB0")  # what the bridge opens: a symlink to the pty's slave
        self.serial = PtySerial()
        self.app: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def radio(self) -> espnow.ESPNow | None:
        return espnow.radio_of(self.chip)

    def log(self, line: str) -> None:
        """print() on the board: into the serial stream the frames share, and kept for wait_for."""
        try:
            self.serial.write((line + "\n").encode())
        except OSError:
            pass
        super().log(line)

    def plug(self) -> None:
        """Connect the USB cable: a new pty, and the stable name pointed at it."""
        slave_path = self.serial.open()
        tmp = self.port + ".new"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(slave_path, tmp)
        os.replace(tmp, self.port)

    def unplug(self) -> None:
        """Pull the USB cable: the port disappears under the bridge; the radio keeps running."""
        if os.path.lexists(self.port):
            os.unlink(self.port)
        self.serial.close()

    def inject(self, data: bytes) -> None:
        """Noise on the line, as the bridge will read it."""
        self.serial.write(data)

    def start(self, timeout: float = 10.0) -> VirtualBaseStation:
        self.plug()
        self._thread = threading.Thread(target=self._run, name="base-station", daemon=True)
        self._thread.start()
        if self.wait_for(r"^BASE ready", timeout) is None:
            raise TimeoutError("the virtual base station did not start")
        return self

    def _make_app(self, *args: Any, **kw: Any) -> Any:
        self.app = base_app.BaseApp(*args, **kw)
        return self.app

    def _run(self) -> None:
        machine.bind(self.chip)
        base_board.run(root=f"{self.flash}/", serial=self.serial, log=self.log,
                       running=lambda: not self._stop.is_set(), loop_ms=LOOP_MS, make_app=self._make_app)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        radio = self.radio
        if radio is not None:
            radio.active(False)
        self.unplug()
