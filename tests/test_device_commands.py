"""`redbutton device list|flash|monitor` as a technician runs them, with no ESP32 on this machine.

Real parts only: the installed `redbutton` console script, the real esptool and mpremote, real
pseudo-terminals as serial ports. Where a board has to answer, it is real MicroPython: the official
WebAssembly port (the one the firmware tests use) behind a pty, speaking the raw REPL mpremote
uses. A board with nothing behind the port is a pty nobody answers."""

from __future__ import annotations

import hashlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from gateway.technician.flash import write_files
from gateway.technician.monitor import LineReader
from gateway.technician.ports import serial_ports

ROOT = Path(__file__).resolve().parents[1]
REDBUTTON = Path(sys.executable).with_name("redbutton")
MPY_WASM = (ROOT / ".venv" / "node" / "node_modules" / "@micropython" / "micropython-webassembly-pyscript"
            / "micropython.mjs")
STAMP = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} ")

# A MicroPython board on stdin/stdout for mpremote: the WebAssembly port's own raw REPL runs every
# command. Two things differ from an ESP32 and are bridged here: the port reports the host's errno
# numbers (ENOENT is 44), which mpremote reads as MicroPython's (2); and its event-driven REPL cannot
# receive raw-paste (it reads stdin synchronously), so the transfer half of raw-paste is done here
# and the code is then run by the raw REPL, whose "OK" raw-paste does not send. A soft reset keeps
# the filesystem, as a board's flash does.
BOARD_JS = """
import { loadMicroPython } from %(mpy)s;
let out = [];
let dropOK = 0;
const flush = () => { process.stdout.write(Uint8Array.from(out)); out = []; };
const emit = (b) => { out.push(b); if (out.length === 1) setImmediate(flush); };
const mp = await loadMicroPython({ heapsize: 1 << 20, linebuffer: false,
  stdout: (b) => { if (dropOK > 0) { dropOK--; } else { emit(b[0]); } } });
mp.runPython(`
import os as _os, sys
_E = {44: 2, 20: 17, 54: 20, 31: 21, 55: 39, 2: 13, 63: 1, 28: 22}
def _esp32(f):
    def call(*a):
        try:
            return f(*a)
        except OSError as e:
            raise OSError(_E.get(e.errno, e.errno))
    return call
class _Os:
    def __getattr__(self, name):
        f = getattr(_os, name)
        return _esp32(f) if callable(f) else f
sys.modules["os"] = _Os()
open = _esp32(open)
`);
const feed = (b) => { if (mp.replProcessChar(b)) { process.stdout.write("soft reboot\\r\\n"); mp.replInit(); } };
mp.replInit();
const WINDOW = 4096;
const RAW_PASTE = [0x05, 0x41, 0x01];
let held = [];
let paste = null;
let unacked = 0;
process.stdin.on("data", (data) => {
  for (const c of data) {
    if (paste !== null) {
      if (c === 0x04) {
        emit(0x04);
        const code = paste; paste = null;
        dropOK = 2;
        for (const b of code) feed(b);
        feed(0x04);
      } else {
        paste.push(c);
        if (++unacked === WINDOW) { unacked = 0; emit(0x01); }
      }
      continue;
    }
    held.push(c);
    if (held.every((b, i) => b === RAW_PASTE[i])) {
      if (held.length === 3) {
        held = []; paste = []; unacked = 0;
        [0x52, 0x01, WINDOW & 0xff, WINDOW >> 8].forEach(emit);
      }
      continue;
    }
    for (const b of held) feed(b);
    held = [];
  }
});
process.stdin.on("end", () => process.exit(0));
"""


def redbutton(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REDBUTTON), *map(str, args)], capture_output=True, text=True, timeout=60,
                          env=None if env is None else {**os.environ, **env})


def assert_clean_failure(done: subprocess.CompletedProcess[str], code: int, *phrases: str) -> None:
    """One `redbutton: ...` message on stderr, the expected exit status, no traceback."""
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    assert done.stderr.startswith("redbutton: "), done.stderr
    for phrase in phrases:
        assert phrase in done.stderr, (phrase, done.stderr)


