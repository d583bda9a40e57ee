"""Every routing, escalation, noise and record rule of the gateway, one named test each, on a manual
clock (tests/gateway_rig.py): time moves by hand, nothing sleeps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import rbproto
from gateway import incidents
from gateway_rig import Rig, rules_doc

SERVERS = ("pgr-ana", "pgr-ben")
EVERYONE = ("pgr-ana", "pgr-ben", "pgr-flo", "pgr-mia")


@pytest.fixture
def rig(venue_doc: dict[str, Any], tmp_path: Path) -> Rig:
    r = Rig(rules_doc(venue_doc), tmp_path / "rules.db")
    r.online(*EVERYONE)
    return r


def only_incident(rig: Rig) -> int:
    ids = {m.body["inc"] for m in rig.commands("feedback")}
    assert len(ids) == 1, ids
    return ids.pop()


# ---- routing ----------------------------------------------------------------------------------

def test_the_tables_own_responder_is_paged_first(rig: Rig) -> None:
    rig.press("T12")
    assert rig.paged() == ["pgr-ana"]
    assert rig.feedback("btn-t12") == [rbproto.DELIVERED]


def test_without_a_responder_the_least_busy_of_the_zone_is_paged(rig: Rig) -> None:
    rig.press("T12")  # ana is now busy with T12
    rig.press("T14")  # T14 has no responder of its own
    assert rig.paged() == ["pgr-ana", "pgr-ben"]


def test_an_offline_pager_is_skipped(rig: Rig) -> None:
    rig.status("pgr-ana", rbproto.OFFLINE)  # its last will
    rig.press("T12")
    assert rig.paged() == ["pgr-ben"]


def test_a_pager_silent_past_its_heartbeat_window_is_skipped(rig: Rig) -> None:
    rig.heartbeat("pgr-ben")
    rig.clock.advance(60 * 2.5 + 31)  # 2.5 heartbeat intervals of 60 s, plus the grace
    rig.heartbeat("pgr-ben")  # ben keeps talking, ana has been silent since her status
    rig.press("T12")
    assert rig.paged() == ["pgr-ben"]


def test_a_pager_toggled_off_duty_is_skipped(rig: Rig) -> None:
    rig.send("pgr-ana", "duty", on=0)
    rig.press("T12")
    assert rig.paged() == ["pgr-ben"]


def test_shifts_put_staff_on_and_off_duty_and_a_toggle_holds_until_the_next_shift_change(
        venue_doc: dict[str, Any], tmp_path: Path) -> None:
    doc = rules_doc(venue_doc)
    doc["timezone"] = "UTC"
    for s in doc["staff"]:
        if s["id"] == "ana":
            s["shifts"] = [{"days": ["thu"], "start": "11:00", "end": "15:00"}]
    rig = Rig(doc, tmp_path / "shifts.db")  # the manual clock starts Thursday 2026-01-01 00:00 UTC
    rig.online(*EVERYONE)
    rig.press("T12")
    assert rig.paged() == ["pgr-ben"]  # 00:00: ana's shift has not started
    rig.press("T12", "happy")  # ... (a happy press neither joins nor pages)
    rig.clock.advance(12 * 3600)  # 12:00, inside the shift
    rig.heartbeat("pgr-ana")
    assert rig.gw._available(rig.venue.staff["ana"], rig.clock.now())
    rig.send("pgr-ana", "duty", on=0)  # she goes off early
    assert not rig.gw._available(rig.venue.staff["ana"], rig.clock.now())
    rig.clock.advance(7 * 24 * 3600)  # next Thursday 12:00: a shift started since her toggle
    rig.heartbeat("pgr-ana")
    assert rig.gw._available(rig.venue.staff["ana"], rig.clock.now())


# ---- escalation -------------------------------------------------------------------------------

def test_no_ack_within_the_timeout_pages_the_next_level(rig: Rig) -> None:
    rig.press("T12")
    rig.advance(29)
    assert rig.paged() == ["pgr-ana"]
    rig.advance(1)
    assert rig.paged() == ["pgr-ana", "pgr-flo"]  # the floor manager; ana's page stays open
    rig.advance(30)
    assert rig.paged() == ["pgr-ana", "pgr-flo", "pgr-mia"]


def test_the_ack_timeout_comes_from_the_kinds_policy(rig: Rig) -> None:
    rig.press("T12", "allergy")
    rig.advance(10)
    assert rig.paged() == ["pgr-ana", "pgr-flo"]


def test_decline_pages_the_next_person_at_once(rig: Rig) -> None:
    rig.press("T12")
    inc = only_incident(rig)
    rig.send("pgr-ana", "decline", inc=inc)
    assert rig.paged() == ["pgr-ana", "pgr-ben"]  # the next server, no waiting


def test_when_every_server_declines_the_next_level_is_paged_at_once(rig: Rig) -> None:
    rig.press("T12")
    inc = only_incident(rig)
    rig.send("pgr-ana", "decline", inc=inc)
    rig.send("pgr-ben", "decline", inc=inc)
    assert rig.paged() == ["pgr-ana", "pgr-ben", "pgr-flo"]
    assert rig.store.declined_staff(inc) == {"ana", "ben"}


def test_an_ack_stops_escalation_and_clears_the_others(rig: Rig) -> None:
    rig.press("T12")
    inc = only_incident(rig)
    rig.advance(30)  # flo is paged too
    rig.send("pgr-ana", "ack", inc=inc)
    rig.advance(3600)
    assert rig.paged() == ["pgr-ana", "pgr-flo", "pgr-ana"]  # only the resolve reminders follow, to ana
    assert [m.device for m in rig.commands("alert_cancel")] == ["pgr-flo"]
    assert rig.feedback("btn-t12")[-1] == rbproto.ACKNOWLEDGED
    assert rig.store.incident(inc).state == incidents.ACKNOWLEDGED  # type: ignore[union-attr]


def test_the_last_level_is_alerted_again_every_repeat_interval(rig: Rig) -> None:
    rig.press("T12")
    rig.advance(30)
    rig.advance(30)  # mia, the last level
    n = len(rig.alerts())
    rig.advance(60)
    again = rig.alerts()[n:]
    assert {p for p, _i, _l in again} == set(EVERYONE) - {"pgr-ben"}  # everyone paged, again
    assert all(lvl > 2 for _p, _i, lvl in again)  # more urgent each time: the pager buzzes harder


def test_acknowledged_but_not_resolved_is_alerted_again(rig: Rig) -> None:
    rig.press("T12")
    inc = only_incident(rig)
    rig.send("pgr-ana", "ack", inc=inc)
    rig.advance(599)
    assert rig.paged() == ["pgr-ana"]
    rig.advance(1)
    assert rig.alerts()[-1][0] == "pgr-ana" and rig.alerts()[-1][2] == 1  # a reminder, one level up
    rig.advance(600)
    assert rig.alerts()[-1][2] == 2
    assert rig.gw.counters.get("reminders") == 2


def test_nobody_to_page_raises_the_alarm_and_retries(rig: Rig) -> None:
    for pager in EVERYONE:
        rig.send(pager, "duty", on=0)
    rig.press("T12")
    inc = only_incident(rig)
    assert rig.paged() == []
    assert rig.store.incident(inc).state == incidents.UNREACHED  # type: ignore[union-attr]
    assert rig.feedback("btn-t12") == [rbproto.DELIVERED, rbproto.ERROR]
    assert rig.gw.counters.get("unreached") == 1
    rig.send("pgr-ben", "duty", on=1)  # ben comes on duty
    rig.advance(60)
    assert rig.paged() == ["pgr-ben"]
    assert rig.feedback("btn-t12")[-1] == rbproto.DELIVERED


def test_timers_survive_a_restart(rig: Rig) -> None:
    rig.press("T12")
    rig.advance(10)
    again = rig.restart()  # the process died 10 s after the page; its deadline is in SQLite
    again.advance(19)
    assert again.paged() == []
    again.advance(1)
    assert again.paged() == ["pgr-flo"]


def test_a_deadline_missed_while_down_fires_at_start(rig: Rig) -> None:
    rig.press("T12")
    rig.clock.advance(45)  # down from t+0 to t+45
    again = rig.restart()
    again.gw.tick()  # what start() does first
    assert again.paged() == ["pgr-flo"]


def test_a_pager_that_comes_back_gets_its_unanswered_alerts_and_the_calls_it_is_on_again(rig: Rig) -> None:
    rig.press("T12")
    inc = only_incident(rig)
    rig.status("pgr-ana", rbproto.OFFLINE)  # it rebooted: its screen is blank
    rig.status("pgr-ana", rbproto.ONLINE)
    assert rig.alerts() == [("pgr-ana", inc, 0), ("pgr-ana", inc, 0)]
    rig.send("pgr-ana", "ack", inc=inc)
    rig.status("pgr-ana", rbproto.OFFLINE)  # away (a broker restart): the re-alert of a repeat press is lost
    rig.press("T12")
    rig.status("pgr-ana", rbproto.ONLINE)
    assert rig.alerts()[2:] == [("pgr-ana", inc, 1), ("pgr-ana", inc, 1)], "the call it is on, at its urgency"
    rig.send("pgr-ana", "ack", inc=inc)  # a rebooted pager shows it as new; its ack changes nothing
    after = rig.store.incident(inc)
    assert after is not None and after.state == incidents.ACKNOWLEDGED and after.responder == "ana"
    assert rig.commands("alert_cancel") == []


def test_the_wait_shown_is_corrected_for_a_button_whose_clock_is_off(rig: Rig) -> None:
    behind = int(rig.clock.now()) - 3600  # its clock is an hour behind
    rig.send("btn-t12", "heartbeat", bat=3900, rssi=-60, fw="0.1.0", up=1, q=0, cv=0, ts=behind)
    rig.clock.advance(30)
    rig.send("btn-t12", "press", kind="complaint", bat=3900, ts=behind + 20)  # pressed 10 s ago, queued
    alert = rig.commands("alert")[-1]
    assert alert.body["age"] == 10


# ---- dedupe and cancel ------------------------------------------------------------------------

def test_a_repeat_press_joins_the_open_incident_and_raises_its_urgency(rig: Rig) -> None:
    rig.press("T12")
    rig.press("T12")
    inc = only_incident(rig)
    assert rig.alerts() == [("pgr-ana", inc, 0), ("pgr-ana", inc, 1)]  # ana again, louder; nobody new
    i = rig.store.incident(inc)
    assert i is not None and i.presses == 2 and i.urgency == 1
    assert rig.gw.counters.get("joined") == 1


def test_the_same_press_delivered_twice_opens_one_incident(rig: Rig) -> None:
    topic, payload = rbproto.encode(rig.venue.devices["btn-t12"].key, rig.venue.site, "btn-t12", "press",
                                    {"ep": 5, "seq": 1, "ts": 1, "kind": "complaint", "bat": 3900})
    rig.gw.handle(topic, payload)
    rig.gw.handle(topic, payload)  # a QoS 1 duplicate, or the button's own retry
    again = rig.restart()
    again.gw.handle(topic, payload)  # and once more after a restart
    assert rig.paged() == ["pgr-ana"] and again.paged() == []
    assert rig.gw.counters.get("duplicates") == 1 and again.gw.counters.get("duplicates") == 1
    assert rig.store.incident(2) is None


def test_cancel_before_ack_clears_the_pagers(rig: Rig) -> None:
    rig.press("T12")
    rig.send("btn-t12", "cancel", bat=3900)
    assert [m.device for m in rig.commands("alert_cancel")] == ["pgr-ana"]
    rig.advance(3600)
    assert rig.paged() == ["pgr-ana"]  # no escalation for a cancelled call


def test_cancel_after_ack_tells_the_responder(rig: Rig) -> None:
    rig.press("T12")
    rig.send("pgr-ana", "ack", inc=only_incident(rig))
    rig.send("btn-t12", "cancel", bat=3900)
    cancels = rig.commands("alert_cancel")
    assert [(m.device, m.body["why"]) for m in cancels] == [("pgr-ana", "customer cancelled")]
    assert rig.feedback("btn-t12")[-1] == rbproto.CANCELLED


# ---- noise control ----------------------------------------------------------------------------

def test_a_prankster_is_held_for_a_manager(venue_doc: dict[str, Any], tmp_path: Path) -> None:
    doc = rules_doc(venue_doc)
    doc["noise"]["aggregate_complaints"] = 10  # this test is about one button, not the zone
    rig = Rig(doc, tmp_path / "prank.db")
    rig.online(*EVERYONE)
    for _ in range(3):  # three calls, each cancelled: the limit
        rig.press("T1")
        rig.send("btn-t1", "cancel", bat=3900)
    assert rig.paged() == ["pgr-ben"] * 3
    rig.press("T1")  # the fourth within two minutes
    assert rig.paged()[-1] == "pgr-mia"  # the manager, not the staff
    held = rig.store.incident(rig.alerts()[-1][1])
    assert held is not None and held.origin == "held"
    assert rig.gw.counters.get("held") == 1
    assert rig.feedback("btn-t1")[-1] == rbproto.DELIVERED  # a real call is still seen by someone


def test_a_button_pressed_too_often_during_its_call_is_held_for_a_manager(venue_doc: dict[str, Any],
                                                                        tmp_path: Path) -> None:
    """The presses past the limit join the open call: recorded, answered, alerting nobody again;
    the call becomes a manager's (paged once), the staff page stands."""
    doc = rules_doc(venue_doc)
    rig = Rig(doc, tmp_path / "flood.db")
    rig.online(*EVERYONE)
    limit = rig.venue.rules.rate_limit_presses
    for _ in range(limit):  # one call and its repeats: a customer's, each alerting again
        rig.press("T1")
    assert rig.paged() == ["pgr-ben"] * limit
    for _ in range(50):
        rig.press("T1")
    inc = rig.store.active_incident("T1")
    assert inc is not None and inc.origin == "held" and inc.presses == limit + 50
    assert rig.paged() == ["pgr-ben"] * limit + ["pgr-mia"], "the manager, once; nobody alerted again"
    assert rig.gw.counters.get("held") == 1
    assert len(rig.feedback("btn-t1")) == limit + 50, "every press is answered"
    assert any("held for a manager" in cause for *_t, cause in rig.store.transitions(inc.id))
    rig.send("pgr-ben", "ack", inc=inc.id)  # the staff page stands: they may still take it
    after = rig.store.incident(inc.id)
    assert after is not None and after.responder == "ben"


