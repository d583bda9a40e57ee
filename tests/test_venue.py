"""The venue file: the demo loads, and every defect is named by its key."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import pytest

from conftest import DEMO_VENUE, ROOT, demo_doc
from gateway import router
from gateway.cli import main
from gateway.venue import VenueError, known_keys, load_venue, parse_venue


def test_demo_venue_loads() -> None:
    v = load_venue(DEMO_VENUE)
    assert v.table_by_button["btn-t12"].id == "T12"
    assert v.staff_by_pager["pgr-ana"].id == "ana"


def broken(change: Any) -> str:
    doc = copy.deepcopy(demo_doc())
    change(doc)
    with pytest.raises(VenueError) as e:
        parse_venue(doc, "venue.toml")
    return str(e.value)


@pytest.mark.parametrize(("change", "names"), [
    (lambda d: d.pop("site"), "venue.toml: site: missing"),
    (lambda d: d["tables"][0].update(zone="cellar"), "tables[0].zone: zone 'cellar' is not in [[zones]]"),
    (lambda d: d["tables"][1].update(button="btn-t1"), "button 'btn-t1' is on both T1 and T2"),
    (lambda d: d["tables"][0].update(button="pgr-ana"), "tables[0].button: device 'pgr-ana' is a pager"),
    (lambda d: d["staff"][0].update(pager="pgr-none"), "staff[0].pager: device 'pgr-none' is not in [[devices]]"),
    (lambda d: d["devices"][0].update(key="abc"), "devices[0].key: expected 64 hex digits"),
    (lambda d: d["devices"][0].update(role="toaster"), "devices[0].role: 'toaster' is not one of"),
    (lambda d: d["staff"][0].update(on_duty="yes"), "staff[0].on_duty: expected bool, got str"),
    (lambda d: d["tables"][0].update(responder="zed"), "tables[0].responder: staff 'zed' is not in [[staff]]"),
    (lambda d: d.update(zones=[]), "zones: a venue needs at least one zone"),
])
def test_defects_are_named_by_their_key(change: Any, names: str) -> None:
    assert names in broken(change)


def test_venue_check_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["venue", "check", str(DEMO_VENUE)]) == 0
    assert "4 tables" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text("site = 'x'\n[[zones]\n")
    assert main(["venue", "check", str(bad)]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_routing_prefers_the_tables_responder_then_online_then_least_busy() -> None:
    v = load_venue(DEMO_VENUE)

    def ids(zone: str, role: str = "server", **kw: Any) -> list[str]:
        return [s.id for s in router.candidates(v, zone, role, kw.pop("available", lambda s: True), **kw)]

    assert ids("terrace", prefer="ana") == ["ana", "ben"]
    assert ids("terrace", prefer="ana", available=lambda s: s.id != "ana") == ["ben"]  # offline, off duty
    assert ids("terrace", exclude={"ana"}) == ["ben"]  # already paged or declined
    assert ids("terrace", busy={"ana": 2, "ben": 1}) == ["ben", "ana"]  # the least busy first
    assert ids("terrace", busy={"ana": 2, "ben": 1}, online={"pgr-ana"}) == ["ana", "ben"]  # seen online first
    assert ids("dining") == ["ben"]  # ana does not cover the dining room
    assert ids("dining", "manager") == ["mia"]


REFERENCE = ROOT / "examples" / "venue-reference.toml"


def test_the_reference_example_uses_every_key_the_gateway_reads() -> None:
    doc = tomllib.loads(REFERENCE.read_text())
    asked, present = known_keys(doc)
    assert not asked - present, f"keys the gateway reads that the reference example lacks: {asked - present}"
    assert load_venue(REFERENCE).policy("allergy").ack_timeout_s == 10
    assert load_venue(REFERENCE).policy("complaint").levels == ("server", "floor_manager", "manager")


@pytest.mark.parametrize(("edit", "key"), [
    (lambda d: d["escalation"].update(ack_timout_s=5), "escalation.ack_timout_s: unknown key"),
    (lambda d: d["staff"][0].update(shift=[]), r"staff\[0\].shift: unknown key"),
    (lambda d: d["escalation"].update(levels=["server", "chef"]), r"escalation.levels\[1\]: no staff has role 'chef'"),
    (lambda d: d["escalation"]["kinds"]["allergy"].update(ack_timeout_s=0), "escalation.kinds.allergy.ack_timeout_s"),
    (lambda d: d["staff"][0]["shifts"][0].update(start="25:00"), r"staff\[0\].shifts\[0\].start"),
    (lambda d: d["staff"][0]["shifts"][0].update(days=["monday"]), r"staff\[0\].shifts\[0\].days"),
    (lambda d: d.update(timezone="Mars/Olympus"), "timezone"),
    (lambda d: d["noise"].update(manager_roles=["boss"]), r"noise.manager_roles\[0\]"),
    (lambda d: d["recovery"].update(root_causes=["Bad Luck"]), r"recovery.root_causes\[0\]"),
    (lambda d: d["supervision"].update(low_battery_mv=0), "supervision.low_battery_mv"),
])
def test_a_wrong_key_or_value_is_an_error_naming_the_key(edit: Any, key: str) -> None:
    doc = tomllib.loads(REFERENCE.read_text())
    edit(doc)
    with pytest.raises(VenueError, match=key):
        parse_venue(doc, "venue.toml")


def test_docs_gateway_shows_the_reference_example_as_it_is() -> None:
    assert REFERENCE.read_text() in (ROOT / "docs" / "gateway.md").read_text()
