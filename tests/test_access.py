"""Acceptance for the broker's access control: three attackers fail to open an incident, and each
attempt is logged with its reason and counted, while a legitimate press still opens exactly one.

Everything is real: the broker folder written by `redbutton broker config` (logins, ACL, venue CA,
TLS listener, the debug log that names denied publishes), mosquitto running that very file, the
gateway with its own login on the loopback listener, following mosquitto's log
(`--broker-log`), and SQLite. The attackers:
(a) no login, and a guessed password;
(b) button B's own login, publishing a press under button A's topic (correctly signed: the ACL,
    not the signature, is what stops it) and subscribing to a pager's commands;
(c) button A's own login, publishing a press with a bad signature."""

from __future__ import annotations

import getpass
import logging
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client.parser import text_string_to_metric_families

import rbproto
from gateway.broker import BrokerError, Mosquitto, free_port
from gateway.broker_access import BrokerAccess, acl_text, new_password
from gateway.broker_config import VenueBroker, write_venue_broker
from gateway.broker_log import DENIED_PUBLISH, DENIED_SUBSCRIBE, REFUSED_CONNECT, BrokerLogFollower
from gateway.mqtt_io import PASSWORD_FILE_ENV
from gateway.prometheus import GatewayMetrics
from gateway.service import Gateway
from gateway.store import Store
from gateway.venue import Venue, load_venue
from waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
A, B, PAGER = "btn-t12", "btn-t1", "pgr-ana"  # A is on T12, whose responder wears pgr-ana


class Probe:
    """An MQTT client that records what the broker answers: CONNACK, PUBACKs, SUBACKs, messages."""

    def __init__(self, port: int, user: str | None, password: str | None, ca: Path | None,
                 protocol: int = mqtt.MQTTv5, name: str = "probe") -> None:
        self.connack: list[Any] = []
        self.pubacks: list[Any] = []
        self.subacks: list[Any] = []
        self.messages: list[tuple[str, bytes]] = []
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=protocol)
        if user is not None:
            c.username_pw_set(user, password)
        if ca is not None:
            c.tls_set_context(ssl.create_default_context(cafile=str(ca)))
        c.on_connect = lambda _c, _u, _f, reason, _p: self.connack.append(reason)
        c.on_publish = lambda _c, _u, _mid, reason, _p: self.pubacks.append(reason)
        c.on_subscribe = lambda _c, _u, _mid, reasons, _p: self.subacks.append(reasons)
        c.on_message = lambda _c, _u, msg: self.messages.append((msg.topic, msg.payload))
        self.client = c
        c.connect("127.0.0.1", port)
        c.loop_start()
        wait_until(lambda: self.connack, what=f"the CONNACK for {name}")

    @property
    def refused(self) -> bool:
        return bool(self.connack[0].is_failure)

    def publish(self, topic: str, payload: bytes) -> Any:
        n = len(self.pubacks)
        self.client.publish(topic, payload, qos=1)
        wait_until(lambda: len(self.pubacks) > n, what="the PUBACK")
        return self.pubacks[n]

    def subscribe(self, topic_filter: str) -> None:
        """Returns on the SUBACK: anything the broker sent this client before it has arrived by then."""
        n = len(self.subacks)
        self.client.subscribe(topic_filter, qos=1)
        wait_until(lambda: len(self.subacks) > n, what="the SUBACK")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class Site:
    venue: Venue
    broker: Mosquitto
    access: BrokerAccess
    ca: Path
    passwords: dict[str, str]
    gw: Gateway
    store: Store

    def probe(self, user: str | None, password: str | None = None, *, tls: bool = True,
              protocol: int = mqtt.MQTTv5, name: str = "probe") -> Probe:
        port = self.broker.tls_port if tls else self.broker.port
        assert port is not None
        return Probe(port, user, password, self.ca if tls else None, protocol, name)

    def press(self, key: bytes, device: str = A, seq: int = 1) -> tuple[str, bytes]:
        return rbproto.encode(key, self.venue.site, device, "press",
                              {"ep": 1767225600, "seq": seq, "ts": 1767225600, "kind": "complaint", "bat": 3900})


