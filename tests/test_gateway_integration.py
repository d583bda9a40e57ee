"""The gateway's rules through a real mosquitto: escalation on the ack timeout, a pager lost by its
last will, `kill -9` in the middle of an escalation, and a broker restart."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

import rbproto
from gateway.broker import Mosquitto, free_port
from gateway.service import Gateway
from gateway.store import Store
from gateway.venue import parse_venue
from gateway_process import Devices, GatewayProcess, site_doc, write_venue
from waiting import wait_until


def fast_doc(ack_timeout_s: int) -> dict[str, Any]:
    doc = site_doc()
    doc["escalation"] = {"ack_timeout_s": ack_timeout_s, "levels": ["server", "manager"], "repeat_s": 60}
    return doc


Started = tuple[GatewayProcess, Devices, dict[str, Any]]


@pytest.fixture
def venue_running(broker: Mosquitto, tmp_path: Path) -> Iterator[Any]:
    """start(ack_timeout_s) -> (a `redbutton gateway` process, devices talking to it, its venue doc)."""
    devices: list[Devices] = []

    def start(ack_timeout_s: int) -> Started:
        doc = fast_doc(ack_timeout_s)
        write_venue(tmp_path / "venue.toml", doc)
        devices.append(Devices(broker, doc["site"]).use(doc))
        return GatewayProcess(tmp_path / "venue.toml", broker, tmp_path / "db.sqlite"), devices[-1], doc

    yield start
    for d in devices:
        d.close()


def arrival(devices: Devices, device: str, mtype: str, **fields: Any) -> float:
    """When the command reached the device (the test's clock), waiting for it."""
    devices.command(device, mtype, **fields)
    return time.monotonic()


def test_no_ack_within_the_timeout_pages_the_manager(venue_running: Any) -> None:
    gw, devices, _doc = venue_running(ack_timeout_s=1)
    try:
        devices.press("btn-t12")
        paged = arrival(devices, "pgr-ana", "alert", table="T12")
        escalated = arrival(devices, "pgr-mia", "alert", table="T12")
        assert escalated - paged >= 0.9
        gw.logged("ESCALATE inc=1 T12: not acknowledged within 1 s")
    finally:
        gw.stop()


def test_kill_9_mid_escalation_keeps_the_deadline_and_loses_nothing(venue_running: Any, broker: Mosquitto,
                                                                    tmp_path: Path) -> None:
    first, devices, _doc = venue_running(ack_timeout_s=3)
    devices.press("btn-t12")
    paged = arrival(devices, "pgr-ana", "alert", table="T12")
    first.kill()  # SIGKILL: no clean-up of any kind
    devices.press("btn-t1")  # made while the gateway is dead: waits in its persistent session
    again = GatewayProcess(tmp_path / "venue.toml", broker, tmp_path / "db.sqlite")
    try:
        escalated = arrival(devices, "pgr-mia", "alert", table="T12")
        assert 2.8 <= escalated - paged <= 8, "the escalation kept its deadline across the restart"
        devices.command("pgr-ben", "alert", table="T1")  # the press made during the outage
        store = Store(tmp_path / "db.sqlite")
        try:
            tables = sorted(inc.table_id for i in range(1, 5) if (inc := store.incident(i)) is not None)
            assert tables == ["T1", "T12"]  # each press once, nothing lost, nothing twice
        finally:
            store.close()
    finally:
        again.stop()


def test_a_pager_lost_by_its_last_will_is_skipped(venue_running: Any, broker: Mosquitto) -> None:
    gw, devices, doc = venue_running(ack_timeout_s=30)
    try:
        status = rbproto.status_topic(doc["site"], "pgr-ana")
        pager = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{doc['site']}-pgr-ana",
                            protocol=mqtt.MQTTv311)
        pager.will_set(status, rbproto.encode_status(rbproto.OFFLINE, "0.1.0", 1), qos=1, retain=True)
        pager.connect("127.0.0.1", broker.port)
        pager.loop_start()
        pager.publish(status, rbproto.encode_status(rbproto.ONLINE, "0.1.0", 1), qos=1, retain=True).wait_for_publish(5)
        gw.logged("DEVICE pgr-ana online")
        sock = pager.socket()
        assert isinstance(sock, socket.socket)
        sock.shutdown(socket.SHUT_RDWR)  # the battery falls out: no DISCONNECT, the broker sends the will
        pager.loop_stop()
        gw.logged("DEVICE pgr-ana offline")
        devices.press("btn-t12")  # T12's own responder is ana
        devices.command("pgr-ben", "alert", table="T12")
        assert not [c for c in devices.commands if c[0] == "pgr-ana" and c[1] == "alert"]
    finally:
        gw.stop()


def test_broker_restart_reconnects_resubscribes_and_rebuilds_device_state(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "broker", port=free_port()).start()
    doc = site_doc()
    store = Store(tmp_path / "db.sqlite")
    gw = Gateway(parse_venue(doc), store, broker.url).start()
    try:
        before = Devices(broker, doc["site"]).use(doc)
        status = rbproto.status_topic(doc["site"], "pgr-ben")
        before.client.publish(status, rbproto.encode_status(rbproto.ONLINE, "0.1.0", 1), qos=1,
                              retain=True).wait_for_publish(5)
        before.close()
        wait_until(lambda: gw.device_state.get("pgr-ben") == rbproto.ONLINE, what="ben online")
        received = gw.counters.get("received")
        broker.stop()
        wait_until(lambda: not gw.io.connected.is_set(), what="the gateway notices")  # type: ignore[attr-defined]
        broker.start()  # same port, same persistence file: retained statuses survive
        wait_until(lambda: gw.io.connected.is_set(), timeout=15, what="reconnected")  # type: ignore[attr-defined]
        # the retained statuses come again with the new subscription: the registry is rebuilt
        wait_until(lambda: gw.counters.get("received") > received, what="retained statuses after the restart")
        after = Devices(broker, doc["site"]).use(doc)
        try:
            after.press("btn-t1")
            after.command("pgr-ben", "alert", table="T1")
        finally:
            after.close()
    finally:
        gw.stop()
        store.close()
        broker.stop()


def test_a_publish_the_broker_refuses_is_logged_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """MQTT 5 brings the reason back: an ACL that lets the gateway hear presses but not send
    commands is logged and counted, not silent."""
    acl = "topic read rb/#\ntopic write rb/+/+/+/evt/+\ntopic write rb/+/+/gateway/status\n"
    broker = Mosquitto(tmp_path / "broker", acl=acl).start()
    doc = site_doc()
    store = Store(tmp_path / "db.sqlite")
    gw = Gateway(parse_venue(doc), store, broker.url).start()
    devices = Devices(broker, doc["site"]).use(doc)
    try:
        devices.press("btn-t12")  # the gateway pages ana: the broker refuses the alert
        wait_until(lambda: gw.counters.get("mqtt.publish_refused") >= 1, what="a refused publish counted")
        assert any(f"refused a publish to rb/v1/{doc['site']}/" in r.getMessage() and "Not authorized" in r.getMessage()
                   for r in caplog.records)
    finally:
        devices.close()
        gw.stop()
        store.close()
        broker.stop()
