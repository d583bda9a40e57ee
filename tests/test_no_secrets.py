"""No secret is ever logged: the commands that make and handle the secrets (broker config,
provisioning, a password rotation) and a gateway logging in with a password, at debug level, while
a board presses, a stranger guesses a password and a forged press arrives, leave no device key,
broker password or private key in anything they print, nor in mosquitto's own (debug) log."""

from __future__ import annotations

import getpass
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

import rbproto
from gateway.broker import Mosquitto, free_port
from gateway.venue import load_venue
from simulator.devices import VirtualButton
from waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]


def redbutton(*args: str | Path) -> str:
    done = subprocess.run([sys.executable, "-m", "gateway.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def publish(port: int, user: str, password: str, topic: str, payload: bytes) -> bool:
    """-> whether the broker let the client in (the message is then published, QoS 1)."""
    answer: list[Any] = []
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{user}", protocol=mqtt.MQTTv311)
    c.username_pw_set(user, password)
    c.on_connect = lambda _c, _u, _f, reason, _p: answer.append(reason)
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        wait_until(lambda: answer, what="the CONNACK")
        if answer[0].is_failure:
            return False
        c.publish(topic, payload, qos=1).wait_for_publish(5)
        return True
    finally:
        c.disconnect()
        c.loop_stop()


def private_key_body(path: Path) -> list[str]:
    """The base64 lines of a PEM private key: any one of them in a log would be a leak."""
    return [line for line in path.read_text().splitlines() if line and not line.startswith("-----")]


def test_no_key_or_password_reaches_any_log(tmp_path: Path, venue_doc: dict[str, Any]) -> None:
    site = venue_doc["site"]
    venue_file = tmp_path / "venue.toml"
    venue_file.write_text((ROOT / "examples" / "demo-venue.toml").read_text().replace('site = "demo"',
                                                                                    f'site = "{site}"'))
    out, plain, tls = tmp_path / "broker", free_port(), free_port()
    printed = redbutton("-v", "broker", "config", "--venue", venue_file, "--out", out, "--host", "127.0.0.1",
                        "--port", str(tls), "--bind", "127.0.0.1", "--plain-port", str(plain),
                        "--user", getpass.getuser())
    network = tmp_path / "network.toml"
    network.write_text(f'wifi_ssid = "bistro"\nwifi_password = "wifi-secret-1234"\nbroker_host = "127.0.0.1"\n'
                       f"broker_port = {plain}\n")
    flash = tmp_path / "flash"
    for dev, role in (("btn-t12", "button"), ("pgr-ana", "pager")):
        printed += redbutton("-v", "device", "provision", "--venue", venue_file, "--role", role, "--replace", dev,
                             "--network", network, "--broker-dir", out, "--out", flash / dev)
    printed += redbutton("-v", "broker", "rotate-password", "--venue", venue_file, "--out", out, "bridge")
    configs = {dev: json.loads((flash / dev / "config.json").read_text()) for dev in ("btn-t12", "pgr-ana")}
    venue = load_venue(venue_file)

    gateway_log = tmp_path / "gateway.log"
    with Mosquitto(config=out / "mosquitto.conf", port=plain, tls_port=tls) as broker, \
            open(gateway_log, "w") as log_out:
        gw = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "-v", "--log-format", "json", "gateway", "--venue", str(venue_file),
             "--broker", f"mqtt://gateway@127.0.0.1:{plain}", "--broker-log", str(broker.log_file), "--http", "off",
             "--db", str(tmp_path / "incidents.db"), "--no-watch"],
            stdout=log_out, stderr=subprocess.STDOUT,
            env={**os.environ, "REDBUTTON_BROKER_PASSWORD_FILE": str(out / "gateway.password")})
        try:
            wait_until(lambda: "up (command epoch" in gateway_log.read_text(), what="the gateway up")
            board = VirtualButton(configs["btn-t12"], flash).start()
            try:
                board.press()
                wait_until(lambda: "INCIDENT 1 opened T12" in gateway_log.read_text(), what="the press handled")
            finally:
                board.stop()
            # A stranger tries the pager's password under the button's name, then the wifi password.
            assert not publish(plain, "btn-t12", configs["pgr-ana"]["mqtt_password"], "x", b"")
            assert not publish(plain, "gateway", "wifi-secret-1234", "x", b"")
            topic, forged = rbproto.encode(b"\x01" * 32, site, "btn-t12", "press",
                                           {"ep": 9, "seq": 9, "ts": 1, "kind": "complaint", "bat": 1})
            assert publish(plain, "btn-t12", configs["btn-t12"]["mqtt_password"], topic, forged)
            wait_until(lambda: "reason=bad_signature" in gateway_log.read_text(), what="the forged press dropped")
            wait_until(lambda: gateway_log.read_text().count("BROKER REFUSED") == 2, what="both refusals logged")
        finally:
            gw.send_signal(signal.SIGTERM)
            gw.wait(20)
        mosquitto_log = broker.log_file.read_text()

    everything = "\n".join([printed, gateway_log.read_text(), mosquitto_log, *(str(line) for line in board.lines)])
    for seen in ("INCIDENT 1 opened", "reason=bad_signature", "BROKER REFUSED", "New client connected", "PRESS"):
        assert seen in everything  # the logs did record what happened: they are not empty by accident
    secrets = {f"key of {d}": dev.key.hex() for d, dev in venue.devices.items()}
    secrets |= {f"mqtt_password of {d}": cfg["mqtt_password"] for d, cfg in configs.items()}
    secrets |= {f"{u}.password": (out / f"{u}.password").read_text().strip() for u in ("gateway", "bridge")}
    secrets["the wifi password"] = "wifi-secret-1234"
    for name in ("ca.key", "broker.key"):
        secrets |= {f"{name} line {i}": line for i, line in enumerate(private_key_body(out / name))}
    leaked = [name for name, secret in secrets.items() if secret in everything or secret.upper() in everything]
    assert leaked == [], f"secrets in the logs: {leaked}"
