"""The whole chain: firmware on simulated devices, real mosquitto, real gateway, real SQLite."""

from __future__ import annotations

import sqlite3
from typing import Any

import rbproto
from gateway import incidents
from gateway.service import Gateway
from gateway.store import Store
from waiting import wait_until

GREEN = (0, 255, 0)


def call_and_page(sim: Any, table: str, staff: str) -> int:
    sim.button_at(table).press()
    hit = sim.pager_of(staff).wait_for(r"ALERT inc=(\d+) shown")
    assert hit, f"{staff}'s pager never showed an alert for {table}"
    return int(hit[1].split("inc=")[1].split()[0])


def test_press_pages_ack_reaches_button_and_is_stored(sim: Any, store: Store) -> None:
    button, pager = sim.button_at("T12"), sim.pager_of("ana")
    inc_id = call_and_page(sim, "T12", "ana")
    # the selected alert, drawn large: table, dot, kind; then its state and the customer's wait
    wait_until(lambda: "T12·complaint" in pager.screen, what="T12 on the pager's screen")
    screen = pager.screen
    assert screen[screen.index("T12·complaint") + 1].startswith("NEW"), screen
    assert screen[screen.index("T12·complaint") + 1].endswith(("0:00", "0:01")), screen
    assert wait_until(lambda: button.state == rbproto.DELIVERED, what="delivered feedback")

    pager.press()
    wait_until(lambda: button.state == rbproto.ACKNOWLEDGED, what="acknowledged on the button")
    assert wait_until(lambda: button.colour == GREEN, what="green light"), button.colour
    wait_until(lambda: any(line.startswith("ON IT") for line in pager.screen), what="ON IT on the pager")

    db = sqlite3.connect(store.path)  # a reader of its own: what a report would see
    row = db.execute("SELECT state, responder, pressed_at, received_at, paged_at, acked_at FROM incidents "
                     "WHERE id = ?", (inc_id,)).fetchone()
    state, responder, pressed_at, received_at, paged_at, acked_at = row
    assert (state, responder) == ("acknowledged", "ana")
    assert pressed_at <= received_at + 1  # the button's clock has whole seconds
    assert received_at <= paged_at <= acked_at
    steps = [r[0] for r in db.execute("SELECT to_state FROM transitions WHERE incident_id = ? ORDER BY id",
                                      (inc_id,))]
    assert steps == ["open", "paged", "acknowledged"]


def test_second_press_joins_the_open_incident(sim: Any, store: Store) -> None:
    first = call_and_page(sim, "T12", "ana")
    button = sim.button_at("T12")
    wait_until(lambda: button.state == rbproto.DELIVERED, what="first delivered")
    button.press()
    wait_until(lambda: store.incident(first).presses == 2, what="second press joined")  # type: ignore[union-attr]
    assert store.active_incident("T12").id == first  # type: ignore[union-attr]
    assert len(sim.pager_of("ana").app.alerts) == 1


def test_decline_pages_the_next_responder(sim: Any, store: Store) -> None:
    inc_id = call_and_page(sim, "T12", "ana")
    sim.pager_of("ana").press(hold_ms=1700)  # long press: decline
    # ben serves the same zone at the same level: he is next, before any manager
    assert sim.pager_of("ben").wait_for(rf"ALERT inc={inc_id} shown T12 complaint lvl=0")
    assert store.paged_staff(inc_id) == {"ana", "ben"}


def test_long_press_cancels_and_clears_the_pager(sim: Any, store: Store) -> None:
    inc_id = call_and_page(sim, "T12", "ana")
    sim.button_at("T12").press(hold_ms=1700)
    assert sim.pager_of("ana").wait_for(rf"ALERT inc={inc_id} cleared customer cancelled")
    assert wait_until(lambda: store.incident(inc_id).state == incidents.CANCELLED)  # type: ignore[union-attr]
    assert sim.button_at("T12").wait_for("FEEDBACK cancelled")


def test_pager_resolves_through_its_pick_list(sim: Any, store: Store) -> None:
    button, pager = sim.button_at("T12"), sim.pager_of("ana")
    inc_id = call_and_page(sim, "T12", "ana")
    pager.press()
    assert pager.wait_for(rf"ACK inc={inc_id} seq=\d+ sent")
    wait_until(lambda: button.state == rbproto.ACKNOWLEDGED, what="acknowledged on the button")
    action = pager.app.choices()[-1]  # the venue's last recovery action: B pressed down the list
    assert pager.resolve(action) is None
    assert pager.wait_for(rf"RESOLVE inc={inc_id} action={action} seq=\d+ sent")
    wait_until(lambda: store.incident(inc_id).state == incidents.RESOLVED,  # type: ignore[union-attr]
               what="resolved in SQLite")
    assert store.incident(inc_id).recovery_action == action  # type: ignore[union-attr]
    assert button.wait_for("FEEDBACK resolved")
    wait_until(lambda: "   no alerts" in pager.screen, what="the pager back to no alerts")


def test_off_duty_pager_is_not_paged(sim: Any, gateway: Gateway) -> None:
    ana, ben = sim.pager_of("ana"), sim.pager_of("ben")
    ana.duty()
    assert ana.wait_for(r"DUTY off seq=\d+ sent \(key\)")
    wait_until(lambda: gateway.duty.get(ana.id) is False, what="the gateway to know ana is off duty")
    assert ana.screen[0].startswith("OFF"), ana.screen
    assert "    OFF DUTY" in ana.screen
    inc_id = call_and_page(sim, "T12", "ben")  # T12 is ana's table; ben covers the terrace too
    assert ana.wait_for(rf"ALERT inc={inc_id}", timeout=0.3) is None
    ben.press()
    assert ben.wait_for(rf"ACK inc={inc_id} seq=\d+ sent")


def test_nobody_on_duty_shows_the_error_and_raises_the_alarm(venue_doc: dict[str, Any], broker: Any,
                                                            store: Store, tmp_path: Any) -> None:
    from gateway.venue import parse_venue
    from simulator.venue_sim import SimulatedVenue

    for s in venue_doc["staff"]:
        s["on_duty"] = False
    venue = parse_venue(venue_doc)
    gw = Gateway(venue, store, broker.url).start()
    sim = SimulatedVenue(venue, broker.url, tmp_path / "dev").start()
    try:
        button = sim.button_at("T1")
        button.press()
        wait_until(lambda: button.state == rbproto.ERROR, what="error pattern on the button")
        assert gw.counters.get("unreached") == 1
        assert store.active_incident("T1").state == incidents.UNREACHED  # type: ignore[union-attr]
    finally:
        sim.stop()
        gw.stop()
