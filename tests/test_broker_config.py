"""`redbutton broker config` and the rotations, against the real mosquitto running the generated file:
a provisioned device gets in over TLS; no login, no venue CA, plain MQTT on the TLS port are each
refused (and counted by the log follower); only --demo lets anonymous clients in; running it again
keeps the CA, keys and passwords; the broker certificate, the CA and the service passwords rotate
without locking a device out."""

from __future__ import annotations

import getpass
import json
import os
import pwd
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.broker import Mosquitto, free_port
from gateway.broker_access import BrokerAccess
from gateway.broker_log import REFUSED_CONNECT, TLS_FAILED
from gateway.metrics import Counters
from simulator.devices import VirtualButton
from waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]


def redbutton(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=60)


@pytest.fixture
def venue_file(tmp_path: Path, venue_doc: dict[str, Any]) -> Path:
    path = tmp_path / "venue.toml"
    path.write_text((ROOT / "examples" / "demo-venue.toml").read_text()
                    .replace('site = "demo"', f'site = "{venue_doc["site"]}"'))
    return path


@dataclass
class Made:
    out: Path
    tls_port: int
    plain_port: int
    done: subprocess.CompletedProcess[str]

    @property
    def conf(self) -> Path:
        return self.out / "mosquitto.conf"

    def broker(self) -> Mosquitto:
        return Mosquitto(config=self.conf, port=self.plain_port, tls_port=self.tls_port)


def configure(venue_file: Path, *extra: str, out: Path | None = None, user: str | None = None) -> Made:
    """The command as a technician runs it, on free loopback ports so the real broker can start."""
    out = out or venue_file.parent / "broker"
    tls_port, plain_port = free_port(), free_port()
    done = redbutton("broker", "config", "--venue", venue_file, "--out", out, "--user", user or getpass.getuser(),
                     "--port", str(tls_port), "--bind", "127.0.0.1", "--plain-port", str(plain_port), *extra)
    assert done.returncode == 0, done.stderr
    return Made(out, tls_port, plain_port, done)


def connack(port: int, user: str | None = None, password: str | None = None, ca: Path | None = None) -> Any:
    """The broker's answer to a login (over TLS trusting `ca`, when given)."""
    answer: list[Any] = []
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{user}", protocol=mqtt.MQTTv5)
    if user is not None:
        c.username_pw_set(user, password)
    if ca is not None:
        c.tls_set_context(ssl.create_default_context(cafile=str(ca)))
    c.on_connect = lambda _c, _u, _f, reason, _p: answer.append(reason)
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        wait_until(lambda: answer, what="the CONNACK")
    finally:
        c.disconnect()
        c.loop_stop()
    return answer[0]


def served_serial(port: int, ca_der: bytes) -> str:
    """The serial of the certificate the broker shows a client trusting `ca_der` (as a device does,
    DER); raises ssl.SSLCertVerificationError when that client does not accept it."""
    ctx = ssl.create_default_context(cadata=ca_der)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        return str(tls.getpeercert()["serialNumber"])


def accepted(port: int, ca_der: bytes) -> bool:
    try:
        served_serial(port, ca_der)
        return True
    except ssl.SSLCertVerificationError:
        return False


# ---- the files -----------------------------------------------------------------------------------


def test_the_config_demands_logins_on_every_listener_and_names_its_files(venue_file: Path) -> None:
    made = configure(venue_file, "--host", "127.0.0.1")
    out = made.out
    conf = made.conf.read_text()
    for line in ("per_listener_settings false", "allow_anonymous false", f"password_file {out}/passwd",
                 f"acl_file {out}/acl", f"listener {made.tls_port} 127.0.0.1", f"certfile {out}/broker.pem",
                 f"keyfile {out}/broker.key", "tls_version tlsv1.2", f"listener {made.plain_port} 127.0.0.1",
                 "set_tcp_nodelay true", "max_queued_messages 0", "persistence true",
                 f"log_dest file {out}/log/mosquitto.log", "log_type notice", "log_type debug"):
        assert f"\n{line}\n" in conf, line
    assert "allow_anonymous true" not in conf and "DEMO" not in conf
    for secret in ("passwd", "acl", "gateway.password", "bridge.password", "broker.key", "ca.key"):
        assert stat.S_IMODE((out / secret).stat().st_mode) == 0o600, secret
    assert "logins and ACL required" in made.done.stdout
    assert f"--broker-log {out}/log/mosquitto.log" in made.done.stdout
    assert "no broker login yet (provision them): btn-t1, btn-t12" in made.done.stdout


def test_only_demo_lets_anonymous_clients_in_and_the_file_says_so(venue_file: Path) -> None:
    made = configure(venue_file, "--demo")
    conf = made.conf.read_text()
    assert "# DEMO ONLY (--demo): anonymous clients may connect" in conf and "\nallow_anonymous true\n" in conf
    assert "password_file" not in conf and "acl_file" not in conf
    assert "ANONYMOUS ACCESS (--demo)" in made.done.stdout
    with made.broker() as broker:
        assert not connack(broker.port).is_failure
    again = configure(venue_file, out=made.out)  # the same folder without --demo: logins again
    assert "\nallow_anonymous false\n" in again.conf.read_text()


