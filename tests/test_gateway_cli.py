"""`redbutton gateway` as it runs in production: JSON logs, and the venue reloaded in place by SIGHUP or by an
edit of the file, never by a broken file or one for another site. The subprocess tests run the installed
command against the session broker; the watcher's own tests drive a real file with a hand-moved clock."""

from __future__ import annotations

import io
import json
import logging
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import rbproto
from gateway.broker import Mosquitto
from gateway.logs import JsonFormatter, TextFormatter
from gateway.metrics import Counters
from gateway.reload import VenueWatcher
from gateway.venue import Venue
from gateway_process import BIN, Devices, GatewayProcess, site_doc, write_venue
from waiting import wait_until

T99_KEY = "99" * 32


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
        print("".join(gw.lines))  # pytest shows the gateway's log with a failure


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
