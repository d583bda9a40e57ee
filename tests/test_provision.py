"""`redbutton device provision` end to end: the key lands in the board's config and in the venue
file, the login in the broker's password file and ACL; a provisioned simulated board gets in and
is heard, a board that was not provisioned is refused by the broker."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

import rbproto
from gateway.broker import Mosquitto
from gateway.broker_access import BrokerAccess, acl_text
from gateway.mqtt_io import PASSWORD_FILE_ENV, broker_login
from gateway.service import Gateway
from gateway.store import Store
from gateway.venue import load_venue
from simulator.devices import VirtualButton
from waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def venue_file(tmp_path: Path, venue_doc: dict[str, Any]) -> Path:
    """The demo venue's own text (comments and all) under a site id of this test's."""
    text = (ROOT / "examples" / "demo-venue.toml").read_text().replace('site = "demo"', f'site = "{venue_doc["site"]}"')
    path = tmp_path / "venue.toml"
    path.write_text(text)
    return path


def network_file(folder: Path, port: int) -> Path:
    path = folder / "network.toml"
    path.write_text(f'wifi_ssid = "bistro"\nwifi_password = "wifi-secret"\nbroker_host = "127.0.0.1"\n'
                    f"broker_port = {port}\nawake_ms = 500\n")
    return path


def provision(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", "device", "provision", *map(str, args)],
                          capture_output=True, text=True, timeout=60)


def refused_login(port: int, user: str | None, password: str | None) -> mqtt.ReasonCode | None:
    """Connect as `user` and return the broker's refusal, or None when it let the client in."""
    answer: list[Any] = []
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{user}", protocol=mqtt.MQTTv5)
    if user is not None:
        c.username_pw_set(user, password)
    c.on_connect = lambda _c, _u, _f, reason, _p: answer.append(reason)
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        wait_until(lambda: answer, what="the broker's CONNACK")
    finally:
        c.disconnect()
        c.loop_stop()
    return answer[0] if answer[0].is_failure else None


def test_provisioning_writes_the_key_to_the_board_the_venue_and_the_broker(tmp_path: Path, venue_file: Path) -> None:
    flash = tmp_path / "flash" / "btn-t20"
    done = provision("--venue", venue_file, "--role", "button", "--id", "btn-t20", "--table", "T14",
                     "--network", network_file(tmp_path, 1883), "--broker-dir", tmp_path / "broker", "--out", flash)
    assert done.returncode == 0, done.stderr
    assert "btn-t20" in done.stdout and "T14" in done.stdout

    cfg = json.loads((flash / "config.json").read_text())
    venue = load_venue(venue_file)
    assert cfg["key"] == venue.devices["btn-t20"].key.hex() and len(cfg["key"]) == 64
    assert (cfg["role"], cfg["site"], cfg["device"], cfg["mqtt_user"]) == ("button", venue.site, "btn-t20", "btn-t20")
    assert cfg["wifi_ssid"] == "bistro" and cfg["broker_port"] == 1883 and "ip" not in cfg
    assert stat.S_IMODE((flash / "config.json").stat().st_mode) == 0o600
    assert venue.tables["T14"].button == "btn-t20"
    assert "btn-t14" not in venue.devices  # the button it replaced on T14 is retired
    assert "retired btn-t14" in done.stdout
    text = venue_file.read_text()
    assert text.startswith("# Demo venue: a small bistro")  # the venue's own comments are kept

    access = BrokerAccess(tmp_path / "broker")
    users = access.users()
    assert users["btn-t20"].startswith("btn-t20:$7$")  # mosquitto's PBKDF2-SHA512
    assert cfg["mqtt_password"] not in access.passwd.read_text()
    assert {"gateway", "bridge"} <= set(users) and "btn-t14" not in users
    assert access.acl.read_text() == acl_text(venue)
    site = venue.site
    assert f"user btn-t20\ntopic write rb/v1/{site}/btn-t20/evt/#\ntopic write rb/v1/{site}/btn-t20/status\n" \
           f"topic read rb/v1/{site}/btn-t20/cmd/#\n" in access.acl.read_text()
    for secret in (access.passwd, access.password_file("gateway"), access.password_file("bridge")):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600


def test_replace_gives_the_id_a_new_key_and_login_and_keeps_its_table(tmp_path: Path, venue_file: Path) -> None:
    old_key = load_venue(venue_file).devices["btn-t12"].key
    common = ("--venue", venue_file, "--role", "button", "--network", network_file(tmp_path, 1883),
              "--broker-dir", tmp_path / "broker")
    refused = provision(*common, "--id", "btn-t12", "--out", tmp_path / "a")
    assert refused.returncode != 0 and "--replace btn-t12" in refused.stderr and "Traceback" not in refused.stderr
    done = provision(*common, "--replace", "btn-t12", "--out", tmp_path / "b")
    assert done.returncode == 0, done.stderr
    venue = load_venue(venue_file)
    assert venue.devices["btn-t12"].key != old_key
    assert venue.tables["T12"].button == "btn-t12"
    assert json.loads((tmp_path / "b" / "config.json").read_text())["key"] == venue.devices["btn-t12"].key.hex()
    first = BrokerAccess(tmp_path / "broker").users()["btn-t12"]
    assert provision(*common, "--replace", "btn-t12", "--out", tmp_path / "c").returncode == 0
    assert BrokerAccess(tmp_path / "broker").users()["btn-t12"] != first  # the old board's login is gone


