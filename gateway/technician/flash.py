"""`redbutton device flash`: MicroPython onto a board with esptool, then the role's firmware with mpremote.

Both tools run as subprocesses of this interpreter through their own command lines, which are
their stable interfaces: their output drives the progress bars and their error text becomes the
message. What goes onto the board comes from the repository, not from a list kept here:
firmware/manifest.py names the shared modules and the micropython-lib packages, firmware/<role>/
the main file, hardware/pins/<role>.json the pin map and the board (hence the chip)."""

from __future__ import annotations

import ast
import json
import os
import re
import selectors
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from . import EXIT_NO_ANSWER, DeviceError
from .ports import check_port, is_path, no_such_port

if TYPE_CHECKING:  # rich is imported when flashing, not by every `redbutton` command
    from rich.console import Console
    from rich.progress import Progress

ROOT = Path(__file__).resolve().parents[2]
ROLES = ("button", "pager", "base")
CHIPS = ("esp32c3", "esp32s3")
# The MicroPython release the firmware is tested against (the WebAssembly port of the same version).
MICROPYTHON_VERSION = "1.27.0"
MICROPYTHON_BOARD = {"esp32c3": "ESP32_GENERIC_C3", "esp32s3": "ESP32_GENERIC_S3"}
CACHE_ENV = "REDBUTTON_CACHE"
IMAGE_OFFSET = "0x0"  # where the C3's and S3's bootloader starts (the original ESP32's is 0x1000)
CONNECT_ATTEMPTS = 3  # about 1 s each: a missing board fails in seconds, not esptool's default 7
COPY_IDLE_S = 30.0  # a board that stops answering mid-copy
MIP_IDLE_S = 60.0  # micropython.org is slow to answer now and then
PROBE = "import os;print(os.listdir('/'))"


# --- what goes onto the board ---------------------------------------------------------------------

@dataclass(frozen=True)
class Firmware:
    """The files and packages of one role, as (source on the host, path on the board)."""

    role: str
    chip: str  # the chip of the role's board, from its pin map
    board: str
    files: list[tuple[Path, str]]
    packages: list[str]
    default_config: Path | None = None  # copied only onto a board that has no /config.json


def repository(root: Path = ROOT) -> Path:
    if not (root / "firmware" / "manifest.py").is_file() or not (root / "hardware" / "pins").is_dir():
        raise DeviceError(f"the firmware is not next to the installed package (no {root}/firmware/manifest.py "
                          "or hardware/pins/): install redbutton from a checkout of the project (pip install -e)")
    return root


