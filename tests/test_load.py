"""The load mode: a short self-contained run (real mosquitto, real gateway, real SQLite) loses nothing."""

from __future__ import annotations

import argparse
import json
import tomllib
from dataclasses import asdict
from pathlib import Path

import pytest

from gateway.venue import BUTTON, PAGER, parse_venue
from simulator.load import Options, format_report, register, run_self_contained, synthetic_doc, venue_toml


def test_synthetic_venue_covers_every_table_and_writes_as_a_venue_file() -> None:
    doc = synthetic_doc(120, 12)
    venue = parse_venue(doc)
    assert len(venue.tables) == 120 and len(venue.staff) == 12
    assert sum(d.role == BUTTON for d in venue.devices.values()) == 120
    assert sum(d.role == PAGER for d in venue.devices.values()) == 12
    for table in venue.tables.values():  # someone of the table's zone is paged first
        assert table.responder is not None and table.zone in venue.staff[table.responder].zones
    again = parse_venue(tomllib.loads(venue_toml(doc)))
    assert again.devices == venue.devices and again.tables == venue.tables and again.staff == venue.staff


def test_fewer_servers_than_zones_still_cover_every_zone() -> None:
    venue = parse_venue(synthetic_doc(400, 4))  # 8 zones, 3 servers and a manager
    covered = {z for s in venue.staff.values() if s.role == "server" for z in s.zones}
    assert covered == set(venue.zones)


def test_short_self_contained_run_loses_nothing(tmp_path: Path) -> None:
    report = run_self_contained(parse_venue(synthetic_doc(200, 20)),
                                Options(seconds=5, rate=40, ack_after=0.3, resolve_after=0.5, drain_s=10),
                                tmp_path, out=lambda _line: None)
    print(format_report(report))
    assert report.presses_sent > 100  # ~200 expected at 40/s for 5 s
    assert report.presses_sent == report.presses_published
    assert report.presses_recorded == report.presses_sent and report.lost == 0
    assert report.answered == report.presses_sent, "every press gets a feedback of its incident"
    assert report.alerted == report.presses_sent, "every press reaches a pager"
    assert report.incidents is not None and report.joined is not None
    assert report.incidents + report.joined == report.presses_recorded
    assert report.pages_delivered >= report.incidents and report.acks_sent > 0
    for f in (report.latency, report.feedback_latency, report.baseline):
        assert f.n > 0 and f.p50_ms is not None and f.p99_ms is not None and f.max_ms is not None
        assert 0 < f.p50_ms <= f.p99_ms <= f.max_ms < 2000
    assert report.ratio_p50 is not None and report.ratio_p50 > 0
    assert not any(k.startswith("dropped.") for k in report.gateway_counters)
    assert report.ok
    figures = json.loads(json.dumps(asdict(report)))  # what --json writes
    assert figures["lost"] == 0 and figures["latency"]["p99_ms"] == report.latency.p99_ms


def test_command_line_parses_and_refuses_a_bad_pair(tmp_path: Path) -> None:
    p = argparse.ArgumentParser()
    register(p.add_subparsers(dest="command"))
    a = p.parse_args(["load", "--synthetic", "1000,100", "--self-contained", "--rate", "5", "--json", "x.json"])
    assert a.synthetic == (1000, 100) and a.self_contained and a.rate == 5
    with pytest.raises(SystemExit):
        p.parse_args(["load", "--synthetic", "1000"])
    out = tmp_path / "v.toml"
    a = p.parse_args(["load", "--synthetic", "30,3", "--write-venue", str(out)])
    assert a.func(a) == 0
    assert len(parse_venue(tomllib.loads(out.read_text())).tables) == 30
