"""Home Assistant MQTT discovery through a real mosquitto and a real gateway: retained configs for
every device, their templates read the devices' own payloads (rendered with Jinja2, as Home
Assistant does), the table's "call open" follows the incident, and retract removes it all."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jinja2
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

import rbproto
from gateway.broker import Mosquitto
from gateway.homeassistant import HomeAssistant, call_topic
from gateway.metrics import Counters
from gateway.service import Gateway
from gateway.store import Store
from gateway.venue import Venue, parse_venue
from gateway_process import Devices
from waiting import wait_until


@dataclass
class Got:
    topic: str
    payload: bytes
    retain: bool


class Subscriber:
    """A client that records everything it receives on its filters, retained flag included."""

    def __init__(self, broker: Mosquitto, *filters: str) -> None:
        self.got: list[Got] = []
        self._lock = threading.Lock()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        c.on_message = self._on_message
        subscribed = threading.Event()
        c.on_subscribe = lambda *_a: subscribed.set()
        c.connect("127.0.0.1", broker.port)
        c.loop_start()
        c.subscribe([(f, 1) for f in filters])
        assert subscribed.wait(5), "no SUBACK from the broker"
        self.client = c

    def _on_message(self, _c: mqtt.Client, _u: Any, m: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.got.append(Got(m.topic, bytes(m.payload), bool(m.retain)))

    def on(self, topic: str) -> list[Got]:
        with self._lock:
            return [g for g in self.got if g.topic == topic]

    def last(self, topic: str) -> bytes | None:
        found = self.on(topic)
        return found[-1].payload if found else None

    def settle(self, marker: str) -> None:
        """Everything the broker had for this client before now has arrived: a message of our own,
        sent after, comes back after it (one connection, in order)."""
        self.client.publish(marker, b"mark", qos=1)
        wait_until(lambda: self.on(marker), what=f"the marker on {marker}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def render(template: str, payload: bytes) -> str:
    return jinja2.Environment().from_string(template).render(value=payload.decode(),
                                                              value_json=json.loads(payload))


@pytest.fixture
def ha_venue(venue_doc: dict[str, Any]) -> Venue:
    venue_doc["integrations"] = {"home_assistant": True, "discovery_prefix": f"ha-{venue_doc['site']}"}
    return parse_venue(venue_doc)


@pytest.fixture
def running(ha_venue: Venue, store: Store, broker: Mosquitto, venue_doc: dict[str, Any]) -> Iterator[Any]:
    """A gateway on the real broker with Home Assistant turned on by its venue, and devices."""
    gw = Gateway(ha_venue, store, broker.url).start()
    assert ha_venue.integrations.home_assistant
    ha = HomeAssistant(ha_venue, gw.io.publish, ha_venue.integrations.discovery_prefix, lookup=store.incident,
                       counters=gw.counters)
    store.watchers.append(ha)
    ha.announce(store.active_incidents())
    devices = Devices(broker, ha_venue.site).use(venue_doc)
    try:
        yield gw, ha, devices
    finally:
        devices.close()
        gw.stop()


def test_every_device_is_announced_retained_and_its_templates_read_the_devices_payloads(
        running: Any, broker: Mosquitto, ha_venue: Venue) -> None:
    _gw, ha, devices = running
    prefix, site = ha_venue.integrations.discovery_prefix, ha_venue.site
    configs = ha.configs()
    live = Subscriber(broker, f"{prefix}/#")
    wait_until(lambda: all(live.on(t) for t in configs), what="every discovery config")
    live.close()
    late = Subscriber(broker, f"{prefix}/#", f"{rbproto.ROOT}/{site}/gateway/table/#")  # after the fact
    wait_until(lambda: all(late.on(t) for t in configs), what="every discovery config, retained")
    try:
        assert all(late.on(t)[0].retain for t in configs)
        got = {t: json.loads(late.on(t)[0].payload) for t in configs}
        assert got == configs
        for table in ha_venue.tables:  # no call open anywhere: announced OFF
            wait_until(lambda t=table: late.last(call_topic(site, t)) == b"OFF", what=f"{table} OFF")

        call = got[f"{prefix}/binary_sensor/{site}_btn-t12/call_open/config"]
        assert call["device_class"] == "problem" and call["state_topic"] == f"rb/v1/{site}/gateway/table/T12/call"
        assert (call["payload_on"], call["payload_off"]) == ("ON", "OFF")
        assert call["unique_id"] == f"redbutton_{site}_btn-t12_call_open"
        assert call["device"]["identifiers"] == [f"redbutton_{site}_btn-t12"]
        assert call["device"]["name"] == "Button T12" and call["device"]["manufacturer"] == "Red Button"
        assert call["device"]["suggested_area"] == ha_venue.zones["terrace"].name
        assert set(call["device"]) >= {"identifiers", "name", "model", "manufacturer"}
        gateway_status = rbproto.encode_status(rbproto.ONLINE, "gateway", 0)
        assert call["availability"][0]["topic"] == rbproto.status_topic(site, "gateway")
        assert render(call["availability"][0]["value_template"], gateway_status) == "online"

        # battery and signal straight from the button's own heartbeat; availability from its status
        battery = got[f"{prefix}/sensor/{site}_btn-t12/battery/config"]
        signal = got[f"{prefix}/sensor/{site}_btn-t12/signal/config"]
        assert (battery["device_class"], battery["unit_of_measurement"]) == ("voltage", "mV")
        assert (signal["device_class"], signal["unit_of_measurement"]) == ("signal_strength", "dBm")
        hb = Subscriber(broker, battery["state_topic"])
        devices.send("btn-t12", "heartbeat", {"bat": 3712, "rssi": -67, "fw": "0.1.0", "up": 42, "q": 0, "cv": 0})
        wait_until(lambda: hb.on(battery["state_topic"]), what="the heartbeat")
        payload = hb.on(battery["state_topic"])[0].payload
        hb.close()
        assert render(battery["value_template"], payload) == "3712"
        assert render(signal["value_template"], payload) == "-67"
        assert json.loads(render(battery["json_attributes_template"], payload)) == {
            "firmware": "0.1.0", "uptime_s": 42, "queued": 0, "config_version": 0}
        status = battery["availability"][0]
        assert status["topic"] == rbproto.status_topic(site, "btn-t12")
        assert render(status["value_template"], rbproto.encode_status(rbproto.OFFLINE, "0.1.0", 1)) == \
            status["payload_not_available"]

        # a pager: battery, signal, on duty from its duty event
        duty = got[f"{prefix}/binary_sensor/{site}_pgr-ana/on_duty/config"]
        assert duty["state_topic"] == rbproto.topic(site, "pgr-ana", "duty")
        assert got[f"{prefix}/sensor/{site}_pgr-ana/battery/config"]["device"]["name"] == "Pager Ana"
        assert render(duty["value_template"], b'{"ep":1,"seq":2,"ts":3,"on":0,"sig":"x"}') == "OFF"
        assert render(duty["value_template"], b'{"ep":1,"seq":2,"ts":3,"on":1,"sig":"x"}') == "ON"
        assert not any(t.endswith("/on_duty/config") and "btn-" in t for t in configs)
        # battery and signal for each device, "call open" for each table, "on duty" for each pager
        pagers = sum(1 for d in ha_venue.devices.values() if d.role == "pager")
        assert len(configs) == 2 * len(ha_venue.devices) + len(ha_venue.tables) + pagers
    finally:
        late.close()


def test_the_call_open_state_follows_the_incident(running: Any, broker: Mosquitto, ha_venue: Venue) -> None:
    _gw, _ha, devices = running
    topic = call_topic(ha_venue.site, "T12")
    sub = Subscriber(broker, topic)
    try:
        wait_until(lambda: sub.last(topic) == b"OFF", what="T12 OFF at first")
        devices.press("btn-t12")
        wait_until(lambda: sub.last(topic) == b"ON", what="T12 ON after the press")
        devices.command("pgr-ana", "alert", table="T12")
        devices.press("btn-t12")  # a repeat press joins: still ON, nothing new published
        devices.send("btn-t12", "cancel", {"bat": 3900})
        wait_until(lambda: sub.last(topic) == b"OFF", what="T12 OFF after the customer cancelled")
        assert [g.payload for g in sub.got] == [b"OFF", b"ON", b"OFF"]
    finally:
        sub.close()
    again = Subscriber(broker, topic)
    try:
        wait_until(lambda: again.on(topic), what="the retained call state")
        assert again.on(topic)[0].retain and again.on(topic)[0].payload == b"OFF"
    finally:
        again.close()


def test_retract_removes_every_config_and_call_state(running: Any, broker: Mosquitto, ha_venue: Venue) -> None:
    _gw, ha, _devices = running
    prefix = ha_venue.integrations.discovery_prefix
    configs = ha.configs()
    live = Subscriber(broker, f"{prefix}/#")
    try:
        wait_until(lambda: all(live.on(t) for t in configs), what="every discovery config")
        ha.retract()
        wait_until(lambda: all(live.last(t) == b"" for t in configs), what="an empty config for each")
    finally:
        live.close()
    fresh = Subscriber(broker, f"{prefix}/#", f"{rbproto.ROOT}/{ha_venue.site}/gateway/table/#")
    try:
        fresh.settle(f"{prefix}/test-marker")
        assert [g.topic for g in fresh.got] == [f"{prefix}/test-marker"], "nothing retained is left"
    finally:
        fresh.close()


# ---- without a broker: what is published, from a real store ----------------------------------------


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, bytes, bool]] = []
        self.fail = fail

    def __call__(self, topic: str, payload: bytes, retain: bool = False) -> None:
        if self.fail:
            raise ConnectionError("not connected")
        self.sent.append((topic, payload, retain))

    def calls(self) -> list[tuple[str, bytes]]:
        return [(t.rsplit("/", 2)[1], p) for t, p, _r in self.sent if t.endswith("/call")]


def test_announce_shows_the_calls_already_open_and_only_customers_calls_light(venue: Venue, store: Store) -> None:
    store.open_incident(venue.site, "T12", "terrace", "btn-t12", "complaint", 1.0, 1.0, (1, 1))
    out = Recorder()
    ha = HomeAssistant(venue, out, lookup=store.incident)
    ha.announce(store.active_incidents())
    assert all(retain for _t, _p, retain in out.sent)
    assert dict(out.calls()) == {t: (b"ON" if t == "T12" else b"OFF") for t in venue.tables}
    store.watchers.append(ha)
    out.sent.clear()
    feedback = store.open_incident(venue.site, "T1", "dining", "btn-t1", "happy", 2.0, 2.0, (1, 2), "feedback")
    store.move(feedback, "closed", 2.0, "gateway", "positive feedback")
    trouble = store.open_incident(venue.site, "btn-t1", "dining", "btn-t1", "dead_button", 3.0, 3.0, None, "trouble")
    store.move(trouble, "cancelled", 4.0, "gateway", "recovered")
    assert out.sent == [], "a happy press or a device trouble is not a customer's call"
    store.move(1, "cancelled", 5.0, "btn-t12", "customer cancelled")
    assert out.calls() == [("T12", b"OFF")]


def test_a_publish_that_fails_is_logged_and_counted_never_raised(venue: Venue, store: Store,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    counters = Counters()
    ha = HomeAssistant(venue, Recorder(fail=True), "homeassistant", lookup=store.incident, counters=counters)
    store.watchers.append(ha)
    store.open_incident(venue.site, "T12", "terrace", "btn-t12", "complaint", 1.0, 1.0, (1, 1))  # does not raise
    assert counters.get("homeassistant.failed") == 1
    assert "Home Assistant: publish to rb/v1/" in caplog.text and "not connected" in caplog.text
    assert ha.calls() == {}, "not noted as published, so the next change tries again"


def test_reload_removes_the_entities_of_what_left_the_venue(venue_doc: dict[str, Any], store: Store) -> None:
    venue = parse_venue(venue_doc)
    out = Recorder()
    ha = HomeAssistant(venue, out, lookup=store.incident)
    ha.announce()
    venue_doc["tables"] = [t for t in venue_doc["tables"] if t["id"] != "T12"]
    out.sent.clear()
    ha.reload(parse_venue(venue_doc))
    removed = {t for t, p, _r in out.sent if p == b""}
    assert removed == {f"homeassistant/binary_sensor/{venue.site}_btn-t12/call_open/config",
                       call_topic(venue.site, "T12")}