@pytest.mark.parametrize(("args", "message"), [
    (("--role", "button", "--table", "T99"), "no such table"),
    (("--role", "button", "--table", "T99", "--zone", "cellar"), "no such zone"),
    (("--role", "pager", "--staff", "zoe"), "no such staff member"),
    (("--role", "pager", "--table", "T1"), "--table is for buttons"),
    (("--role", "button", "--id", "Bad Id"), "lower-case"),
    (("--role", "button", "--replace", "pgr-ana"), "is a pager, not a button"),
])
def test_a_request_that_cannot_be_met_changes_nothing(tmp_path: Path, venue_file: Path, args: tuple[str, ...],
                                                      message: str) -> None:
    before = venue_file.read_text()
    done = provision("--venue", venue_file, "--network", network_file(tmp_path, 1883),
                     "--broker-dir", tmp_path / "broker", "--out", tmp_path / "flash", *args)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
    assert venue_file.read_text() == before
    assert not (tmp_path / "broker").exists() and not (tmp_path / "flash").exists()


def test_a_network_file_with_a_mistake_is_named(tmp_path: Path, venue_file: Path) -> None:
    net = tmp_path / "net.toml"
    net.write_text('wifi_ssid = "bistro"\nbroker_host = "10.0.0.2"\nbroker_prot = 1883\n')
    done = provision("--venue", venue_file, "--role", "button", "--network", net, "--out", tmp_path / "f")
    assert done.returncode == 2 and "unknown key 'broker_prot'" in done.stderr
    net.write_text('wifi_ssid = "bistro"\nbroker_host = "10.0.0.2"\n')
    done = provision("--venue", venue_file, "--role", "button", "--network", net, "--out", tmp_path / "f")
    assert done.returncode == 2 and "needs wifi_password" in done.stderr


def test_no_board_on_the_port_registers_nothing(tmp_path: Path, venue_file: Path) -> None:
    """mpremote finds nothing that answers on the port: a clear error, and the venue and broker
    files are as they were (the board is written first)."""
    master, slave = os.openpty()
    port = os.ttyname(slave)
    try:
        before = venue_file.read_text()
        done = provision("--venue", venue_file, "--role", "button", "--network", network_file(tmp_path, 1883),
                         "--broker-dir", tmp_path / "broker", "--port", port, "--timeout", "2")
    finally:
        os.close(master)
        os.close(slave)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"no MicroPython answered on {port}" in done.stderr
    assert venue_file.read_text() == before and not (tmp_path / "broker").exists()


# ---- end to end: the broker lets in only what was provisioned ------------------------------------


@pytest.fixture
def secured(tmp_path: Path, venue_file: Path) -> Iterator[tuple[Mosquitto, Path]]:
    """A broker that knows only the venue's provisioned logins (its files start empty)."""
    access = BrokerAccess(tmp_path / "broker")
    access.ensure_service_users()
    access.write_acl(load_venue(venue_file))
    broker = Mosquitto(tmp_path / "mosquitto", access=access).start()
    yield broker, venue_file
    broker.stop()