@pytest.fixture
def site(tmp_path: Path, venue_doc: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    venue_file = tmp_path / "venue.toml"
    venue_file.write_text((ROOT / "examples" / "demo-venue.toml").read_text()
                          .replace('site = "demo"', f'site = "{venue_doc["site"]}"'))
    venue = load_venue(venue_file)
    passwords = {dev: new_password() for dev in (A, B, PAGER)}
    for attempt in range(3):  # a free port can be taken by another test between its pick and the bind
        opts = VenueBroker(venue, venue_file, tmp_path / "broker", hosts=["127.0.0.1"], port=free_port(),
                           bind="127.0.0.1", plain_port=free_port(), user=getpass.getuser())
        written = write_venue_broker(opts)
        access = BrokerAccess(opts.out)
        for dev, password in passwords.items():  # what `redbutton device provision` does for each board
            access.set_password(dev, password)
        try:
            broker = Mosquitto(config=written.conf, port=opts.plain_port, tls_port=opts.port).start()
            break
        except BrokerError:
            if attempt == 2:
                raise
    monkeypatch.setenv(PASSWORD_FILE_ENV, str(access.password_file("gateway")))
    store = Store(tmp_path / "incidents.db")
    gw = Gateway(venue, store, f"mqtt://gateway@127.0.0.1:{opts.plain_port}")
    follower = BrokerLogFollower(written.log_file, gw.counters, lambda: acl_text(gw.venue)).start()
    gw.start()
    try:
        yield Site(venue, broker, access, written.tls.ca_pem, passwords, gw, store)
    finally:
        gw.stop()
        follower.stop()
        broker.stop()
        store.close()


def counted(gw: Gateway, counter: str, n: int) -> None:
    wait_until(lambda: gw.counters.get(counter) >= n, what=f"{counter} >= {n}: {gw.counters.snapshot()}")
    assert gw.counters.get(counter) == n


def logged(caplog: pytest.LogCaptureFixture, text: str) -> str:
    found = [r.getMessage() for r in caplog.records if text in r.getMessage()]
    assert found, f"no log line with {text!r} in {[r.getMessage() for r in caplog.records]}"
    return found[-1]


def test_three_attackers_open_no_incident_and_each_attempt_is_logged_and_counted(
        site: Site, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    gw, venue = site.gw, site.venue
    a_key = venue.devices[A].key
    pager = site.probe(PAGER, site.passwords[PAGER], name="the-pager")  # the real pager, for the end
    pager.subscribe(rbproto.commands_filter(venue.site, PAGER))

    # (a) No login, over TLS and on the gateway's loopback listener; then a guessed password.
    for tls in (True, False):
        stranger = site.probe(None, tls=tls, name="no-login")
        assert stranger.refused and "authori" in str(stranger.connack[0]).lower()
        assert stranger.client.publish(*site.press(a_key), qos=1).rc == mqtt.MQTT_ERR_NO_CONN  # nowhere to send it
        stranger.close()
    counted(gw, REFUSED_CONNECT, 2)
    guesser = site.probe(A, "guessed", name="guesser")
    assert guesser.refused
    guesser.close()
    counted(gw, REFUSED_CONNECT, 3)
    assert logged(caplog, "BROKER REFUSED a connection").startswith("BROKER REFUSED a connection from 127.0.0.1:")
    assert "not authorised (no login, an unknown user or a wrong password)" in logged(caplog, "BROKER REFUSED")

    # (b) B's login speaks for A: a device speaks MQTT 3.1.1, where the broker's refusal is silent...
    b_device = site.probe(B, site.passwords[B], protocol=mqtt.MQTTv311, name="b-as-a")
    assert not b_device.refused
    b_device.publish(*site.press(a_key))  # signed with A's own key, as if it had leaked: the ACL stops it
    counted(gw, DENIED_PUBLISH, 1)
    # ...an MQTT 5 client is told (reason 135, not authorised; paho then drops the connection).
    b5 = site.probe(B, site.passwords[B], name="b5-as-a")
    assert b5.publish(*site.press(a_key, seq=2)).value == 135
    b5.close()
    counted(gw, DENIED_PUBLISH, 2)
    line = logged(caplog, "BROKER DENIED a publish")
    assert line == f"BROKER DENIED a publish by user {B} (client b5-as-a) to rb/v1/{venue.site}/{A}/evt/press: " \
                   "not in its ACL"
    # ...and it tries to read the pagers' commands: the broker grants the subscription, delivers nothing.
    b_reader = site.probe(B, site.passwords[B], name="b-reader")
    b_reader.subscribe(rbproto.commands_filter(venue.site, PAGER))
    b_reader.subscribe(f"{rbproto.ROOT}/{venue.site}/+/{rbproto.CMD}/#")
    counted(gw, DENIED_SUBSCRIBE, 2)
    assert f"BROKER DENIED a subscription by user {B} (client b-reader) to " \
           f"{rbproto.commands_filter(venue.site, PAGER)}: beyond its ACL" in logged(caplog, f"{PAGER}/cmd")

    # (c) A's own login, a press with a bad signature: the broker lets it through, the gateway drops it.
    a_device = site.probe(A, site.passwords[A], protocol=mqtt.MQTTv311, name="a-forged")
    a_device.publish(*site.press(b"\x00" * 32, seq=3))
    counted(gw, "dropped.bad_signature", 1)
    assert logged(caplog, "DROP reason=bad_signature").startswith(
        f"DROP reason=bad_signature topic=rb/v1/{venue.site}/{A}/evt/press")

    assert site.store.active_incidents() == [] and site.store.incident(1) is None, "an attacker opened an incident"
    assert gw.counters.get("handled.press") == 0

    # The real button A, with its login and key: exactly one incident, paged to the real pager only.
    a_device.publish(*site.press(a_key, seq=4))
    inc = wait_until(lambda: site.store.active_incident("T12"), what="the legitimate press recorded")
    assert (inc.id, inc.button) == (1, A) and site.store.incident(2) is None
    wait_until(lambda: any(t.endswith("/cmd/alert") for t, _p in pager.messages), what="the pager's alert")
    b_reader.subscribe(rbproto.commands_filter(venue.site, B))  # a barrier: what was routed to it has arrived
    assert b_reader.messages == [], "button B's login read a pager's commands"

    # /metrics shows them.
    text = GatewayMetrics(gw).exposition().decode()
    samples = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples["redbutton_broker_refused_connect_total"] == 3
    assert samples["redbutton_broker_denied_publish_total"] == 2
    assert samples["redbutton_broker_denied_subscribe_total"] == 2
    for probe in (pager, b_device, b_reader, a_device):
        probe.close()