def test_running_it_again_keeps_the_ca_the_keys_and_the_passwords(venue_file: Path) -> None:
    first = configure(venue_file, "--host", "127.0.0.1")
    kept = ("ca.pem", "ca.der", "ca.key", "broker.pem", "broker.key", "passwd", "gateway.password", "bridge.password")
    before = {name: (first.out / name).read_bytes() for name in kept}
    second = configure(venue_file, "--host", "127.0.0.1", out=first.out)
    assert {name: (first.out / name).read_bytes() for name in kept} == before
    assert "venue CA: kept" in second.done.stdout and "(kept)" in second.done.stdout
    third = configure(venue_file, "--host", "10.1.2.3", out=first.out)
    assert (first.out / "broker.pem").read_bytes() == before["broker.pem"]
    assert "does not name 10.1.2.3" in third.done.stdout and "rotate-cert" in third.done.stdout


@pytest.mark.parametrize(("args", "message"), [
    (("config",), "--host is needed for the broker's certificate"),
    (("config", "--port", "0"), "expected a port number"),
    (("rotate-password", "btn-t1"), "device provision --replace btn-t1"),
    (("rotate-ca", "--finish"), "no CA rotation is under way"),
    (("rotate-cert",), "ca.key is missing"),
])
def test_misuse_is_one_line_and_exit_2(venue_file: Path, tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    if args[0] in ("rotate-ca", "rotate-cert"):
        configure(venue_file, "--host", "127.0.0.1", out=tmp_path / "b")
        if args[0] == "rotate-cert":
            (tmp_path / "b" / "ca.key").unlink()  # kept offline, as docs/security.md suggests
    done = redbutton("broker", args[0], "--venue", venue_file, "--out", tmp_path / "b", *args[1:])
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr
    missing = redbutton("broker", "config", "--venue", tmp_path / "nope.toml", "--host", "x")
    assert missing.returncode == 2 and "nope.toml: cannot read" in missing.stderr


# ---- the real broker on the generated file ------------------------------------------------------


@pytest.fixture
def provisioned(venue_file: Path, tmp_path: Path) -> Iterator[tuple[Made, Mosquitto, dict[str, Any], Counters]]:
    """The generated broker running, a button provisioned for its TLS listener (its flash in
    tmp_path/flash/btn-t12), and a follower of the broker's log counting refusals."""
    made = configure(venue_file, "--host", "127.0.0.1")
    network = tmp_path / "network.toml"
    network.write_text(f'wifi_ssid = "bistro"\nwifi_password = "w"\nbroker_host = "127.0.0.1"\n'
                       f'broker_port = {made.tls_port}\nbroker_tls = true\nbroker_ca = "broker/ca.der"\n')
    done = redbutton("device", "provision", "--venue", venue_file, "--role", "button", "--replace", "btn-t12",
                     "--network", network, "--broker-dir", made.out, "--out", tmp_path / "flash" / "btn-t12")
    assert done.returncode == 0, done.stderr
    cfg = json.loads((tmp_path / "flash" / "btn-t12" / "config.json").read_text())
    counters = Counters()
    with made.broker() as broker:
        follower = broker.follow(counters)
        try:
            yield made, broker, cfg, counters
        finally:
            follower.stop()


def test_a_provisioned_device_gets_in_over_tls_and_nothing_else_does(
        provisioned: tuple[Made, Mosquitto, dict[str, Any], Counters], tmp_path: Path) -> None:
    made, _broker, cfg, counters = provisioned
    ca = made.out / "ca.pem"
    board = VirtualButton(cfg, tmp_path / "flash").start()  # the firmware's own TLS set-up, trusting ca.der
    try:
        assert board.wait_connected(10)
    finally:
        board.stop()
    assert not connack(made.tls_port, cfg["mqtt_user"], cfg["mqtt_password"], ca).is_failure

    assert connack(made.tls_port, None, None, ca).is_failure  # no login
    assert connack(made.plain_port).is_failure  # no login on the gateway's listener either
    wait_until(lambda: counters.get(REFUSED_CONNECT) == 2, what="the two refused logins counted")

    with pytest.raises(ssl.SSLCertVerificationError):  # TLS trusting the usual public CAs, not the venue's
        connack(made.tls_port, cfg["mqtt_user"], cfg["mqtt_password"], ca=Path(ssl.get_default_verify_paths().cafile
                                                                               or "/etc/ssl/certs/ca-certificates.crt"))
    with socket.create_connection(("127.0.0.1", made.tls_port), timeout=5) as raw:  # plain MQTT on the TLS port
        raw.sendall(b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04abcd")
        try:
            answer = raw.recv(16)
        except ConnectionResetError:
            answer = b""
        assert answer == b""  # closed, no CONNACK
    wait_until(lambda: counters.get(TLS_FAILED) == 2, what="both failed handshakes counted")


def test_rotate_cert_is_taken_on_reload_and_devices_need_nothing(
        provisioned: tuple[Made, Mosquitto, dict[str, Any], Counters], venue_file: Path, tmp_path: Path) -> None:
    made, broker, cfg, _counters = provisioned
    ca_der = (made.out / "ca.der").read_bytes()
    before = served_serial(made.tls_port, ca_der)
    done = redbutton("broker", "rotate-cert", "--venue", venue_file, "--out", made.out)
    assert done.returncode == 0 and "devices need nothing new" in done.stdout, done.stderr
    assert (made.out / "ca.der").read_bytes() == ca_der
    broker.reload()  # systemctl reload mosquitto: SIGHUP, and mosquitto 2.0 reads the certificate again
    wait_until(lambda: served_serial(made.tls_port, ca_der) != before, what="the new certificate served")
    board = VirtualButton(cfg, tmp_path / "flash").start()
    try:
        assert board.wait_connected(10)
    finally:
        board.stop()


def test_a_ca_rotation_lets_either_ca_in_until_it_is_finished(
        provisioned: tuple[Made, Mosquitto, dict[str, Any], Counters], venue_file: Path, tmp_path: Path) -> None:
    made, broker, cfg, _counters = provisioned
    old_ca = (made.out / "ca.der").read_bytes()
    before = served_serial(made.tls_port, old_ca)
    done = redbutton("broker", "rotate-ca", "--venue", venue_file, "--out", made.out)
    assert done.returncode == 0, done.stderr
    new_ca = (made.out / "ca.der").read_bytes()
    assert new_ca != old_ca and (made.out / "ca-previous.pem").exists()
    broker.reload()
    wait_until(lambda: served_serial(made.tls_port, old_ca) != before, what="the new CA's certificate served")
    assert accepted(made.tls_port, new_ca)  # a device re-provisioned with the new ca.der
    board = VirtualButton(cfg, tmp_path / "flash").start()  # a device still holding the old one
    try:
        assert board.wait_connected(10)
    finally:
        board.stop()
    again = redbutton("broker", "rotate-ca", "--venue", venue_file, "--out", made.out)
    assert again.returncode == 2 and "already under way" in again.stderr

    done = redbutton("broker", "rotate-ca", "--venue", venue_file, "--out", made.out, "--finish")
    assert done.returncode == 0, done.stderr
    broker.reload()
    wait_until(lambda: not accepted(made.tls_port, old_ca), what="the old CA no longer accepted")
    assert accepted(made.tls_port, new_ca)


def test_rotate_password_gives_the_gateway_a_new_login(
        provisioned: tuple[Made, Mosquitto, dict[str, Any], Counters], venue_file: Path) -> None:
    made, broker, _cfg, _counters = provisioned
    old = (made.out / "gateway.password").read_text().strip()
    assert not connack(made.plain_port, "gateway", old).is_failure
    done = redbutton("broker", "rotate-password", "--venue", venue_file, "--out", made.out, "gateway")
    assert done.returncode == 0, done.stderr
    new = (made.out / "gateway.password").read_text().strip()
    assert new != old and old not in done.stdout and new not in done.stdout
    broker.reload()
    wait_until(lambda: connack(made.plain_port, "gateway", old).is_failure, what="the old password refused")
    assert not connack(made.plain_port, "gateway", new).is_failure


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can run mosquitto as another account")
def test_as_root_mosquitto_runs_as_its_own_account_and_provisioning_keeps_its_files_readable(
        venue_file: Path) -> None:
    try:
        account = pwd.getpwnam("mosquitto")
    except KeyError:
        pytest.skip("no mosquitto account on this host")
    # Not under pytest's tmp_path: its parents are private to root, and the broker runs as mosquitto.
    base = Path(tempfile.mkdtemp(prefix="rb-broker-as-mosquitto-"))
    try:
        base.chmod(0o755)
        venue = base / "venue.toml"
        shutil.copy(venue_file, venue)
        made = configure(venue, "--host", "127.0.0.1", user="mosquitto")
        assert "\nuser mosquitto\n" in made.conf.read_text()
        for name in ("passwd", "acl", "broker.key"):
            assert (made.out / name).stat().st_uid == account.pw_uid, name
        for name in ("ca.key", "gateway.password"):  # what mosquitto never reads stays root's
            assert (made.out / name).stat().st_uid == 0, name
        with made.broker() as broker:
            network = base / "network.toml"
            network.write_text(f'wifi_ssid = "b"\nwifi_password = "w"\nbroker_host = "127.0.0.1"\n'
                               f"broker_port = {made.plain_port}\n")
            done = redbutton("device", "provision", "--venue", venue, "--role", "button", "--replace", "btn-t12",
                             "--network", network, "--broker-dir", made.out, "--out", base / "flash")
            assert done.returncode == 0, done.stderr
            assert BrokerAccess(made.out).passwd.stat().st_uid == account.pw_uid  # still mosquitto's
            broker.reload()
            password = json.loads((base / "flash" / "config.json").read_text())["mqtt_password"]
            wait_until(lambda: not connack(made.plain_port, "btn-t12", password).is_failure,
                       what="the newly provisioned login accepted by mosquitto running as mosquitto")
    finally:
        shutil.rmtree(base, ignore_errors=True)
