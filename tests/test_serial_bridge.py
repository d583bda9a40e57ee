"""The ESP-NOW path end to end: firmware devices on the virtual air, the firmware's base station on a
real pseudo-terminal, the serial bridge reading it with pyserial, a real mosquitto and gateway.

Nothing here is a mock: the only stand-in is the air between the radios (the espnow shim)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import rbproto
from gateway.broker import Mosquitto
from gateway.serial_bridge import hexmac
from gateway.service import Gateway
from gateway.store import Store
from gateway.venue import Venue
from rbproto import air, frame
from waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
ESPNOW = ("btn-t12", "pgr-ana")  # the rest of the venue stays on WiFi/MQTT
NOISE = b"\x13\x99 line noise \xfe\xff\x7f\x05" * 3 + b"\x00"  # a burst, ended by a delimiter


@pytest.fixture
def espnow_sim(venue: Venue, broker: Mosquitto, gateway: Gateway, tmp_path: Path) -> Iterator[Any]:
    from simulator.venue_sim import SimulatedVenue

    s = SimulatedVenue(venue, broker.url, tmp_path / "devices", espnow=ESPNOW).start()
    yield s
    s.stop()


def corrupted(item: tuple[int, bytes, bytes]) -> bytes:
    """A frame with one bit of its last data byte flipped: the COBS chain holds, the CRC does not."""
    data = bytearray(frame.encode(*item))
    data[-4] ^= 0x04  # before the two CRC bytes and the delimiter
    return bytes(data)


def dropped(gw: Gateway) -> dict[str, int]:
    return {k: v for k, v in gw.counters.snapshot().items() if k.startswith("dropped.")}


def test_press_over_espnow_pages_and_the_feedback_comes_back_through_the_base(
        espnow_sim: Any, gateway: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    base, bridge = espnow_sim.base, espnow_sim.bridge
    button, pager = espnow_sim.button_at("T12"), espnow_sim.pager_of("ana")
    assert button.cfg["link"] == "espnow" and pager.cfg["link"] == "espnow"
    wait_until(lambda: gateway.device_state.get("pgr-ana") == rbproto.ONLINE, what="pager online via the bridge")

    base.inject(NOISE)
    base.inject(corrupted((frame.UP, bridge.macs["btn-t12"], b"\x01\x00\x01x")))
    base.inject(b"\x01\xfe" * frame.MAX_ENCODED + b"\x00")
    c = bridge.counters
    wait_until(lambda: c.get("serial.garbage") >= 1 and c.get("serial.bad_crc") == 1
               and c.get("serial.oversized") == 1, what="damage counted")

    before_call = len(caplog.records)
    button.press()
    hit = pager.wait_for(r"ALERT inc=(\d+) shown")
    assert hit, "the pager on ESP-NOW never showed the alert"
    assert button.wait_for("FEEDBACK delivered")
    base.inject(NOISE)  # more noise between the steps: the bridge keeps going
    pager.press()
    wait_until(lambda: button.state == rbproto.ACKNOWLEDGED, what="acknowledged on the button")

    assert c.get("up.published") >= 4  # two statuses, the press, the ack (plus heartbeats)
    assert c.get("down.acked") >= 3  # alert, feedback delivered, feedback acknowledged
    # Every message of the call to its two boards was taken. (Settings sent as a board came online may
    # reach it back in deep sleep, on a loaded machine; it gets them again at its next heartbeat.)
    unheard = [r.getMessage() for r in caplog.records[before_call:]
               if r.getMessage().startswith("DOWN not acknowledged by")]
    for dev in ("btn-t12", "pgr-ana"):
        assert not [m for m in unheard if hexmac(bridge.macs[dev]) in m], f"a message to {dev} was not taken"
    assert dropped(gateway) == {}, "the gateway refused something the bridge published"
    assert base.wait_for(r"^UP mac=[0-9a-f]{12} bytes=\d+$") and base.wait_for(r"^DOWN mac=[0-9a-f]{12} ok$")
    assert any(line.startswith("UP mac=") for line in bridge.base_log)  # the base's print(), off the port


def test_press_made_off_the_air_waits_in_the_outbox_and_arrives_once_back(
        espnow_sim: Any, gateway: Gateway, store: Store) -> None:
    button = espnow_sim.button_at("T12")
    assert button.wait_for(r"^HEARTBEAT")
    button.set_link(False)  # the base station is out of reach
    button.press()
    assert button.wait_for(r"^PRESS seq=\d+ queued")
    assert store.active_incident("T12") is None
    button.set_link(True)
    assert button.wait_for(r"^PRESS seq=\d+ forwarded", timeout=15)
    wait_until(lambda: store.active_incident("T12"), what="the queued press recorded")
    assert button.wait_for("FEEDBACK delivered")


def test_bridge_drops_what_is_not_a_device_event_of_the_venue(espnow_sim: Any, venue: Venue) -> None:
    base, bridge = espnow_sim.base, espnow_sim.bridge
    mac = b"\x02\x00\x00\x00\x00\x42"
    key = venue.key_for("btn-t1")
    assert key is not None
    body = {"ep": 1, "seq": 1, "ts": 1767225600, "kind": "complaint", "bat": 3900}
    cases = {
        "wrong_site": rbproto.encode(key, "elsewhere", "btn-t1", "press", body),
        "unknown_device": rbproto.encode(key, venue.site, "btn-zz", "press", body),
        "bad_topic": (rbproto.topic(venue.site, "btn-t1", "alert"), b"{}"),  # a command from the air
    }
    for i, (t, payload) in enumerate(cases.values()):
        for p in air.fragment(200 + i, air.join(t, payload)):
            base.inject(frame.encode(frame.UP, mac, p))
    base.inject(frame.encode(frame.UP, mac, b"\x07\x00\x01no topic line"))
    c = bridge.counters
    wait_until(lambda: c.get("serial.wrong_site") == 1 and c.get("serial.unknown_device") == 1
               and c.get("serial.bad_topic") == 2, what="refusals counted")
    assert mac not in bridge.macs.values()


def test_port_lost_marks_espnow_devices_offline_and_back(espnow_sim: Any, gateway: Gateway) -> None:
    base, bridge = espnow_sim.base, espnow_sim.bridge
    wait_until(lambda: gateway.device_state.get("pgr-ana") == rbproto.ONLINE, what="pager online")
    base.unplug()
    wait_until(lambda: bridge.counters.get("serial.port_lost") == 1, what="port lost")
    wait_until(lambda: gateway.device_state.get("pgr-ana") == rbproto.OFFLINE, what="pager marked offline")
    assert gateway.device_state.get("pgr-ben") == rbproto.ONLINE  # WiFi devices are not the bridge's
    base.plug()
    assert bridge.wait_open(5)
    wait_until(lambda: gateway.device_state.get("pgr-ana") == rbproto.ONLINE, what="pager online again")
    button, pager = espnow_sim.button_at("T12"), espnow_sim.pager_of("ana")
    button.press()
    assert pager.wait_for(r"ALERT inc=\d+ shown")
    assert button.wait_for("FEEDBACK delivered")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_bridge_shows_the_base_log_and_ends_cleanly(sig: int, broker: Mosquitto, tmp_path: Path) -> None:
    from simulator.basestation import VirtualBaseStation

    base = VirtualBaseStation(state_dir=tmp_path / "base").start()
    cli = Path(sys.executable).parent / "redbutton"
    proc = subprocess.Popen([str(cli), "bridge", "--venue", str(ROOT / "examples" / "demo-venue.toml"),
                             "--broker", broker.url, "--port", base.port],
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if "serial port" in line and "open" in line:
                break
        assert any("open" in line for line in seen), "".join(seen)
        base.log("hello from the base station")  # its print(): a log line on the serial port
        for line in proc.stderr:
            seen.append(line)
            if "hello from the base station" in line:
                break
        assert "redbutton.base: hello from the base station" in seen[-1], "".join(seen)
        proc.send_signal(sig)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        base.stop()
