"""The venue's device settings reach the devices (`config`), and a pager's duty toggle steers paging."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

import rbproto
from gateway.broker import Mosquitto
from gateway.service import Gateway
from gateway.store import Store
from gateway.venue import Venue, VenueError, parse_venue
from waiting import wait_until


class Device:
    """One device's side of the broker, by hand: publishes signed events, collects its commands."""

    def __init__(self, broker: Mosquitto, venue: Venue, device: str) -> None:
        self.venue, self.device = venue, device
        self.key = venue.devices[device].key
        self.seq = 0
        self.commands: queue.SimpleQueue[rbproto.Message] = queue.SimpleQueue()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        c.on_message = lambda _c, _u, m: self.commands.put(
            rbproto.decode(m.topic, bytes(m.payload), lambda d: self.key))
        c.connect("127.0.0.1", broker.port)
        c.subscribe(rbproto.commands_filter(venue.site, device), qos=1)
        c.loop_start()
        self.client = c

    def send(self, mtype: str, **fields: int | str) -> None:
        self.seq += 1
        body: dict[str, int | str] = {"ep": 1, "seq": self.seq, "ts": 1767225600}
        body.update(fields)
        topic, payload = rbproto.encode(self.key, self.venue.site, self.device, mtype, body)
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def online(self) -> None:
        topic = rbproto.status_topic(self.venue.site, self.device)
        self.client.publish(topic, rbproto.encode_status(rbproto.ONLINE, "0.1.0", 1), qos=1).wait_for_publish(5)

    def heartbeat(self, cv: int) -> None:
        self.send("heartbeat", bat=3900, rssi=-60, fw="0.1.0", up=5, q=0, cv=cv)

    def next_command(self, mtype: str, timeout: float = 5.0) -> rbproto.Message:
        while True:
            msg = self.commands.get(timeout=timeout)
            if msg.mtype == mtype:
                return msg

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def devices(broker: Mosquitto, venue: Venue, gateway: Gateway) -> Iterator[dict[str, Device]]:
    made: dict[str, Device] = {}
    yield {d: made.setdefault(d, Device(broker, venue, d)) for d in venue.devices}
    for d in made.values():
        d.close()


def test_venue_device_settings_and_their_errors(venue_doc: dict[str, Any]) -> None:
    doc = dict(venue_doc)
    doc["buttons"] = {"gestures": {"short": "help", "long": "cancel", "double": "happy"}, "heartbeat_s": 600}
    doc["pagers"] = {"recovery_actions": ["apology", "free_dessert"], "rebuzz_s": 20}
    s = parse_venue(doc).device_settings
    button, pager = s.config("button"), s.config("pager")
    assert button["gest"] == "short=help,long=cancel,double=happy" and button["hb"] == 600
    assert pager["acts"] == "apology,free_dessert" and pager["rebuzz"] == 20 and pager["hb"] == 60
    assert isinstance(button["cv"], int) and button["cv"] != pager["cv"]
    assert parse_venue(doc).device_settings.config("button") == button  # the version is stable

    for bad, key in (({"buttons": {"gestures": {"triple": "help"}}}, "buttons.gestures.triple"),
                     ({"buttons": {"gestures": {"short": "Help me"}}}, "buttons.gestures.short"),
                     ({"pagers": {"recovery_actions": []}}, "pagers.recovery_actions"),
                     ({"pagers": {"recovery_actions": ["x" * 20] * 7}}, "pagers.recovery_actions"),
                     ({"pagers": {"rebuzz_s": 1}}, "pagers.rebuzz_s"),
                     ({"buttons": {"heartbeat_s": "often"}}, "buttons.heartbeat_s")):
        with pytest.raises(VenueError, match=key.replace(".", r"\.").replace("[", r"\[")):
            parse_venue({**venue_doc, **bad})


def test_config_goes_out_when_a_device_comes_online_and_when_its_version_is_stale(
        devices: dict[str, Device], venue: Venue) -> None:
    pager = devices["pgr-ana"]
    pager.online()
    cfg = pager.next_command("config")
    assert cfg.body["acts"] == "apology,fixed,replaced,discount,free_item"
    assert cfg.body["rebuzz"] == 30 and cfg.body["hb"] == 60
    pager.heartbeat(cv=cfg.body["cv"])  # up to date: nothing is sent
    pager.heartbeat(cv=0)  # a device that lost its settings
    again = pager.next_command("config")
    assert again.body["cv"] == cfg.body["cv"] and again.body["seq"] > cfg.body["seq"]
    with pytest.raises(queue.Empty):
        pager.next_command("config", timeout=0.3)

    button = devices["btn-t12"]
    button.online()
    assert button.next_command("config").body["gest"] == "short=complaint,long=cancel,double=happy"


def test_off_duty_pager_is_not_paged_and_the_toggle_outlives_a_restart(
        devices: dict[str, Device], venue: Venue, gateway: Gateway, store: Store, broker: Mosquitto,
        tmp_path: Path) -> None:
    ana, ben = devices["pgr-ana"], devices["pgr-ben"]
    ana.online()
    ben.online()
    ana.send("duty", on=0)
    wait_until(lambda: gateway.duty.get("pgr-ana") is False, what="ana off duty")
    devices["btn-t12"].send("press", kind="complaint", bat=3900)  # T12's own responder is ana
    alert = ben.next_command("alert")
    assert alert.body["table"] == "T12"
    assert {d: on for d, (on, _at) in store.duty_toggles().items()} == {"pgr-ana": False}

    gateway.stop()
    again = Gateway(venue, store, broker.url).start()
    try:
        assert again.duty == {"pgr-ana": False}
    finally:
        again.stop()


def test_alert_carries_the_customers_wait_from_the_press_time(devices: dict[str, Device],
                                                              gateway: Gateway) -> None:
    devices["pgr-ana"].online()
    devices["btn-t12"].send("press", kind="complaint", bat=3900, ts=int(gateway.clock.now()) - 90)  # queued
    alert = devices["pgr-ana"].next_command("alert")
    assert 90 <= alert.body["age"] <= 95
