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
import tempfile
import threading
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


class PtySerial:
    """The base station's end of the USB serial: write(bytes) and a non-blocking read(). Like a
    USB CDC nobody reads, it never blocks the radio: what the host does not drain is dropped (and
    BaseApp counts the OSError). A write is one os.write under a lock, so a log line and a frame
    never interleave."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.master: int | None = None
        self.slave: int | None = None
        self.dropped = 0

    def open(self) -> str:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line discipline: bytes pass as they are, before pyserial opens it
        os.set_blocking(master, False)
        with self._lock:
            self.master, self.slave = master, slave
        return os.ttyname(slave)

    def close(self) -> None:
        with self._lock:
            fds, self.master, self.slave = (self.master, self.slave), None, None
        for fd in fds:
            if fd is not None:
                os.close(fd)

    def read(self) -> bytes | None:
        with self._lock:
            if self.master is None:
                return None
            try:
                return os.read(self.master, 4096) or None
            except (BlockingIOError, OSError):
                return None

    def write(self, data: bytes) -> None:
        with self._lock:
            if self.master is None:
                raise OSError(errno.ENODEV, "unplugged")
            view = memoryview(data)
            while view:
                try:
                    n = os.write(self.master, view)
                except BlockingIOError:
                    self.dropped += 1
                    raise OSError(errno.EAGAIN, "host not reading") from None
                view = view[n:]


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
