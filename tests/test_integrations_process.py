"""The `redbutton gateway` command with the venue's integrations on: a press through the broker
reaches the webhook receiver (signed) and Home Assistant's discovery topics; a secret named in the
venue but missing from the environment stops the start with a clear error."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from test_webhook import Receiver

from gateway.broker import Mosquitto
from gateway_process import BIN, Devices, GatewayProcess, site_doc, write_venue
from waiting import wait_until

SECRET = "hook secret for the test"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_press_reaches_the_webhook_and_home_assistant(broker: Mosquitto, receiver: Receiver, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    doc = site_doc()
    doc["integrations"] = {"home_assistant": True, "webhook_url": receiver.url,
                           "webhook_secret_env": "RB_TEST_HOOK_SECRET"}
    venue = tmp_path / "venue.toml"
    write_venue(venue, doc)
    monkeypatch.setenv("RB_TEST_HOOK_SECRET", SECRET)  # the gateway process inherits it

    retained: dict[str, bytes] = {}
    watcher = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    watcher.on_message = lambda _c, _u, m: retained.__setitem__(m.topic, m.payload)
    subscribed = threading.Event()
    watcher.on_subscribe = lambda *_a: subscribed.set()
    watcher.connect("127.0.0.1", broker.port)
    watcher.loop_start()
    watcher.subscribe([("homeassistant/#", 1), (f"rb/v1/{doc['site']}/gateway/#", 1)])
    assert subscribed.wait(5)

    gw = GatewayProcess(venue, broker, tmp_path / "gw.db")
    devices = Devices(broker, doc["site"]).use(doc)
    try:
        config = f"homeassistant/binary_sensor/{doc['site']}_btn-t12/call_open/config"
        wait_until(lambda: config in retained, 10, "Home Assistant discovery config for T12's call")
        devices.press("btn-t12")
        devices.command("pgr-ana", "alert", table="T12")
        wait_until(lambda: retained.get(f"rb/v1/{doc['site']}/gateway/table/T12/call") == b"ON", 10,
                   "T12's call ON for Home Assistant")
        hook = wait_until(lambda: next((r for r in receiver.requests if r.json["new"] == "paged"), None),
                          10, "the webhook told of the page")
        expected = "sha256=" + hmac.new(SECRET.encode(), hook.body, hashlib.sha256).hexdigest()
        assert hook.headers["X-RedButton-Signature"] == expected
        assert hook.json["summary"]["table_id"] == "T12" and hook.json["event"] == "paged"
    finally:
        devices.close()
        gw.stop()
        watcher.loop_stop()
        watcher.disconnect()


def test_a_missing_webhook_secret_stops_the_start(broker: Mosquitto, tmp_path: Path) -> None:
    doc = site_doc()
    doc["integrations"] = {"webhook_url": "http://127.0.0.1:9/hook", "webhook_secret_env": "RB_TEST_UNSET_SECRET"}
    venue = tmp_path / "venue.toml"
    write_venue(venue, doc)
    proc = subprocess.run([BIN / "redbutton", "--log-format", "json", "gateway", "--venue", venue, "--broker",
                           broker.url, "--db", tmp_path / "gw.db", "--http", "off"],
                          capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.splitlines()
    assert "RB_TEST_UNSET_SECRET is not set" in json.loads(line)["msg"]