def test_k_complaints_in_a_zone_alert_the_manager(rig: Rig) -> None:
    rig.press("T1")
    rig.press("T2")
    assert "pgr-mia" not in rig.paged()
    rig.press("T12")  # a terrace table: another zone
    rig.send("btn-t1", "cancel", bat=3900)
    rig.press("T1")  # the third in the dining room within ten minutes
    zone = [m for m in rig.commands("alert") if m.body["kind"] == "zone_complaints"]
    assert [(m.device, m.body["table"]) for m in zone] == [("pgr-mia", "dining")]
    rig.press("T2")  # still open: not alerted twice
    assert len([m for m in rig.commands("alert") if m.body["kind"] == "zone_complaints"]) == 1


# ---- the service-recovery record --------------------------------------------------------------

def test_every_transition_is_recorded_with_time_actor_and_durations(rig: Rig) -> None:
    rig.press("T12")
    inc = only_incident(rig)
    rig.clock.advance(12)
    rig.send("pgr-ana", "ack", inc=inc)
    rig.clock.advance(100)
    rig.send("pgr-ana", "resolve", inc=inc, action="replaced")
    i = rig.store.incident(inc)
    assert i is not None and i.recovery_action == "replaced"
    assert i.durations() == {"press_to_page": 0.0, "page_to_ack": 12.0, "ack_to_resolve": 100.0}
    steps = [(to, actor) for _at, _frm, to, actor, _cause in rig.store.transitions(inc)]
    assert steps == [("open", "btn-t12"), ("paged", "gateway"), ("acknowledged", "ana"), ("resolved", "ana")]


