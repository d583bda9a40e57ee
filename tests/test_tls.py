"""The devices' TLS option: a button configured with `broker_tls` reaches the broker's TLS listener
through the firmware's own TLS set-up (mqtt_link.tls_context) and trusts only the venue CA."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.broker import Mosquitto
from gateway.service import Gateway
from gateway.store import Store
from gateway.tls import BrokerTls, make_broker_tls
from gateway.venue import Venue
from simulator.devices import VirtualButton, device_config
from waiting import wait_until


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> BrokerTls:
    return make_broker_tls(tmp_path_factory.mktemp("pki"), "test")


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory, pki: BrokerTls) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path_factory.mktemp("tls-broker"), tls=pki) as b:
        yield b


@pytest.fixture
def tls_gateway(venue: Venue, store: Store, tls_broker: Mosquitto) -> Iterator[Gateway]:
    gw = Gateway(venue, store, tls_broker.url).start()
    yield gw
    gw.stop()


def button_over_tls(venue: Venue, broker: Mosquitto, ca_der: Path, flash: Path) -> VirtualButton:
    cfg = device_config(venue, "btn-t12", broker.tls_url)
    cfg.update(broker_tls=True, broker_ca=str(ca_der))
    return VirtualButton(cfg, flash)


def test_venue_ca_signs_a_broker_certificate_a_client_accepts(pki: BrokerTls) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=pki.ca_der.read_bytes())  # the DER the devices get
    assert ctx.cert_store_stats()["x509_ca"] == 1
    assert pki.key.stat().st_mode & 0o077 == 0  # the broker's key is not readable by others


def test_button_over_tls_is_heard_and_answered(venue: Venue, tls_broker: Mosquitto, tls_gateway: Gateway,
                                               store: Store, pki: BrokerTls, tmp_path: Path) -> None:
    button = button_over_tls(venue, tls_broker, pki.ca_der, tmp_path / "flash").start()
    try:
        assert button.wait_connected(10)
        button.press()
        assert button.wait_for(r"^FEEDBACK delivered")
        wait_until(lambda: store.active_incident("T12"), what="the press over TLS recorded")
    finally:
        button.stop()


def test_a_broker_the_venue_ca_did_not_sign_is_refused(venue: Venue, tls_broker: Mosquitto, tmp_path: Path) -> None:
    stranger = make_broker_tls(tmp_path / "other-pki", "other")  # another venue's CA
    button = button_over_tls(venue, tls_broker, stranger.ca_der, tmp_path / "flash").start()
    try:
        assert not button.wait_connected(1.5)
    finally:
        button.stop()
