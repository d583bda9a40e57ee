"""A database that refuses writes (the disk is full) loses nothing: each message is held, the alarm
is raised (an ERROR line, counters, /metrics, /healthz), and once the disk has room again every held
message is handled in order, as if it had just arrived. Real SQLite under a real file-size limit
(RLIMIT_FSIZE: writes past it fail with EFBIG, which SQLite reports like a full disk)."""

from __future__ import annotations

import logging
import resource
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import rbproto
from gateway import incidents
from gateway.prometheus import GatewayMetrics
from gateway_rig import Rig, rules_doc

EVERYONE = ("pgr-ana", "pgr-ben", "pgr-flo", "pgr-mia")


@contextmanager
def disk_full() -> Iterator[None]:
    """Every write of this process past the first byte of a file fails, until the block ends."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


@pytest.fixture
def rig(venue_doc: dict[str, Any], tmp_path: Path) -> Rig:
    r = Rig(rules_doc(venue_doc), tmp_path / "outage.db")
    r.online(*EVERYONE)
    r.out.sent.clear()  # the settings sent to the pagers as they came online
    return r


def exposition(rig: Rig) -> str:
    return GatewayMetrics(rig.gw, process=False).exposition().decode()


def test_presses_while_the_disk_is_full_are_held_then_all_recorded(rig: Rig, caplog: pytest.LogCaptureFixture
                                                                    ) -> None:
    with disk_full(), caplog.at_level(logging.ERROR, "redbutton.gateway"):
        rig.press("T12")
        rig.press("T14")
        rig.press("T12")  # a repeat press while the first is still held
    assert rig.store.incidents() == []
    assert rig.out.sent == [], "nothing is announced that the store does not hold"
    assert len(rig.gw.held) == 3
    assert rig.gw.counters.get("store.failed") >= 3
    assert rig.gw.counters.get("store.outages") == 1
    assert rig.gw.store_error is not None
    assert any("STORE FAILED" in r.getMessage() for r in caplog.records)
    metrics = exposition(rig)
    assert "redbutton_store_ok 0.0" in metrics
    assert "redbutton_messages_held 3.0" in metrics

    rig.advance(1)  # the disk has room again: the next tick hands the held messages over in order

    assert rig.gw.held == {}
    assert rig.gw.store_error is None
    assert rig.gw.counters.get("store.recovered") == 1
    assert rig.gw.counters.get("store.retried") == 3
    recorded = rig.store.press_log()
    assert len(recorded) == 3, "presses sent = presses recorded"
    t12, t14 = rig.store.incidents()
    assert (t12.table_id, t12.presses, t14.table_id) == ("T12", 2, "T14")
    assert t12.state == t14.state == incidents.PAGED
    assert rig.feedback("btn-t12")[0] == rbproto.DELIVERED
    assert "redbutton_store_ok 1.0" in exposition(rig)


def test_a_held_press_resent_by_its_button_is_recorded_once(rig: Rig) -> None:
    button = rig.venue.tables["T12"].button
    body: dict[str, int | str] = {"ep": 7, "seq": 1, "ts": int(rig.clock.now()), "kind": "complaint", "bat": 3900}
    topic, payload = rbproto.encode(rig.venue.devices[button].key, rig.venue.site, button, "press", body)
    with disk_full():
        rig.gw.handle(topic, payload)
        rig.gw.handle(topic, payload)  # no feedback came, so the button sends it again
    assert len(rig.gw.held) == 1
    rig.gw.handle(topic, payload)  # and once more after the disk has room: held first, then this one
    assert rig.store.press_log() == [(button, 7, 1, rig.store.incidents()[0].id)]
    assert rig.gw.counters.get("duplicates") == 1
    assert rig.feedback(button) == [rbproto.DELIVERED, rbproto.DELIVERED]


def test_a_timer_due_while_the_disk_is_full_fires_once_it_has_room(rig: Rig) -> None:
    rig.press("T12")
    assert rig.paged() == ["pgr-ana"]
    rig.clock.advance(31)  # ana's ack timeout has passed
    with disk_full():
        rig.gw.tick()
    assert rig.paged() == ["pgr-ana"], "no escalation the store could not record"
    assert rig.store.incidents()[0].level == 0
    rig.advance(1)
    assert rig.paged() == ["pgr-ana", "pgr-flo"]
    assert rig.store.incidents()[0].level == 1


def test_a_clock_jump_the_store_cannot_record_leaves_timers_due_by_the_wall_clock_never_lost(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    """Set an hour back while the disk is full: the rows cannot move, so neither does the scheduler
    (an entry ahead of its row would be taken as stale and the timer lost). The escalation comes
    an hour late, as the wall clock says, and comes."""
    rig.press("T12")
    with disk_full():
        rig.clock.jump(-3600)
        rig.gw.tick()
    assert any("timers not moved" in r.getMessage() for r in caplog.records)
    rig.advance(31)
    assert rig.gw.counters.get("escalations") == 0, "due by the wall clock: an hour from now"
    rig.advance(3600)
    assert rig.gw.counters.get("escalations") == 1