def read_manifest(path: Path) -> tuple[list[str], list[tuple[Path, str]]]:
    """The `require`d packages and the (source, board path) of each `module` and `package` of a manifest.

    Read, not run: the same calls MicroPython's freezer understands, with literal arguments. Frozen
    modules import at the top level, so on a board's filesystem they all go to /lib/."""
    packages: list[str] = []
    files: list[tuple[Path, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        try:
            args = [ast.literal_eval(a) for a in node.args]
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
        except ValueError:
            raise DeviceError(f"{path}:{node.lineno}: only literal arguments are understood") from None
        base = path.parent / kwargs.get("base_path", ".")
        if not args or not isinstance(args[0], str):
            raise DeviceError(f"{path}:{node.lineno}: {node.func.id}() needs a name")
        if node.func.id == "require":
            packages.append(args[0])
        elif node.func.id == "module":
            files.append((base / args[0], f"lib/{args[0]}"))
        elif node.func.id == "package":
            folder = base / args[0]
            if not folder.is_dir():
                raise DeviceError(f"{path}:{node.lineno}: package folder {folder} does not exist")
            files += [(src, f"lib/{src.relative_to(base).as_posix()}") for src in sorted(folder.rglob("*.py"))]
        else:
            raise DeviceError(f"{path}:{node.lineno}: {node.func.id}() is not understood by `redbutton device flash`")
    for src, _ in files:
        if not src.is_file():
            raise DeviceError(f"{path} names {src}, which does not exist")
    return packages, files


def board_chip(board: str) -> str | None:
    """The chip of a board named in a pin map ("Seeed Studio XIAO ESP32C3" -> esp32c3)."""
    found = re.search(r"ESP32-?(C3|S3)", board, re.IGNORECASE)
    return f"esp32{found.group(1).lower()}" if found else None


def role_firmware(role: str, root: Path = ROOT) -> Firmware:
    root = repository(root)
    pins = root / "hardware" / "pins" / f"{role}.json"
    main = root / "firmware" / role / "main.py"
    for needed in (pins, main):
        if not needed.is_file():
            raise DeviceError(f"{needed} is missing: the {role} cannot be flashed without it")
    board = str(json.loads(pins.read_text()).get("board", ""))
    chip = board_chip(board)
    if chip is None:
        raise DeviceError(f"{pins}: cannot tell the chip of board {board!r}; give --chip")
    packages, files = read_manifest(root / "firmware" / "manifest.py")
    example = root / "firmware" / role / "config.example.json"
    return Firmware(role, chip, board, [*files, (main, "main.py"), (pins, "pins.json")], packages,
                    example if role == "base" and example.is_file() else None)


def cache_folder() -> Path:
    """Where MicroPython images are looked for: $REDBUTTON_CACHE/micropython, else ~/.cache/redbutton/micropython."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]) / "micropython"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "redbutton" / "micropython"


def find_image(chip: str, folder: Path, role: str) -> Path:
    """The MicroPython image for `chip` in `folder`, by micropython.org's file name (dated or not)."""
    board = MICROPYTHON_BOARD[chip]
    major_minor = MICROPYTHON_VERSION.rsplit(".", 1)[0]
    pattern = re.compile(rf"{board}-(?:\d{{8}}-)?v{re.escape(major_minor)}(?:\.(\d+))?\.bin")
    found = [(int(m.group(1) or 0), p) for p in (folder.iterdir() if folder.is_dir() else ())
             if (m := pattern.fullmatch(p.name))]
    if not found:
        raise DeviceError(
            f"no MicroPython image for the {role} ({chip}) in {folder}: download {board}-v{MICROPYTHON_VERSION}.bin "
            f"from https://micropython.org/download/{board}/ (the v{MICROPYTHON_VERSION} .bin; its dated name "
            f"{board}-YYYYMMDD-v{MICROPYTHON_VERSION}.bin is fine too) and put it in {folder}, "
            f"or give --firmware FILE")
    return max(found)[1]


# --- running esptool and mpremote -----------------------------------------------------------------

@dataclass
class ToolRun:
    returncode: int | None  # None: stopped because it went silent for too long
    stdout: list[str] = field(default_factory=list)
    stderr: str = ""


def run_tool(argv: Sequence[str], on_line: Callable[[str], None] = lambda _line: None,
             idle_timeout: float | None = None) -> ToolRun:
    """Run a tool, handing each stdout line (split at \\r too: progress bars) to `on_line` as it comes.

    A tool that prints nothing for `idle_timeout` seconds is stopped: mpremote waits for ever for a
    board that never answers on a pseudo-terminal."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8", NO_COLOR="1", COLUMNS="200")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    run = ToolRun(None)
    pending = b""
    err = bytearray()
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        sel.register(proc.stderr, selectors.EVENT_READ)
        try:
            while sel.get_map():
                ready = sel.select(idle_timeout)
                if not ready:
                    proc.kill()
                    break
                for key, _ in ready:
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        sel.unregister(key.fileobj)
                    elif key.fileobj is proc.stderr:
                        err += chunk
                    else:
                        *lines, pending = re.split(rb"[\r\n]", pending + chunk)
                        for raw in lines:
                            if line := raw.decode("utf-8", "replace").strip():
                                run.stdout.append(line)
                                on_line(line)
            else:
                if pending.strip():
                    run.stdout.append(pending.decode("utf-8", "replace").strip())
                run.returncode = proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    run.stderr = err.decode("utf-8", "replace")
    return run


def esptool_error(stderr: str) -> str:
    """esptool's own reason: the text after "A fatal error occurred:", else its last line."""
    found = re.search(r"A fatal error occurred: (.*?)(?:\n\s*\n|\nFor troubleshooting|\nHint:|\Z)", stderr, re.S)
    if found:
        return " ".join(found.group(1).split())
    lines = [line for line in stderr.splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no reason given"


def mpremote_error(run: ToolRun) -> str:
    """mpremote's reason: its `mpremote: ...` line, or the last line of a traceback it did not catch."""
    lines = [line.strip() for line in run.stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("mpremote: "):
            return line.removeprefix("mpremote: ")
    if lines:
        return re.sub(r"^[\w.]*Error: ", "", lines[-1])
    return f"exit status {run.returncode}"


def mpremote(port: str, *command: str) -> list[str]:
    return [sys.executable, "-m", "mpremote", "connect", port, *command]


# --- the steps -----------------------------------------------------------------------------------

def write_micropython(port: str, chip: str, baud: int, image: Path, progress: Progress) -> None:
    """Erase the whole flash and write the MicroPython image (esptool resets the board afterwards)."""
    task = progress.add_task("MicroPython: connecting", total=100)
    phases = (("Erasing", "MicroPython: erasing the flash"), ("Writing at", "MicroPython: writing"),
              ("Hash of data verified", "MicroPython: verified"), ("Hard resetting", "MicroPython: resetting"))

    def on_line(line: str) -> None:
        for start, text in phases:
            if line.startswith(start):
                progress.update(task, description=text)
        if line.startswith("Writing at") and (pct := re.search(r"(\d+(?:\.\d+)?)\s*%", line)):
            progress.update(task, completed=float(pct.group(1)))
        if line.startswith(("Chip type:", "Chip is", "Detecting chip type")):
            progress.console.print(f"  esptool: {line}", highlight=False)

    run = run_tool([sys.executable, "-m", "esptool", "--chip", chip, "--port", port, "--baud", str(baud),
                    "--connect-attempts", str(CONNECT_ATTEMPTS),
                    "write-flash", "--erase-all", IMAGE_OFFSET, str(image)], on_line)
    if run.returncode != 0:
        reason = esptool_error(run.stderr)
        if "Failed to connect" in reason or "No serial data received" in reason:
            raise DeviceError(
                f"no ESP32 answered on {port} ({reason.rstrip('.')}). Check that the USB cable carries data and that "
                "`redbutton device list` sees the board; if it still fails, hold BOOT while pressing RESET "
                "(or while plugging it in) to start its bootloader by hand, and try again", EXIT_NO_ANSWER)
        if "Could not open" in reason:
            raise DeviceError(f"{port}: esptool could not open it ({reason}): is another program "
                              "(a monitor, the serial bridge) using it?", EXIT_NO_ANSWER)
        raise DeviceError(f"esptool could not flash {port}: {reason}", EXIT_NO_ANSWER)
    progress.update(task, completed=100, description="MicroPython: written")


def wait_for_port(port: str, timeout: float) -> None:
    """A board on its native USB leaves the bus while it resets; wait for its port to be back."""
    deadline = time.monotonic() + timeout
    while is_path(port) and not os.path.exists(port):
        if time.monotonic() > deadline:
            raise no_such_port(port)
        time.sleep(0.1)  # polling for the device node udev creates


def probe(port: str, timeout: float) -> list[str]:
    """Wait for MicroPython's raw REPL on `port` and list the board's root folder.

    Retried until `timeout`: a freshly written MicroPython formats its filesystem at first boot, and
    an S3 on its native USB comes back as another USB device once MicroPython runs."""
    deadline = time.monotonic() + timeout
    while True:
        run = run_tool(mpremote(port, "exec", PROBE), idle_timeout=max(0.1, deadline - time.monotonic()))
        if run.returncode == 0 and run.stdout:
            try:
                names = ast.literal_eval(run.stdout[-1])
            except (ValueError, SyntaxError):
                names = None
            if isinstance(names, list):
                return [str(n) for n in names]
        # A quick failure is retried: the board may still be booting, or its USB port re-appearing.
        if run.returncode is None or time.monotonic() >= deadline:
            reason = "" if run.returncode is None else f" ({mpremote_error(run)})"
            raise DeviceError(
                f"no MicroPython answered on {port} within {timeout:g} s{reason}. Is MicroPython on the board "
                "(flash without --skip-micropython)? Is another program (a monitor, the serial bridge) using the "
                "port? If its app ignores Ctrl-C, hold the main key while plugging it in (safe mode) and try again",
                EXIT_NO_ANSWER)
        time.sleep(0.5)


def copy_files(port: str, files: Sequence[tuple[Path, str]], progress: Progress | None = None,
               what: str = "firmware") -> None:
    """Copy (host file, board path) pairs in one mpremote session, one `fs cp` per file so each shows.

    mpremote skips a file the board already holds byte for byte, so copying again is cheap."""
    folders = sorted({dest.rsplit("/", 1)[0] for _, dest in files if "/" in dest}, key=len)
    mkdir = f"import os\nfor d in {tuple(folders)!r}:\n try:\n  os.mkdir(d)\n except OSError:\n  pass"
    command = ["exec", mkdir]
    for src, dest in files:
        command += ["+", "fs", "cp", str(src), f":{dest}"]
    task = progress.add_task(f"{what}: copying", total=len(files)) if progress is not None else None
    started = 0

    def on_line(line: str) -> None:
        nonlocal started
        if line.startswith("cp ") and progress is not None and task is not None:
            progress.update(task, completed=started, description=f"{what}: {line.split()[-1]}")
            started += 1

    run = run_tool(mpremote(port, *command), on_line, idle_timeout=COPY_IDLE_S)
    if run.returncode is None:
        raise DeviceError(f"the board on {port} stopped answering while the {what} was copied: "
                          "plug it in again and run the same command again", EXIT_NO_ANSWER)
    if run.returncode != 0:
        raise DeviceError(f"copying the {what} to {port} failed: {mpremote_error(run)}", EXIT_NO_ANSWER)
    if progress is not None and task is not None:
        progress.update(task, completed=len(files), description=f"{what}: {len(files)} files")


def copy_firmware(port: str, fw: Firmware, on_board: list[str], progress: Progress) -> None:
    files = list(fw.files)
    if fw.default_config is not None and "config.json" not in on_board:
        files.append((fw.default_config, "config.json"))
    copy_files(port, files, progress)


def write_files(port: str, contents: dict[str, bytes], timeout: float = 20.0, what: str = "files") -> None:
    """Files made on this computer (a config, a certificate) onto the MicroPython board at `port`.

    For commands that write a board after `flash`: the same checks, waits and messages."""
    check_port(port)
    with tempfile.TemporaryDirectory(prefix="redbutton-") as folder:
        files = []
        for name, data in contents.items():
            src = Path(folder, name)
            src.parent.mkdir(parents=True, exist_ok=True)
            src.write_bytes(data)
            files.append((src, name))
        probe(port, timeout)
        copy_files(port, files, what=what)


def install_packages(port: str, packages: list[str], progress: Progress) -> None:
    """micropython-lib packages through `mpremote mip`, which downloads them on this computer."""
    task = progress.add_task("packages: " + ", ".join(packages), total=len(packages))

    def on_line(line: str) -> None:
        if line == "Done":
            progress.advance(task)

    run = run_tool(mpremote(port, "mip", "install", *packages), on_line, idle_timeout=MIP_IDLE_S)
    if run.returncode != 0:
        reason = "no answer" if run.returncode is None else mpremote_error(run)
        raise DeviceError(
            f"installing {', '.join(packages)} on {port} failed: {reason}. mpremote downloads them from "
            "micropython.org on this computer, which needs internet; the firmware itself is on the board: "
            "rerun with --skip-micropython once online (or --skip-packages if the board has them)", EXIT_NO_ANSWER)
    progress.update(task, completed=len(packages))


@dataclass(frozen=True)
class FlashOptions:
    port: str
    role: str
    firmware: Path | None = None
    chip: str | None = None  # None: the role's board's chip; "auto": esptool detects it
    baud: int = 460800
    skip_micropython: bool = False
    skip_packages: bool = False
    timeout: float = 20.0  # for MicroPython to answer after the reset


def flash(opts: FlashOptions, console: Console | None = None) -> Firmware:
    """Both steps, everything checked on the host before the board is touched."""
    fw = role_firmware(opts.role)
    chip = opts.chip or fw.chip
    image = None
    if not opts.skip_micropython:
        image = opts.firmware or find_image(fw.chip if chip == "auto" else chip, cache_folder(), opts.role)
        if not image.is_file():
            raise DeviceError(f"{image}: no such MicroPython image")
    check_port(opts.port)
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        if image is not None:
            progress.console.print(f"writing {image.name} to the {opts.role}'s {chip} on {opts.port}", highlight=False)
            write_micropython(opts.port, chip, opts.baud, image, progress)
            wait_for_port(opts.port, opts.timeout)
        on_board = probe(opts.port, opts.timeout)
        copy_firmware(opts.port, fw, on_board, progress)
        if fw.packages and not opts.skip_packages:
            install_packages(opts.port, fw.packages, progress)
    return fw