def test_compensation_cost_root_cause_and_notes_are_recorded(rig: Rig) -> None:
    rig.press("T12")
    inc = only_incident(rig)
    rig.gw.record(inc, "mia", compensation="free dessert", cost=6.5, root_cause="kitchen_delay", notes="20 min")
    i = rig.store.incident(inc)
    assert i is not None and (i.compensation, i.compensation_cost, i.root_cause, i.notes) == (
        "free dessert", 6.5, "kitchen_delay", "20 min")
    assert rig.store.transitions(inc)[-1][3:] == ("mia", "recorded compensation, compensation_cost, notes, root_cause")
    with pytest.raises(ValueError, match="root causes"):
        rig.gw.record(inc, "mia", root_cause="gremlins")


def test_a_happy_press_after_resolve_is_a_satisfied_follow_up(rig: Rig) -> None:
    rig.press("T12")
    inc = only_incident(rig)
    rig.send("pgr-ana", "ack", inc=inc)
    rig.send("pgr-ana", "resolve", inc=inc, action="apology")
    i = rig.store.incident(inc)
    assert i is not None and i.followup_due == rig.clock.now() + 900
    rig.clock.advance(300)
    rig.press("T12", "happy")
    i = rig.store.incident(inc)
    assert i is not None and (i.state, i.followup_result) == (incidents.FOLLOWED_UP, "satisfied")
    assert len(rig.paged()) == 1  # nobody paged for a happy press