class Pty:
    """A pseudo-terminal as a serial port: `path` for the command, `master` for the test.

    What the command writes to the port is drained, so a tool that writes a lot (esptool's sync
    frames) never blocks on a full buffer nobody reads."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        self.path = os.ttyname(self.slave)
        self.received = bytearray()
        self._stop = threading.Event()
        self._drain: threading.Thread | None = None

    def drain(self) -> Pty:
        def run() -> None:
            while not self._stop.is_set():
                if select.select([self.master], [], [], 0.05)[0]:
                    try:
                        self.received += os.read(self.master, 4096)
                    except OSError:
                        return
        self._drain = threading.Thread(target=run, daemon=True)
        self._drain.start()
        return self

    def close(self) -> None:
        """Both ends closed: the device node goes away, as a board's does when it is unplugged."""
        self._stop.set()
        if self._drain is not None:
            self._drain.join()
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass  # closed already


@pytest.fixture
def pty() -> Iterator[Pty]:
    p = Pty()
    yield p
    p.close()


@pytest.fixture
def dummy_image(tmp_path: Path) -> Path:
    path = tmp_path / "ESP32_GENERIC_C3-v1.27.0.bin"
    path.write_bytes(b"\xe9" + os.urandom(8191))  # an image header byte, then noise
    return path


# --- list ------------------------------------------------------------------------------------------

def test_list_without_a_board_says_what_to_check() -> None:
    if serial_ports():
        pytest.skip("an ESP32 board is plugged into this machine")
    done = redbutton("device", "list")
    assert_clean_failure(done, 1, "no ESP32 board found", "cable", "--all")
    every = redbutton("device", "list", "--all")
    assert every.returncode in (0, 1) and "Traceback" not in every.stderr
    if every.returncode == 0:
        assert every.stdout.startswith("PORT")


# --- flash: step 1, esptool ---------------------------------------------------------------------------

@pytest.mark.timeout(15)
def test_flash_to_a_port_that_does_not_exist(tmp_path: Path, dummy_image: Path) -> None:
    done = redbutton("device", "flash", "--port", tmp_path / "ttyUSB9", "--role", "button", "--firmware", dummy_image)
    assert_clean_failure(done, 1, f"{tmp_path / 'ttyUSB9'}: no such port", "device list")


@pytest.mark.timeout(20)
def test_flash_with_no_board_answering_gives_up_in_seconds(pty: Pty, dummy_image: Path) -> None:
    pty.drain()
    done = redbutton("device", "flash", "--port", pty.path, "--role", "button", "--firmware", dummy_image)
    assert_clean_failure(done, 1, f"no ESP32 answered on {pty.path}", "Failed to connect to ESP32-C3", "BOOT")
    assert pty.received, "esptool did try to talk to the board"


def test_flash_without_an_image_names_the_file_to_download(tmp_path: Path) -> None:
    cache = {"REDBUTTON_CACHE": str(tmp_path)}
    done = redbutton("device", "flash", "--port", "/dev/null", "--role", "button", env=cache)
    assert_clean_failure(done, 2, "ESP32_GENERIC_C3-v1.27.0.bin", "https://micropython.org/download/ESP32_GENERIC_C3/",
                         str(tmp_path / "micropython"), "--firmware")
    pager = redbutton("device", "flash", "--port", "/dev/null", "--role", "pager", env=cache)
    assert_clean_failure(pager, 2, "ESP32_GENERIC_S3-v1.27.0.bin")
    missing = redbutton("device", "flash", "--port", "/dev/null", "--role", "base", "--firmware", tmp_path / "no.bin")
    assert_clean_failure(missing, 2, "no.bin: no such MicroPython image")


def test_flash_finds_a_dated_image_in_the_cache(tmp_path: Path) -> None:
    """micropython.org's own file name works as downloaded; the port is checked only after that."""
    (tmp_path / "micropython").mkdir()
    (tmp_path / "micropython" / "ESP32_GENERIC_S3-20251209-v1.27.0.bin").write_bytes(b"\xe9")
    done = redbutton("device", "flash", "--port", tmp_path / "ttyACM7", "--role", "pager",
                     env={"REDBUTTON_CACHE": str(tmp_path)})
    assert_clean_failure(done, 1, "ttyACM7: no such port")


# --- flash: step 2, mpremote --------------------------------------------------------------------------

@pytest.mark.timeout(20)
def test_copying_with_no_micropython_answering(pty: Pty) -> None:
    pty.drain()
    done = redbutton("device", "flash", "--port", pty.path, "--role", "button", "--skip-micropython",
                     "--timeout", "1")
    assert_clean_failure(done, 1, f"no MicroPython answered on {pty.path} within 1 s", "safe mode")


