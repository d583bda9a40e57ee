"""The newcomer's commands: `redbutton sign` piped into mosquitto_pub, and `redbutton demo --once`."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DEMO_VENUE
from gateway.broker import Mosquitto
from gateway.service import Gateway
from gateway.store import Store
from waiting import wait_until

BIN = Path(sys.executable).parent


def test_signed_press_from_mosquitto_pub_opens_an_incident(broker: Mosquitto, tmp_path: Path) -> None:
    pub = shutil.which("mosquitto_pub")
    if pub is None:
        pytest.fail("mosquitto_pub is missing: `make setup` installs mosquitto-clients")
    from gateway.venue import load_venue

    venue = load_venue(DEMO_VENUE)  # site "demo": this test owns that site on the shared broker
    store = Store(tmp_path / "x.db")
    gw = Gateway(venue, store, broker.url).start()
    try:
        out = subprocess.run([BIN / "redbutton", "sign", "--venue", DEMO_VENUE, "--device", "btn-t14", "-q"],
                             check=True, capture_output=True, text=True).stdout.strip()
        subprocess.run([pub, "-p", str(broker.port), "-q", "1", "-t", "rb/v1/demo/btn-t14/evt/press", "-m", out],
                       check=True)
        inc = wait_until(lambda: store.active_incident("T14"), what="incident at T14")
        assert inc.kind == "complaint"
    finally:
        gw.stop()
        store.close()


def test_demo_once_runs_every_step_and_leaves_no_process() -> None:
    proc = subprocess.run([BIN / "redbutton", "demo", "--once"], capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for step in ("pager buzzes", "button shows 'acknowledged'", "SQLite: incident 1 acknowledged by ana",
                 "every step happened", "stopped: devices, gateway, broker"):
        assert step in proc.stdout, proc.stdout
    broker_dir = next(ln.split("SQLite ")[1].rsplit("/", 1)[0] for ln in proc.stdout.splitlines() if "SQLite " in ln)
    left = subprocess.run(["pgrep", "-f", f"{broker_dir}/broker/mosquitto.conf"], capture_output=True, text=True)
    assert left.stdout.strip() == "", f"the demo's mosquitto ({broker_dir}) is still running"


def test_interrupted_demo_stops_everything() -> None:
    """Ctrl-C on `make demo`: the demo stops its devices, gateway and broker, and exits."""
    proc = subprocess.Popen([BIN / "redbutton", "demo"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    lines: list[str] = []
    for line in proc.stdout:
        lines.append(line)
        if "The venue keeps running" in line:
            break
    else:
        raise AssertionError("demo ended before it was running: " + "".join(lines))
    broker_dir = next(ln.split("SQLite ")[1].rsplit("/", 1)[0] for ln in lines if "SQLite " in ln)
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, rest
    assert "stopped: devices, gateway, broker" in rest
    left = subprocess.run(["pgrep", "-f", f"{broker_dir}/broker/mosquitto.conf"], capture_output=True, text=True)
    assert left.stdout.strip() == "", "the demo's mosquitto outlived it"
    assert not Path(broker_dir).exists(), "the demo's temporary folder was left behind"
