"""A real `redbutton gateway` process and devices speaking to it through the broker, for the tests
that run the command as it runs in production (JSON logs read back line by line)."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

import rbproto
from conftest import demo_doc
from gateway.broker import Mosquitto
from waiting import wait_until

BIN = Path(sys.executable).parent
_sites = itertools.count(1)


def site_doc() -> dict[str, Any]:
    doc = demo_doc()
    doc["site"] = f"cli{os.getpid() % 10000}x{next(_sites)}"
    return doc


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | str):
        return json.dumps(v)  # a JSON string of printable ASCII is a TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(type(v))


def to_toml(doc: dict[str, Any]) -> str:
    """Enough TOML for a venue: top-level values, [tables] of values, [[arrays]] of tables of values."""
    lines = [f"{k} = {toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict | list) or
             (isinstance(v, list) and not (v and isinstance(v[0], dict)))]
    for k, v in doc.items():
        if isinstance(v, dict):
            lines += ["", f"[{k}]"] + [f"{kk} = {toml_value(vv)}" for kk, vv in v.items()]
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            for row in v:
                lines += ["", f"[[{k}]]"] + [f"{kk} = {toml_value(vv)}" for kk, vv in row.items()]
    return "\n".join(lines) + "\n"


def write_venue(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(to_toml(doc))


class GatewayProcess:
    """`redbutton --log-format json gateway ...` with its stderr read line by line as JSON."""

    def __init__(self, venue: Path, broker: Mosquitto, db: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [BIN / "redbutton", "--log-format", "json", "gateway", "--venue", venue, "--broker", broker.url,
             "--db", db, "--watch-interval", "0.05", *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.records: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.expect(lambda r: r["logger"] == "redbutton.reload", "the gateway running with its venue watcher")

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.raw.append(line)
            self.records.append(json.loads(line))  # a line that is not JSON fails the test below

    def expect(self, match: Callable[[dict[str, Any]], bool], what: str, after: int = 0) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            if self.proc.poll() is not None and not self._reader.is_alive():
                raise AssertionError(f"gateway exited ({self.proc.returncode}):\n{''.join(self.raw)}")
            return next((r for r in self.records[after:] if match(r)), None)

        try:
            return wait_until(found, timeout=10, what=what)  # type: ignore[no-any-return]
        except AssertionError as e:
            raise AssertionError(f"{e}\n{''.join(self.raw)}") from None

    def logged(self, text: str, after: int = 0, level: str | None = None) -> dict[str, Any]:
        return self.expect(lambda r: text in r["msg"] and (level is None or r["level"] == level), repr(text), after)

    def hup(self) -> int:
        """Send SIGHUP; the index of the next log record, to look for what it caused."""
        mark = len(self.records)
        self.proc.send_signal(signal.SIGHUP)
        return mark

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=10)
        self._reader.join(5)
        assert self.proc.returncode == 0, "".join(self.raw)
        assert len(self.records) == len(self.raw), "every line of the log is one JSON object"


class Devices:
    """Publishes signed events as buttons and pagers would, and records the commands sent to them."""

    def __init__(self, broker: Mosquitto, site: str) -> None:
        self.site = site
        self.keys: dict[str, bytes] = {}
        self.commands: list[tuple[str, str, dict[str, Any]]] = []
        self.seq = itertools.count(1)
        c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        c.on_message = lambda _c, _u, m: self.commands.append(
            (m.topic.split("/")[3], m.topic.split("/")[5], json.loads(m.payload)))
        subscribed = threading.Event()
        c.on_subscribe = lambda *_a: subscribed.set()
        c.connect("127.0.0.1", broker.port)
        c.loop_start()
        c.subscribe(f"{rbproto.ROOT}/{site}/+/{rbproto.CMD}/+", qos=1)
        assert subscribed.wait(5), "no SUBACK from the broker"
        self.client = c

    def use(self, doc: dict[str, Any]) -> Devices:
        self.keys.update({d["id"]: bytes.fromhex(d["key"]) for d in doc["devices"]})
        return self

    def send(self, device: str, mtype: str, fields: dict[str, int | str]) -> None:
        body: dict[str, int | str] = {"ep": 1, "seq": next(self.seq), "ts": 1767225600, **fields}
        topic, payload = rbproto.encode(self.keys[device], self.site, device, mtype, body)
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def press(self, button: str) -> None:
        self.send(button, "press", {"kind": "complaint", "bat": 3900})

    def command(self, device: str, mtype: str, **fields: Any) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next((b for d, t, b in self.commands if d == device and t == mtype
                         and all(b.get(k) == v for k, v in fields.items())), None)

        return wait_until(found, timeout=10, what=f"{mtype} {fields} to {device}: {self.commands}")  # type: ignore[no-any-return]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


