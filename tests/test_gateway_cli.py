"""`redbutton gateway` as it runs in production: JSON logs, and the venue reloaded in place by SIGHUP or by an
edit of the file, never by a broken file or one for another site. The subprocess tests run the installed
command against the session broker; the watcher's own tests drive a real file with a hand-moved clock."""

from __future__ import annotations

import io
import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

import rbproto
from conftest import demo_doc
from gateway.broker import Mosquitto
from gateway.logs import JsonFormatter, TextFormatter
from gateway.metrics import Counters
from gateway.reload import VenueWatcher
from gateway.venue import Venue
from waiting import wait_until

BIN = Path(sys.executable).parent
_sites = itertools.count(1)
T99_KEY = "99" * 32


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


def with_t99(doc: dict[str, Any], responder: str = "ben") -> dict[str, Any]:
    """The venue with one more table, T99 on the terrace, its button btn-t99."""
    doc["devices"].append({"id": "btn-t99", "role": "button", "key": T99_KEY})
    doc["tables"].append({"id": "T99", "zone": "terrace", "button": "btn-t99", "responder": responder})
    return doc


# ---- the log formats ---------------------------------------------------------------------------------------


def capture(formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    log = logging.getLogger(f"redbutton.test.{id(out)}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(handler)
    return log, out


def test_json_lines_carry_the_tags_and_nothing_else_from_extra() -> None:
    log, out = capture(JsonFormatter())
    log.info("PAGE inc=%d %s", 5, "T12", extra={"inc": 5, "table": "T12", "staff": "ana", "device": "pgr-ana",
                                                 "event": "page", "key": "deadbeef" * 8, "password": "hunter2"})
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("handler failed", extra={"inc": 6})
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["msg"] == "PAGE inc=5 T12" and first["level"] == "INFO" and first["logger"] == log.name
    assert {k: first[k] for k in ("inc", "table", "staff", "device", "event")} == {
        "inc": 5, "table": "T12", "staff": "ana", "device": "pgr-ana", "event": "page"}
    assert first["ts"].endswith("Z") and len(first["ts"]) == len("2026-01-01T00:00:00.000Z"), first["ts"]
    assert "deadbeef" not in out.getvalue() and "hunter2" not in out.getvalue(), "only the known tags are written"
    assert second["inc"] == 6 and "RuntimeError: boom" in second["exc"] and "table" not in second


def test_text_lines_show_the_incident_after_the_logger_name() -> None:
    log, out = capture(TextFormatter())
    log.warning("ALARM %s", "T12", extra={"inc": 7})
    log.info("plain")
    tagged, plain = out.getvalue().splitlines()
    assert tagged.endswith(f"WARNING {log.name} [inc=7]: ALARM T12"), tagged
    assert plain.endswith(f"INFO    {log.name}: plain"), plain


# ---- VenueWatcher with a hand-moved clock ------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def venue_file(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    doc = site_doc()
    path = tmp_path / "venue.toml"
    write_venue(path, doc)
    return path, doc


def watcher_for(path: Path, got: list[Venue], clock: FakeClock, site: str) -> VenueWatcher:
    return VenueWatcher(path, got.append, interval_s=1.0, site=site, counters=Counters(), clock=clock)


def test_watcher_loads_a_change_once_the_file_has_settled(venue_file: tuple[Path, dict[str, Any]]) -> None:
    path, doc = venue_file
    got: list[Venue] = []
    clock = FakeClock()
    w = watcher_for(path, got, clock, doc["site"])
    assert not w.poll(), "the file as it was loaded is no change"
    write_venue(path, with_t99(doc))
    assert not w.poll() and not got, "a change just seen may still be half written"
    clock.t += 0.5
    assert w.poll()
    assert "T99" in got[0].tables and w.counters.get("venue.reloaded") == 1
    clock.t += 5
    assert not w.poll(), "the same version is loaded once"


def test_watcher_keeps_the_old_venue_for_a_broken_file(venue_file: tuple[Path, dict[str, Any]],
                                                       caplog: pytest.LogCaptureFixture) -> None:
    path, doc = venue_file
    got: list[Venue] = []
    clock = FakeClock()
    w = watcher_for(path, got, clock, doc["site"])
    doc["tables"][0]["responder"] = "zed"
    write_venue(path, doc)
    w.poll()
    clock.t += 1
    assert not w.poll() and not got
    assert w.counters.get("venue.reload_failed") == 1
    assert "tables[0].responder: staff 'zed' is not in [[staff]]" in caplog.text
    clock.t += 1
    w.poll()
    assert w.counters.get("venue.reload_failed") == 1, "a broken version is reported once, not on every poll"
    doc["tables"][0]["responder"] = "mia"
    write_venue(path, doc)
    w.poll()
    clock.t += 1
    assert w.poll() and got[0].tables["T1"].responder == "mia"


def test_watcher_refuses_another_site(venue_file: tuple[Path, dict[str, Any]],
                                      caplog: pytest.LogCaptureFixture) -> None:
    path, doc = venue_file
    got: list[Venue] = []
    w = watcher_for(path, got, FakeClock(), doc["site"])
    write_venue(path, {**doc, "site": "elsewhere"})
    assert not w.poll(force=True) and not got
    assert w.counters.get("venue.reload_failed") == 1
    assert f"'elsewhere' is not the running site '{doc['site']}'" in caplog.text


def test_watcher_thread_reloads_on_trigger_without_polling(venue_file: tuple[Path, dict[str, Any]]) -> None:
    path, doc = venue_file
    got: list[Venue] = []
    w = VenueWatcher(path, got.append, interval_s=0.01, site=doc["site"]).start(poll=False)
    try:
        write_venue(path, with_t99(doc))
        w.trigger()
        wait_until(lambda: got, what="a reload on trigger")
        assert "T99" in got[0].tables
    finally:
        w.stop()


# ---- the real command ----------------------------------------------------------------------------------------


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


Running = tuple[GatewayProcess, Devices, dict[str, Any], Path]


@pytest.fixture
def running(broker: Mosquitto, tmp_path: Path) -> Iterator[Callable[..., Running]]:
    started: list[tuple[GatewayProcess, Devices]] = []

    def start(*args: str) -> Running:
        doc = site_doc()
        path = tmp_path / "venue.toml"
        write_venue(path, doc)
        devices = Devices(broker, doc["site"]).use(with_t99(site_doc()))
        gw = GatewayProcess(path, broker, tmp_path / "incidents.db", *args)
        started.append((gw, devices))
        return gw, devices, doc, path

    yield start
    for gw, devices in started:
        devices.close()
        gw.stop()
        print("".join(gw.raw))  # pytest shows the gateway's log with a failure


def test_json_log_lines_carry_the_incident(running: Callable[..., Any]) -> None:
    gw, devices, _doc, _path = running()
    devices.press("btn-t12")
    alert = devices.command("pgr-ana", "alert", table="T12")
    tagged = gw.expect(lambda r: r.get("inc") == alert["inc"], f"a log record with inc={alert['inc']}")
    assert tagged["ts"].endswith("Z") and tagged["level"] in ("INFO", "WARNING", "ERROR")


def test_sighup_reloads_the_edited_venue_and_keeps_open_incidents(running: Callable[..., Any]) -> None:
    gw, devices, doc, path = running("--no-watch")
    devices.press("btn-t12")
    open_before = devices.command("pgr-ana", "alert", table="T12")["inc"]
    write_venue(path, with_t99(doc, responder="ben"))
    gw.logged("venue reloaded (SIGHUP)", after=gw.hup(), level="INFO")
    devices.press("btn-t99")
    devices.command("pgr-ben", "alert", table="T99")
    devices.send("pgr-ana", "ack", {"inc": open_before})  # the incident opened before the reload goes on
    devices.command("btn-t12", "feedback", inc=open_before, state=rbproto.ACKNOWLEDGED)


def test_a_broken_file_is_refused_then_a_good_edit_is_picked_up(running: Callable[..., Any]) -> None:
    gw, devices, doc, path = running()
    mark = len(gw.records)
    doc["tables"][0]["responder"] = "zed"
    write_venue(path, doc)
    gw.logged("tables[0].responder: staff 'zed' is not in [[staff]]", after=mark, level="ERROR")
    devices.press("btn-t1")
    devices.command("pgr-ben", "alert", table="T1")  # the old venue still serves presses

    mark = len(gw.records)
    doc["tables"][0]["responder"] = "ben"
    doc["tables"][3]["responder"] = "ben"  # T14: nobody's own table until now, so ana came first by name
    write_venue(path, doc)
    gw.logged("venue reloaded (file changed)", after=mark, level="INFO")
    devices.press("btn-t14")
    devices.command("pgr-ben", "alert", table="T14")


def test_a_venue_for_another_site_is_refused(running: Callable[..., Any]) -> None:
    gw, devices, doc, path = running("--no-watch")
    write_venue(path, {**doc, "site": "elsewhere"})
    gw.logged("is not the running site", after=gw.hup(), level="ERROR")
    devices.press("btn-t12")
    devices.command("pgr-ana", "alert", table="T12")


def test_a_startup_error_is_a_json_line_too(tmp_path: Path) -> None:
    proc = subprocess.run([BIN / "redbutton", "--log-format", "json", "gateway", "--venue", tmp_path / "none.toml",
                           "--db", tmp_path / "x.db"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    (line,) = proc.stderr.splitlines()
    assert json.loads(line)["msg"].endswith("none.toml: cannot read: No such file or directory")
