"""`redbutton device test`: the hardware-in-the-loop tests (tests/hil, pytest-embedded) against the
board on a serial port, as the technician runs them on the bench.

The tests live in the repository, not in the installed package: this runs them from the checkout
this module sits in, in a pytest process of its own (its output streamed), selecting the tests of
the device's role. What can be checked before pytest starts is checked here, with a message the
technician can act on (DeviceError, exit code EXIT_USAGE): the port opens, the device is in the
venue file, the tests and pytest are there."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import serial

from ..venue import VenueError, load_venue
from . import EXIT_USAGE, DeviceError, ports

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests" / "hil"
ROLES = ("button", "pager")
NEEDED = {"pytest": "pytest", "pytest_embedded": "pytest-embedded", "pytest_embedded_serial": "pytest-embedded-serial"}


def check_port(port: str) -> None:
    """Open and close the port once, so a wrong path or a missing permission is said plainly (in
    the words every `device` command uses) rather than as a failure inside every test."""
    ports.check_port(port)
    try:
        serial.serial_for_url(port, baudrate=115200, timeout=0.1).close()
    except serial.SerialException as e:
        raise ports.open_error(port, e) from e
    except ValueError as e:
        raise DeviceError(f"{port}: cannot open: {e}", EXIT_USAGE) from e


def role_of(venue_path: Path, device_id: str) -> str:
    try:
        venue = load_venue(venue_path)
    except (OSError, VenueError) as e:
        raise DeviceError(f"cannot read the venue file: {e}", EXIT_USAGE) from e
    dev = venue.devices.get(device_id)
    if dev is None or dev.role not in ROLES:
        raise DeviceError(f"{device_id!r} is not a button or pager in {venue_path}", EXIT_USAGE)
    return dev.role


def command(port: str, venue_path: Path, device_id: str, broker_url: str, role: str,
            extra_args: Sequence[str] = ()) -> list[str]:
    """The pytest command line for one board: its role's tests only."""
    return [sys.executable, "-m", "pytest", str(TESTS), "-m", role, "--port", port,
            "--hil-venue", str(Path(venue_path).resolve()), "--hil-device", device_id, "--hil-broker", broker_url,
            "-p", "no:cacheprovider", *extra_args]


def run(port: str, venue_path: Path, device_id: str, broker_url: str, extra_args: Sequence[str] = ()) -> int:
    """Run the board's tests; -> pytest's exit code (0: all passed). Raises DeviceError when they
    cannot be run at all. `extra_args` go to pytest as they are (-k, -x, --hil-wait 120, ...)."""
    if not (TESTS / "conftest.py").is_file():
        raise DeviceError(f"the hardware tests are not here ({TESTS}): run `redbutton device test` from a checkout "
                          "of the repository (pip install -e .)", EXIT_USAGE)
    missing = [name for module, name in NEEDED.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise DeviceError(f"the hardware tests need {', '.join(missing)}: pip install -e '.[dev]'", EXIT_USAGE)
    role = role_of(venue_path, device_id)
    check_port(port)
    return subprocess.run(command(port, venue_path, device_id, broker_url, role, extra_args), cwd=ROOT).returncode