class MicroPythonBoard:
    """Real MicroPython (the WebAssembly port under Node.js) behind a pty, as mpremote sees a board."""

    def __init__(self, folder: Path) -> None:
        node = shutil.which("node")
        if node is None or not MPY_WASM.exists():
            pytest.fail("Node.js or the MicroPython WebAssembly port is missing; run `make setup` to install it")
        script = folder / "board.mjs"
        script.write_text(BOARD_JS % {"mpy": json.dumps(MPY_WASM.as_uri())})
        self.pty = Pty()
        self.port = self.pty.path
        self.node = subprocess.Popen([node, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        assert self.node.stdin is not None and self.node.stdout is not None
        threading.Thread(target=self._pump, args=(self.node.stdout.fileno(), self.pty.master), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.pty.master, self.node.stdin.fileno()), daemon=True).start()

    @staticmethod
    def _pump(src: int, dst: int) -> None:
        try:
            while chunk := os.read(src, 4096):
                os.write(dst, chunk)
        except OSError:
            pass

    def run(self, code: str) -> str:
        done = subprocess.run([sys.executable, "-m", "mpremote", "connect", self.port, "exec", code],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def hashes(self) -> dict[str, str]:
        """sha256 of every file on the board, computed by the board."""
        walk = ("import os, hashlib, binascii\nr = {}\ndef walk(d):\n for e in os.ilistdir(d):\n"
                "  p = d + '/' + e[0] if d else e[0]\n  if e[1] == 0x4000:\n   walk(p)\n  else:\n"
                "   r[p] = binascii.hexlify(hashlib.sha256(open(p, 'rb').read()).digest()).decode()\n"
                "for top in ('lib', 'main.py', 'pins.json', 'config.json'):\n try:\n  os.stat(top)\n"
                " except OSError:\n  continue\n if top == 'lib':\n  walk('lib')\n else:\n"
                "  r[top] = binascii.hexlify(hashlib.sha256(open(top, 'rb').read()).digest()).decode()\nprint(r)")
        found: dict[str, str] = eval(self.run(walk).strip().splitlines()[-1])  # the board's repr of a dict of str
        return found

    def close(self) -> None:
        self.node.kill()
        self.node.wait()
        assert self.node.stdin is not None and self.node.stdout is not None
        self.node.stdin.close()
        self.node.stdout.close()
        self.pty.close()


def expected_base_files() -> dict[str, str]:
    """What a base station's board must hold: the whole of firmware/lib, its main, its pin map, its config."""
    def digest(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    lib = ROOT / "firmware" / "lib"
    files = {f"lib/{p.relative_to(lib).as_posix()}": digest(p)
             for p in lib.rglob("*.py") if "__pycache__" not in p.parts}
    return files | {"main.py": digest(ROOT / "firmware" / "base" / "main.py"),
                    "pins.json": digest(ROOT / "hardware" / "pins" / "base.json"),
                    "config.json": digest(ROOT / "firmware" / "base" / "config.example.json")}


@pytest.mark.timeout(90)
def test_flash_copies_the_firmware_onto_micropython(tmp_path: Path) -> None:
    board = MicroPythonBoard(tmp_path)
    try:
        done = redbutton("device", "flash", "--port", board.port, "--role", "base", "--skip-micropython",
                         "--skip-packages")
        assert done.returncode == 0, done.stderr
        assert f"flashed base on {board.port}: next `redbutton device provision" in done.stdout
        assert board.hashes() == expected_base_files()

        # A base station's own config (written as provisioning writes one) is kept when its firmware is
        # copied again.
        write_files(board.port, {"config.json": b'{"role": "base", "espnow": {"channel": 6}}'}, timeout=10)
        again = redbutton("device", "flash", "--port", board.port, "--role", "base", "--skip-micropython",
                          "--skip-packages")
        assert again.returncode == 0, again.stderr
        assert "channel\": 6" in board.run("print(open('config.json').read())")
    finally:
        board.close()


# --- monitor -------------------------------------------------------------------------------------------

def read_until(stream: IO[bytes], marker: bytes, timeout: float = 10) -> bytes:
    """What a process wrote to `stream` up to and including `marker`, read as it comes."""
    got = b""
    deadline = time.monotonic() + timeout
    while marker not in got:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {marker!r} within {timeout} s: {got!r}"
        if select.select([stream], [], [], remaining)[0]:
            chunk = os.read(stream.fileno(), 4096)
            assert chunk, f"ended before {marker!r}: {got!r}"
            got += chunk
    return got


def start_monitor(pty: Pty, *args: str) -> tuple[subprocess.Popen[bytes], bytes]:
    """Start `device monitor` and wait until it has the port open (opening empties the port's input)."""
    proc = subprocess.Popen([str(REDBUTTON), "device", "monitor", "--port", pty.path, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    return proc, read_until(proc.stderr, b"watching")


@pytest.mark.timeout(20)
def test_monitor_prints_lines_until_ready(pty: Pty) -> None:
    proc, err = start_monitor(pty, "--until", "READY", "--reset")
    os.write(pty.master, b"BOOT button btn-t1 ep=5 fw=1.0\r\n" + b"\xff\xfe\x00garbage\r\n"
             + b"READY button free=23000\r\n" + b"after the match\r\n")
    out, more = proc.communicate(timeout=10)
    stderr = (err + more).decode()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "has no RTS/DTR lines" in stderr  # a pty cannot be reset: said, not fatal
    lines = out.decode().splitlines()
    assert all(STAMP.match(line) for line in lines), lines
    assert [STAMP.sub("", line) for line in lines] == [
        "BOOT button btn-t1 ep=5 fw=1.0", "\ufffd\ufffd\ufffdgarbage", "READY button free=23000"]


@pytest.mark.timeout(20)
def test_monitor_times_out_without_a_match(pty: Pty) -> None:
    proc, err = start_monitor(pty, "--until", "^READY", "--timeout", "0.5")
    os.write(pty.master, b"BOOT button btn-t1 ep=6 fw=1.0\r\nLINK down no wifi; retry in 500 ms\r\n")
    out, more = proc.communicate(timeout=10)
    stderr = (err + more).decode()
    assert proc.returncode == 1, stderr
    assert "redbutton: " + pty.path + ": no line matched '^READY' within 0.5 s" in stderr
    assert "Traceback" not in stderr
    assert "LINK down no wifi" in out.decode()


@pytest.mark.timeout(20)
def test_monitor_stops_cleanly_on_ctrl_c(pty: Pty) -> None:
    proc, err = start_monitor(pty)
    proc.send_signal(signal.SIGINT)
    _out, more = proc.communicate(timeout=10)
    assert proc.returncode == 130
    assert (err + more).decode().endswith("redbutton: interrupted\n")


@pytest.mark.timeout(20)
def test_monitor_waits_for_a_port_that_went_away(pty: Pty) -> None:
    """A board on its native USB leaves the bus at every reset: the watch goes on, saying so."""
    proc, err = start_monitor(pty, "--until", "READY", "--timeout", "2")
    os.write(pty.master, b"SLEEP 300000 ms\r\n")
    assert proc.stdout is not None
    read_until(proc.stdout, b"SLEEP 300000 ms\n")  # printed, with its timestamp, before the port goes
    pty.close()
    _out, more = proc.communicate(timeout=10)
    stderr = (err + more).decode()
    assert proc.returncode == 1, stderr
    assert "no line matched 'READY' within 2 s" in stderr
    assert f"-- {pty.path} went away" in stderr
    assert "Traceback" not in stderr


def test_monitor_on_a_missing_port(tmp_path: Path) -> None:
    done = redbutton("device", "monitor", "--port", tmp_path / "ttyACM0", "--until", "READY")
    assert_clean_failure(done, 1, "ttyACM0: no such port")
    not_serial = redbutton("device", "monitor", "--port", "/dev/null")
    assert_clean_failure(not_serial, 2, "/dev/null: not a serial port")


@pytest.mark.timeout(10)
def test_line_reader_hands_out_a_prompt_and_finds_a_marker(pty: Pty) -> None:
    """The reader a hardware test uses: a prompt with no line ending still arrives; expect() skips to a match."""
    with LineReader(pty.path, partial_after=0.1) as reader:
        os.write(pty.master, b"rst:0x1 (POWERON)\r\nMicroPython v1.27.0\r\n>>> ")
        assert reader.read_line(5) == "rst:0x1 (POWERON)"
        assert reader.read_line(5) == "MicroPython v1.27.0"
        assert reader.read_line(5) == ">>> "
        assert reader.read_line(0.05) is None
        os.write(pty.master, b"BOOT pager pgr-1 ep=2 fw=1.0\nSTATE idle->sending press\nREADY pager free=80000\n")
        assert reader.expect(r"^READY pager", 5) == "READY pager free=80000"
