"""The gateway on the broker's TLS listener: `mqtts://` checks the broker's certificate against the
venue CA and speaks TLS, or refuses to start.

Real throughout: the broker folder `redbutton broker config` writes, mosquitto running it, a button
provisioned for TLS (the firmware's own TLS set-up, in the simulator), the gateway with its own
login and the venue's ca.pem, SQLite. The fixtures are test_broker_config's."""

from __future__ import annotations

import getpass
import os
import shlex
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_broker_config import Made, provisioned, redbutton, venue_file  # noqa: F401  (fixtures)

from gateway.broker import Mosquitto, free_port
from gateway.broker_log import TLS_FAILED
from gateway.metrics import Counters
from gateway.mqtt_io import CA_ENV, PASSWORD_FILE_ENV, MqttIO
from gateway.service import Gateway
from gateway.store import Store
from gateway.tls import make_broker_tls
from gateway.venue import load_venue
from simulator.devices import VirtualButton
from simulator.faults import GatewayProcess
from waiting import wait_until

Provisioned = tuple[Made, Mosquitto, dict[str, Any], Counters]


def test_a_gateway_on_mqtts_hears_a_signed_press_over_tls_and_answers_it(
        provisioned: Provisioned, venue_file: Path, tmp_path: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    made, _broker, cfg, _counters = provisioned
    monkeypatch.setenv(PASSWORD_FILE_ENV, str(made.out / "gateway.password"))
    monkeypatch.setenv(CA_ENV, str(made.out / "ca.pem"))  # as `redbutton gateway --broker-ca` sets it
    store = Store(tmp_path / "incidents.db")
    gw = Gateway(load_venue(venue_file), store, f"mqtts://gateway@127.0.0.1:{made.tls_port}")  # after provisioning
    board = VirtualButton(cfg, tmp_path / "flash")  # flash/btn-t12, as provisioned: TLS, trusting ca.der
    try:
        gw.start()
        sock = gw.io.client.socket()  # type: ignore[attr-defined]
        assert isinstance(sock, ssl.SSLSocket) and sock.getpeername()[1] == made.tls_port
        assert sock.getpeercert() is not None  # a certificate was checked, not merely encrypted
        board.start()
        assert board.wait_connected(10)
        board.press()
        inc = wait_until(lambda: store.active_incident("T12"), what="the press over TLS recorded")
        assert inc.button == "btn-t12"
        assert board.wait_for(r"^FEEDBACK delivered"), "the gateway's answer did not come back over TLS"
    finally:
        board.stop()
        gw.stop()
        store.close()


def test_a_broker_the_given_ca_did_not_sign_stops_the_gateway_in_one_line(
        provisioned: Provisioned, venue_file: Path, tmp_path: Path) -> None:  # noqa: F811
    made, _broker, _cfg, counters = provisioned
    stranger = make_broker_tls(tmp_path / "other-venue", "other")  # another venue's CA
    done = subprocess.run([sys.executable, "-m", "gateway.cli", "gateway", "--venue", str(venue_file),
                           "--http", "off", "--db", str(tmp_path / "x.db"),
                           "--broker", f"mqtts://gateway@127.0.0.1:{made.tls_port}",
                           "--broker-ca", str(stranger.ca_pem)],
                          env={**os.environ, PASSWORD_FILE_ENV: str(made.out / "gateway.password")},
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("redbutton: "), done.stderr
    assert f"the broker at 127.0.0.1:{made.tls_port} failed the TLS check" in lines[0]
    assert f"unable to get local issuer certificate, checked against {stranger.ca_pem}: is that the venue CA" \
        in lines[0]
    wait_until(lambda: counters.get(TLS_FAILED) == 1, what="the broker's side of it counted (unknown ca)")


def test_the_broker_is_checked_by_name_too(provisioned: Provisioned) -> None:  # noqa: F811
    """The venue CA alone is not enough: the certificate must name the host the URL gives (it was
    issued for 127.0.0.1, not for localhost)."""
    made, _broker, _cfg, _counters = provisioned
    io = MqttIO(f"mqtts://localhost:{made.tls_port}", "x", "probe", lambda _t, _p: None, status_id=None,
                ca=made.out / "ca.pem")
    with pytest.raises(ConnectionError, match="its certificate was not issued for localhost"):
        io.start(timeout=5)


def test_without_a_plain_listener_the_gateway_line_broker_config_prints_runs_over_tls(
        venue_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """`broker config` without --plain-port tells the technician to run the gateway on mqtts:// with
    the venue CA: that very line, run, connects over TLS."""
    out, tls_port = tmp_path / "broker", free_port()
    done = redbutton("broker", "config", "--venue", venue_file, "--out", out, "--user", getpass.getuser(),
                     "--port", str(tls_port), "--bind", "127.0.0.1", "--host", "127.0.0.1")
    assert done.returncode == 0, done.stderr
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("gateway: "))
    words = shlex.split(line.removeprefix("gateway: "))
    env = dict(w.split("=", 1) for w in words[:words.index("redbutton")])
    assert env == {PASSWORD_FILE_ENV: str(out / "gateway.password"), CA_ENV: str(out / "ca.pem")}
    args = words[words.index("gateway") + 1:]
    opts = dict(zip(args[::2], args[1::2], strict=True))
    assert opts["--broker"] == f"mqtts://gateway@127.0.0.1:{tls_port}"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with Mosquitto(config=out / "mosquitto.conf", port=tls_port):
        gw = GatewayProcess(Path(opts["--venue"]), opts["--broker"], tmp_path / "x.db", "--no-watch",
                            "--broker-log", opts["--broker-log"])
        try:
            gw.start()
            assert any(f"connected to 127.0.0.1:{tls_port} over TLS" in str(r.get("msg")) for r in gw.records)
        finally:
            gw.stop()
