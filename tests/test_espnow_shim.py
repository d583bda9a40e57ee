"""The simulator's virtual air (simulator/shims/espnow.py) behaves as MicroPython's espnow documents,
and the firmware's EspNowLink and BaseApp work over it: the parts the end-to-end tests rely on."""

from __future__ import annotations

from typing import Any

import pytest

from simulator import shims

shims.install()

import base_app  # noqa: E402  (firmware modules: importable once the shims are installed)
import clock  # noqa: E402
import espnow_link  # noqa: E402

from rbproto import air, frame  # noqa: E402
from simulator.shims import espnow, machine, network  # noqa: E402


def board(channel: int = 1) -> tuple[Any, Any, bytes]:
    """A fresh chip with its station interface active on `channel`: (radio, wlan, mac)."""
    machine.bind(machine.Chip())
    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    wlan.config(channel=channel)
    radio = espnow.ESPNow()
    radio.active(True)
    return radio, wlan, wlan.config("mac")


@pytest.fixture(autouse=True)
def own_chip() -> Any:
    yield
    machine.bind(machine.Chip())  # leave the test thread on a chip nobody else uses


def test_one_radio_per_chip_and_the_documented_errors() -> None:
    a, _wa, _ma = board()
    assert espnow.ESPNow() is a  # a singleton on its board
    b, _wb, mac_b = board()
    assert b is not a
    with pytest.raises(OSError, match="ESP_ERR_ESPNOW_NOT_FOUND"):
        a.send(mac_b, b"hi")
    a.add_peer(mac_b)
    with pytest.raises(OSError, match="ESP_ERR_ESPNOW_EXIST"):
        a.add_peer(mac_b)
    with pytest.raises(ValueError):
        a.send(mac_b, bytes(251))
    for i in range(espnow.MAX_TOTAL_PEER_NUM - 1):
        a.add_peer(bytes((2, 9, 9, 9, 0, i)))
    with pytest.raises(OSError, match="ESP_ERR_ESPNOW_FULL"):
        a.add_peer(b"\x02\x09\x09\x09\x01\x00")
    a.active(False)
    with pytest.raises(OSError, match="ESP_ERR_ESPNOW_NOT_INIT"):
        a.send(mac_b, b"hi")


def test_acknowledged_means_heard_by_the_wifi_layer_not_read() -> None:
    a, _wa, mac_a = board()
    b, wb, mac_b = board()
    a.add_peer(mac_b)
    assert a.send(mac_b, b"one")
    assert b.recv(0) == [mac_a, b"one"]
    assert b.recv(0) == [None, None]
    assert b.peers_table[mac_a][0] == wb.sim_rssi
    b.active(False)
    assert a.send(mac_b, b"lost")  # the interface still answers; the message is gone
    b.active(True)
    assert b.recv(0) == [None, None]
    wb.config(channel=6)
    assert not a.send(mac_b, b"other channel")
    wb.config(channel=1)
    wb.active(False)
    with pytest.raises(OSError, match="ESP_ERR_ESPNOW_IF"):
        b.send(mac_a, b"x")
    assert not a.send(mac_b, b"interface down")


def test_a_full_receive_buffer_drops_but_acknowledges() -> None:
    a, _wa, _ma = board()
    b, _wb, mac_b = board()
    a.add_peer(mac_b)
    assert all(a.send(mac_b, bytes(250)) for _ in range(3))  # the default buffer holds two
    assert b.stats()[3:] == (2, 1)
    first = b.irecv(0)
    buf = first[1]
    second = b.irecv(0)
    assert second is first and second[1] is buf  # irecv hands out the same list and buffer again


def test_fault_injection() -> None:
    a, _wa, _ma = board()
    b, _wb, mac_b = board()
    a.add_peer(mac_b)
    a.sim_drop(1)
    assert not a.send(mac_b, b"dropped")
    assert b.recv(0) == [None, None]
    a.sim_lose_acks(1)
    assert not a.send(mac_b, b"heard, ack lost")
    assert b.recv(0)[1] == b"heard, ack lost"
    b.sim_up = False
    assert not a.send(mac_b, b"off the air")
    b.sim_up = True
    a.sim_loss = 1.0
    assert not a.send(mac_b, b"always lost")


def test_link_and_base_over_the_air_with_a_lost_ack() -> None:
    """A lost acknowledgement makes the device send again; the host drops the second copy."""
    base_radio, _bw, base_mac = board()
    written = bytearray()

    class Serial:
        def write(self, data: bytes) -> None:
            written.extend(data)

        def read(self) -> bytes | None:
            return None

    log: list[str] = []
    app = base_app.BaseApp(base_radio, Serial(), clock.SystemClock(), base_mac, log=log.append)
    app.start()
    machine.bind(machine.Chip())
    cfg = {"espnow": {"base_mac": base_mac.hex(), "channel": 1}}
    link = espnow_link.EspNowLink(cfg, clock.SystemClock(), lambda s: ("rb/v1/cafe/pgr-x/status", s.encode()),
                                  log=log.append)
    link.start(lambda t, p: None)
    assert link.is_up()
    link.radio.sim_lose_acks(1)
    assert link.publish("rb/v1/cafe/pgr-x/evt/ack", b"{}")  # tried twice, acknowledged the second time
    app.tick()
    host = air.Reassembler(clock.SystemClock())
    messages = []
    for kind, mac, data in frame.Decoder().feed(bytes(written)):
        if kind == frame.UP:
            m = host.add(mac, data)
            if m is not None:
                messages.append(air.split(m))
    assert messages == [("rb/v1/cafe/pgr-x/status", b"online"), ("rb/v1/cafe/pgr-x/evt/ack", b"{}")]
    assert host.errors == {air.DUPLICATE: 1}
