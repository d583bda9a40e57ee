"""`redbutton device test` (gateway/technician/hil.py) end to end: the real-board path of these
tests, run by the technician's command against a simulated board that `redbutton sim device`
serves on a pseudo-terminal in a process of its own, with its provisioned config.json, a real
broker and a real `redbutton gateway` process.

Only the hands differ from a bench run: `--hil-hands console` types the presses (and the reset:
a pty has no RTS line) instead of asking a person."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import serial

from gateway.broker import Mosquitto
from gateway.technician import EXIT_NO_ANSWER, EXIT_USAGE, DeviceError, hil
from gateway_process import GatewayProcess, site_doc, write_venue

from .rig import HumanHands

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def venue_file(tmp_path: Path) -> tuple[Path, dict[str, object]]:
    doc = site_doc()
    path = tmp_path / "venue.toml"
    write_venue(path, doc)
    return path, doc


def provisioned_flash(folder: Path, doc: dict[str, object], device: str, broker: Mosquitto) -> Path:
    """A flash folder as provisioning leaves a board: config.json with the broker's host and port
    and the board's own broker login, no simulator settings but a short awake time."""
    keys = {d["id"]: d["key"] for d in doc["devices"]}  # type: ignore[attr-defined]
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "role": "button", "site": doc["site"], "device": device, "key": keys[device], "link": "mqtt",
        "wifi_ssid": "venue-wifi", "wifi_password": "secret", "broker_host": "127.0.0.1",
        "broker_port": broker.port, "broker_tls": False, "mqtt_user": device, "mqtt_password": "secret",
        "awake_ms": 1000}))
    return folder


@pytest.fixture
def board_console(venue_file: tuple[Path, dict[str, object]], broker: Mosquitto,
                  tmp_path: Path) -> Iterator[str]:
    """`redbutton sim device --flash DIR`: -> the console's port, as the command prints it."""
    flash = provisioned_flash(tmp_path / "board", venue_file[1], "btn-t12", broker)
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "sim", "device", "--flash", str(flash)],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("console /dev/"), first
        yield first.split()[1]
    finally:
        proc.terminate()
        code = proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert code == 0
    assert json.loads((flash / "config.json").read_text())["broker_host"] == "127.0.0.1"  # left as it was


def test_a_port_that_does_not_exist_is_a_clear_error(venue_file: tuple[Path, dict[str, object]]) -> None:
    done = subprocess.run([sys.executable, "-m", "gateway.cli", "device", "test", "--port", "/dev/ttyRB-none",
                           "--venue", str(venue_file[0]), "--device", "btn-t12", "--broker", "mqtt://127.0.0.1:1883"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == EXIT_NO_ANSWER and "Traceback" not in done.stderr
    assert done.stderr.startswith("redbutton: /dev/ttyRB-none: no such port")


def test_a_device_not_in_the_venue_is_a_clear_error(venue_file: tuple[Path, dict[str, object]]) -> None:
    with pytest.raises(DeviceError, match=r"'btn-t99' is not a button or pager") as e:
        hil.run("/dev/null", venue_file[0], "btn-t99", "mqtt://127.0.0.1:1883")
    assert e.value.exit_code == EXIT_USAGE


def test_a_port_without_modem_lines_asks_the_technician_to_reset() -> None:
    """A pty (or a socket) cannot pulse RTS: the human hands ask for the reset button instead."""
    master, slave = os.openpty()
    line = serial.serial_for_url(os.ttyname(slave), timeout=0.05)
    told: list[str] = []
    try:
        HumanHands(SimpleNamespace(serial=SimpleNamespace(proc=line)), "button", told.append, 30).reset()
    finally:
        line.close()
        os.close(master)
        os.close(slave)
    assert told == ["press the board's reset (EN) button (within 30 s)"]


def test_the_button_tests_pass_through_the_technician_command(
        venue_file: tuple[Path, dict[str, object]], broker: Mosquitto, board_console: str, tmp_path: Path) -> None:
    gateway = GatewayProcess(venue_file[0], broker, tmp_path / "venue.db")
    try:
        report = tmp_path / "hil.xml"
        code = hil.run(board_console, venue_file[0], "btn-t12", broker.url,
                       ["--hil-hands", "console", "--hil-min-free", "0",  # a simulated board has no MicroPython heap
                        "--junitxml", str(report), "-o", "junit_family=xunit1"])
    finally:
        gateway.stop()
    assert code == 0
    cases = {c.get("name"): [r.tag for r in c] for c in ET.parse(report).getroot().iter("testcase")}
    assert cases == {"test_after_a_reset_it_boots_joins_the_broker_and_is_ready[button]": [],
                     "test_a_press_is_signed_sent_and_answered": [],
                     "test_the_press_that_wakes_it_from_deep_sleep_is_sent": []}, cases
