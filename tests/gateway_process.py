"""A real `redbutton gateway` process (the simulator's own launcher) and devices speaking to it
through the broker, for the tests that run the command as it runs in production (JSON logs read
back line by line)."""

from __future__ import annotations

import itertools
import json
import os
import signal
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
from simulator import faults
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


class GatewayProcess(faults.GatewayProcess):
    """The simulator's gateway process, started at once with a fast venue watcher, and the waits
    and checks the tests make on its JSON log."""

    def __init__(self, venue: Path, broker: Mosquitto, db: Path, *args: str) -> None:
        super().__init__(venue, broker.url, db, "--watch-interval", "0.05", *args)
        self.start()
        self.expect(lambda r: r.get("logger") == "redbutton.reload", "the gateway running with its venue watcher")

    def expect(self, match: Callable[[dict[str, Any]], bool], what: str, after: int = 0) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            assert self.proc is not None and self.reader is not None
            if self.proc.poll() is not None and not self.reader.is_alive():
                raise AssertionError(f"gateway exited ({self.proc.returncode}):\n{''.join(self.lines)}")
            return next((r for r in self.records[after:] if match(r)), None)

        try:
            return wait_until(found, timeout=10, what=what)  # type: ignore[no-any-return]
        except AssertionError as e:
            raise AssertionError(f"{e}\n{''.join(self.lines)}") from None

    def logged(self, text: str, after: int = 0, level: str | None = None) -> dict[str, Any]:
        return self.expect(lambda r: text in r["msg"] and (level is None or r.get("level") == level), repr(text),
                           after)

    def hup(self) -> int:
        """Send SIGHUP; the index of the next log record, to look for what it caused."""
        assert self.proc is not None
        mark = len(self.records)
        self.proc.send_signal(signal.SIGHUP)
        return mark

    def stop(self) -> None:
        super().stop()
        assert self.proc is not None and self.proc.returncode == 0, "".join(self.lines)
        assert self.not_json == 0, "every line of the log is one JSON object"


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