def test_a_follow_up_without_a_happy_press_closes_as_no_response(rig: Rig) -> None:
    rig.press("T12")
    inc = only_incident(rig)
    rig.send("pgr-ana", "ack", inc=inc)
    rig.send("pgr-ana", "resolve", inc=inc, action="apology")
    rig.advance(900)
    i = rig.store.incident(inc)
    assert i is not None and (i.state, i.followup_result) == (incidents.CLOSED, "no_response")


def test_a_happy_press_with_nothing_open_is_recorded_as_feedback(rig: Rig) -> None:
    rig.press("T2", "happy")
    assert rig.paged() == []
    assert rig.feedback("btn-t2") == [rbproto.RESOLVED]  # a thank-you on the LED
    i = rig.store.incident(rig.commands("feedback")[0].body["inc"])
    assert i is not None and (i.kind, i.state, i.origin) == ("happy", incidents.CLOSED, "feedback")
    rig.press("T1", "happy")
    rig.press("T2", "happy")
    assert rig.paged() == []  # praise is not counted as complaints in the zone


# ---- device supervision -----------------------------------------------------------------------

def test_a_silent_button_is_an_urgent_trouble_for_the_manager(rig: Rig) -> None:
    for b in ("btn-t1", "btn-t2", "btn-t12", "btn-t14"):
        rig.heartbeat(b)
    rig.advance(300 * 2.5)
    for b in ("btn-t1", "btn-t2", "btn-t12"):
        rig.heartbeat(b)
    for p in EVERYONE:
        rig.heartbeat(p)
    rig.advance(31)  # btn-t14 has now been silent 2.5 intervals and the grace
    trouble = [m for m in rig.commands("alert") if m.body["kind"] == "dead_button"]
    assert [(m.device, m.body["table"]) for m in trouble] == [("pgr-mia", "T14")]
    assert trouble[0].body["lvl"] >= 2  # urgent: a table that cannot call anyone
    assert rig.store.devices()["btn-t14"]["trouble"] == "dead_button"
    rig.heartbeat("btn-t14")  # someone changed its battery
    rig.advance(1)
    assert rig.store.devices()["btn-t14"]["trouble"] is None
    assert rig.commands("alert_cancel")[-1].body["why"] == "device recovered"


def test_a_low_battery_is_a_trouble_until_the_cell_is_changed(rig: Rig) -> None:
    rig.heartbeat("pgr-ben", bat=3300)
    rig.advance(1)
    assert [(m.device, m.body["kind"], m.body["table"]) for m in rig.commands("alert")] == [
        ("pgr-mia", "low_battery", "ben")]
    rig.heartbeat("pgr-ben", bat=4100)
    rig.advance(1)
    assert rig.store.devices()["pgr-ben"]["trouble"] is None


def test_a_device_that_drops_off_the_broker_is_a_trouble(rig: Rig) -> None:
    rig.status("pgr-ana", rbproto.OFFLINE)
    rig.advance(1)
    assert ("pgr-mia", "silent_pager", "ana") in [
        (m.device, m.body["kind"], m.body["table"]) for m in rig.commands("alert")]
