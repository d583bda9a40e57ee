"""Every kind of bad input is refused, logged and counted, and the gateway keeps serving."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

import rbproto
from gateway.broker import Mosquitto
from gateway.service import Gateway
from gateway.store import Store
from gateway.venue import Venue
from waiting import wait_until


@pytest.fixture
def publisher(broker: Mosquitto) -> Iterator[mqtt.Client]:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    yield c
    c.disconnect()
    c.loop_stop()


class Sender:
    """Publishes as a device would, with full control over ep/seq and the bytes."""

    def __init__(self, client: mqtt.Client, venue: Venue, gateway: Gateway) -> None:
        self.client, self.venue, self.gw = client, venue, gateway

    def raw(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def signed(self, device: str, mtype: str, body: dict[str, int | str], key: bytes | None = None) -> bytes:
        topic, payload = rbproto.encode(key or self.venue.devices[device].key, self.venue.site, device, mtype, body)
        self.raw(topic, payload)
        return payload

    def press(self, device: str, ep: int, seq: int) -> bytes:
        return self.signed(device, "press", {"ep": ep, "seq": seq, "ts": 1767225600, "kind": "complaint", "bat": 3900})

    def expect(self, counter: str, n: int = 1) -> None:
        wait_until(lambda: self.gw.counters.get(counter) >= n, what=f"{counter} >= {n}: {self.gw.counters.snapshot()}")


@pytest.fixture
def send(publisher: mqtt.Client, venue: Venue, gateway: Gateway) -> Sender:
    return Sender(publisher, venue, gateway)


def evt(venue: Venue, device: str, mtype: str = "press") -> str:
    return rbproto.topic(venue.site, device, mtype)


def test_each_bad_input_is_dropped_counted_and_logged(send: Sender, venue: Venue, gateway: Gateway, store: Store,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="redbutton.gateway")
    send.raw(evt(venue, "btn-t12"), b"{not json")
    send.expect("dropped.malformed")
    send.raw(evt(venue, "btn-t12"), b"\xff\xfe\x00garbage")
    send.expect("dropped.malformed", 2)
    send.raw(evt(venue, "btn-t12"), b"{" + b" " * 5000 + b"}")
    send.expect("dropped.oversized")
    send.raw(evt(venue, "btn-nobody"), rbproto.encode(b"k" * 32, venue.site, "btn-nobody", "press",
             {"ep": 1, "seq": 1, "ts": 1, "kind": "complaint", "bat": 1})[1])
    send.expect("dropped.unknown_device")
    send.signed("btn-t12", "press", {"ep": 1, "seq": 1, "ts": 1, "kind": "complaint", "bat": 1}, key=b"x" * 32)
    send.expect("dropped.bad_signature")
    send.raw(evt(venue, "btn-t12").replace("/evt/press", "/evt/nonsense"), b"{}")
    send.expect("dropped.bad_topic")
    send.signed("pgr-ana", "press", {"ep": 1, "seq": 1, "ts": 1, "kind": "complaint", "bat": 1})
    send.expect("dropped.wrong_role")  # a pager cannot press for a table

    assert store.active_incident("T12") is None, "no bad input may open an incident"
    reasons = {"malformed", "oversized", "unknown_device", "bad_signature", "bad_topic", "wrong_role"}
    logged = {r.getMessage().split("reason=")[1].split()[0] for r in caplog.records if "DROP" in r.getMessage()}
    assert reasons <= logged

    send.press("btn-t12", ep=5, seq=1)  # and the gateway still serves a good press
    wait_until(lambda: store.active_incident("T12"), what="an incident from the good press")


def test_replayed_sequence_number_is_rejected(send: Sender, gateway: Gateway, store: Store) -> None:
    send.press("btn-t12", ep=7, seq=10)
    wait_until(lambda: store.active_incident("T12"), what="first press recorded")
    hb = {"ep": 7, "seq": 10, "ts": 1, "bat": 3900, "rssi": -50, "fw": "x", "up": 1, "q": 0, "cv": 0}
    send.signed("btn-t12", "heartbeat", hb)  # another message reusing (ep 7, seq 10)
    send.expect("dropped.replayed")
    send.signed("btn-t12", "heartbeat", {**hb, "ep": 6, "seq": 99})  # an older boot epoch
    send.expect("dropped.replayed", 2)


def test_a_resent_press_is_answered_again_not_recorded_twice(send: Sender, gateway: Gateway, store: Store) -> None:
    first = send.press("btn-t12", ep=3, seq=1)
    inc = wait_until(lambda: store.active_incident("T12"), what="incident")
    send.raw(evt(gateway.venue, "btn-t12"), first)  # the button did not hear "delivered" and sends again
    send.expect("duplicates")
    assert store.incident(inc.id).presses == 1  # type: ignore[union-attr]
    assert gateway.counters.get("sent.feedback") >= 2


def test_replay_windows_survive_a_gateway_restart(send: Sender, venue: Venue, store: Store, broker: Mosquitto,
                                                  gateway: Gateway) -> None:
    send.press("btn-t12", ep=4, seq=2)
    wait_until(lambda: store.active_incident("T12"), what="incident")
    gateway.stop()
    again = Gateway(venue, store, broker.url).start()
    try:
        hb = {"ep": 4, "seq": 2, "ts": 1, "bat": 3900, "rssi": -50, "fw": "x", "up": 1, "q": 0, "cv": 0}
        send.signed("btn-t12", "heartbeat", hb)
        wait_until(lambda: again.counters.get("dropped.replayed") == 1, what="replay refused after restart")
        assert again.epoch > gateway.epoch
    finally:
        again.stop()