def test_a_provisioned_board_is_heard_and_an_unprovisioned_one_is_refused(
        tmp_path: Path, secured: tuple[Mosquitto, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    broker, venue_file = secured
    access = BrokerAccess(tmp_path / "broker")
    monkeypatch.setenv(PASSWORD_FILE_ENV, str(access.password_file("gateway")))
    gw_url = f"mqtt://gateway@127.0.0.1:{broker.port}"
    assert broker_login(gw_url)[1] == access.password_file("gateway").read_text().strip()
    store = Store(tmp_path / "incidents.db")
    gw = Gateway(load_venue(venue_file), store, gw_url).start()
    flash = tmp_path / "flash"
    board: VirtualButton | None = None
    try:
        # Not provisioned yet: the demo venue's btn-t1 with a login the broker never heard of.
        stranger = {"role": "button", "site": gw.venue.site, "device": "btn-t1",
                    "key": gw.venue.devices["btn-t1"].key.hex(), "broker_url": broker.url,
                    "mqtt_user": "btn-t1", "mqtt_password": "guessed"}
        assert refused_login(broker.port, "btn-t1", "guessed") is not None
        assert refused_login(broker.port, None, None) is not None  # no anonymous clients
        unprovisioned = VirtualButton(stranger, flash)
        unprovisioned.start()
        try:
            assert not unprovisioned.wait_connected(timeout=1.5)
        finally:
            unprovisioned.stop()
        assert gw.counters.get("handled.heartbeat") == 0

        done = provision("--venue", venue_file, "--role", "button", "--id", "btn-t20", "--table", "T1",
                         "--network", network_file(tmp_path, broker.port), "--broker-dir", access.dir,
                         "--out", flash / "btn-t20")
        assert done.returncode == 0, done.stderr
        broker.reload()  # what the command tells the technician to do: mosquitto reads its files again
        gw.reload(load_venue(venue_file))  # `redbutton gateway` does this when it sees the file change
        cfg = json.loads((flash / "btn-t20" / "config.json").read_text())
        board = VirtualButton(cfg, flash)
        board.start()
        assert board.wait_connected(timeout=10)
        assert board.wait_for(r"^HEARTBEAT seq=\d+")
        wait_until(lambda: gw.counters.get("handled.heartbeat") >= 1, what="the new button heard")
        board.press()
        wait_until(lambda: [(inc.button, inc.table_id) for i in range(1, 5) if (inc := store.incident(i))]
                   == [("btn-t20", "T1")], what="the new button's press recorded at T1")
        # The retired board's login is gone: btn-t1 is no longer a user of the broker.
        assert "btn-t1" not in access.users()
        # Its own login cannot speak for another device (the ACL): a press under btn-t12's topic is refused.
        assert _publish_refused(broker.port, "btn-t20", cfg["mqtt_password"], rbproto.topic(gw.venue.site, "btn-t12",
                                                                                             "press"))
    finally:
        if board is not None:
            board.stop()
        gw.stop()
        store.close()


def _publish_refused(port: int, user: str, password: str, topic: str) -> bool:
    """MQTT 5 says so in the PUBACK (reason 135, not authorised) where 3.1.1 would stay silent."""
    acks: list[Any] = []
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{user}-pub", protocol=mqtt.MQTTv5)
    c.username_pw_set(user, password)
    c.on_publish = lambda _c, _u, _mid, reason, _p: acks.append(reason)
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        c.publish(topic, b"{}", qos=1)
        wait_until(lambda: acks, what="the PUBACK")
    finally:
        c.disconnect()
        c.loop_stop()
    return bool(acks[0].is_failure)


def test_the_acl_gives_each_device_its_own_topics_only(venue_file: Path) -> None:
    venue = load_venue(venue_file)
    acl = acl_text(venue)
    blocks = {b.splitlines()[0]: b.splitlines()[1:] for b in acl.split("\n\n")[1:]}
    assert set(blocks) == {"user gateway", "user bridge"} | {f"user {d}" for d in venue.devices}
    for dev in venue.devices:
        assert all(f"/{dev}/" in line for line in blocks[f"user {dev}"])
    assert not any(line.startswith("topic") for line in acl.split("\n\n")[0].splitlines())  # none for anonymous
    parsed = tomllib.loads(venue_file.read_text())
    assert len(parsed["devices"]) == len(venue.devices)


def test_a_gateway_with_a_wrong_broker_password_stops_with_the_reason(tmp_path: Path,
                                                                      secured: tuple[Mosquitto, Path]) -> None:
    broker, venue_file = secured
    done = subprocess.run([sys.executable, "-m", "gateway.cli", "gateway", "--venue", str(venue_file), "--http", "off",
                           "--broker", f"mqtt://gateway@127.0.0.1:{broker.port}", "--db", str(tmp_path / "x.db")],
                          env={**os.environ, "REDBUTTON_BROKER_PASSWORD": "not-it"}, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "refused the connection: Not authorized (check the user and password)" in done.stderr


def test_the_example_network_file_is_one_provisioning_takes() -> None:
    from gateway.technician.provision import Network

    net = Network.load(ROOT / "examples" / "network.example.toml")
    assert net.settings == {"link": "mqtt", "wifi_ssid": "bistro-devices", "wifi_password": "change-me",
                            "broker_host": "192.168.1.10", "broker_port": 1883}
    assert net.ca is None


def test_a_static_address_needs_the_rest_of_the_network(tmp_path: Path, venue_file: Path) -> None:
    net = network_file(tmp_path, 1883)
    args = ("--venue", venue_file, "--role", "button", "--network", net, "--broker-dir", tmp_path / "broker",
            "--ip", "192.168.1.51")
    done = provision(*args, "--out", tmp_path / "a")
    assert done.returncode == 2 and "--ip needs netmask, gateway_ip, dns in the network file" in done.stderr
    net.write_text(net.read_text() + 'netmask = "255.255.255.0"\ngateway_ip = "192.168.1.1"\ndns = "192.168.1.1"\n')
    assert provision(*args, "--out", tmp_path / "b").returncode == 0
    cfg = json.loads((tmp_path / "b" / "config.json").read_text())
    assert (cfg["ip"], cfg["netmask"], cfg["gateway_ip"]) == ("192.168.1.51", "255.255.255.0", "192.168.1.1")
