"""The gateway's feedback to a press echoes that press's (ep, seq) as pep/pseq, so a button tells
its press's answer from a late answer to an earlier press or from news of the incident
(docs/protocol.md, "Answers to a press"). Firmware that does not read the echo gets none. On a
manual clock (tests/gateway_rig.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import rbproto
from gateway import firmware
from gateway_rig import Rig, rules_doc

PAGERS = ("pgr-ana", "pgr-ben", "pgr-flo", "pgr-mia")
NO_ECHO = (rbproto.NO_PRESS, rbproto.NO_PRESS)
BUTTON = "btn-t12"


@pytest.fixture
def rig(venue_doc: dict[str, Any], tmp_path: Path) -> Rig:
    r = Rig(rules_doc(venue_doc), tmp_path / "echo.db")
    r.online(*PAGERS)
    r.online(BUTTON, fw="0.2.0")
    return r


def press(rig: Rig, kind: str = "complaint") -> tuple[int, int]:
    """A press of T12's button; -> its (ep, seq)."""
    rig.press("T12", kind)
    return rig.ep, rig.seq[BUTTON]


def answers(rig: Rig) -> list[tuple[str, tuple[int, int]]]:
    """(state, echoed (pep, pseq)) of every feedback to the button, in order."""
    out = []
    for m in rig.commands("feedback", BUTTON):
        assert set(m.body) == {*rbproto.SCHEMA["feedback"][1], "pep", "pseq"}, m.body
        out.append((str(m.body["state"]), (int(m.body["pep"]), int(m.body["pseq"]))))
    return out


def test_the_answer_to_a_press_echoes_it(rig: Rig) -> None:
    first = press(rig)
    assert answers(rig) == [(rbproto.DELIVERED, first)]


def test_the_answer_to_a_press_that_joins_an_incident_echoes_it(rig: Rig) -> None:
    first = press(rig)
    second = press(rig)
    assert second != first
    assert rig.gw.counters.get("joined") == 1
    assert answers(rig) == [(rbproto.DELIVERED, first), (rbproto.DELIVERED, second)]


def test_a_press_sent_again_is_answered_again_with_its_echo(rig: Rig) -> None:
    """The button did not hear the answer and sends the same press (same ep, seq, bytes): answered
    again, not recorded twice; the second answer echoes the same press."""
    rig.seq[BUTTON] = 6
    body: dict[str, int | str] = {"ep": rig.ep, "seq": 7, "ts": int(rig.clock.now()), "kind": "complaint",
                                  "bat": 3900}
    topic, payload = rbproto.encode(rig.venue.devices[BUTTON].key, rig.venue.site, BUTTON, "press", body)
    rig.gw.handle(topic, payload)
    rig.gw.handle(topic, payload)
    assert rig.gw.counters.get("duplicates") == 1
    assert answers(rig) == [(rbproto.DELIVERED, (rig.ep, 7)), (rbproto.DELIVERED, (rig.ep, 7))]
    inc = rig.store.active_incident("T12")
    assert inc is not None and inc.presses == 1


def test_a_press_sent_again_after_an_ack_is_answered_with_the_state_and_its_echo(rig: Rig) -> None:
    first = press(rig)
    inc = int(rig.commands("feedback", BUTTON)[0].body["inc"])
    rig.send("pgr-ana", "ack", inc=inc)
    body: dict[str, int | str] = {"ep": first[0], "seq": first[1], "ts": int(rig.clock.now()), "kind": "complaint",
                                  "bat": 3900}
    rig.gw.handle(*rbproto.encode(rig.venue.devices[BUTTON].key, rig.venue.site, BUTTON, "press", body))
    assert answers(rig) == [(rbproto.DELIVERED, first), (rbproto.ACKNOWLEDGED, NO_ECHO),
                            (rbproto.ACKNOWLEDGED, first)]


def test_news_of_the_incident_echoes_no_press(rig: Rig) -> None:
    first = press(rig)
    inc = int(rig.commands("feedback", BUTTON)[0].body["inc"])
    rig.send("pgr-ana", "ack", inc=inc)
    rig.send("pgr-ana", "resolve", inc=inc, action="apology")
    assert answers(rig) == [(rbproto.DELIVERED, first), (rbproto.ACKNOWLEDGED, NO_ECHO),
                            (rbproto.RESOLVED, NO_ECHO)]


def test_a_quiet_press_is_answered_with_its_echo(rig: Rig) -> None:
    happy = press(rig, "happy")  # positive feedback: recorded, nobody paged
    assert rig.paged() == []
    assert answers(rig) == [(rbproto.RESOLVED, happy)]


def test_every_press_of_a_button_pressed_too_often_is_answered_with_its_echo(rig: Rig) -> None:
    """Past the rate limit (3 presses in 120 s here) a press is held for a manager; each is still
    answered, each answer echoing its own press."""
    presses = [press(rig) for _ in range(6)]
    assert rig.gw.counters.get("held") >= 1
    assert [echo for _state, echo in answers(rig)] == presses


def test_firmware_that_does_not_read_the_echo_gets_none(venue_doc: dict[str, Any], tmp_path: Path) -> None:
    """A button of firmware 0.1.0 (its codec takes no field it does not know) is answered as before."""
    rig = Rig(rules_doc(venue_doc), tmp_path / "old.db")
    rig.online(*PAGERS)
    rig.online(BUTTON, fw="0.1.0")
    rig.press("T12")
    rig.press("T12")
    feedback = rig.commands("feedback", BUTTON)
    assert [m.body["state"] for m in feedback] == [rbproto.DELIVERED, rbproto.DELIVERED]
    assert all(set(m.body) == set(rbproto.SCHEMA["feedback"][1]) for m in feedback)


def test_a_button_never_heard_of_gets_no_echo_until_its_version_is_known(rig: Rig) -> None:
    rig.press("T14")  # btn-t14 has sent no status or heartbeat yet
    (m,) = rig.commands("feedback", "btn-t14")
    assert set(m.body) == set(rbproto.SCHEMA["feedback"][1])
    rig.send("btn-t14", "heartbeat", bat=3900, rssi=-60, fw="0.2.0", up=1, q=0, cv=0)
    rig.press("T14")
    assert rig.commands("feedback", "btn-t14")[-1].body["pseq"] == rig.seq["btn-t14"]


@pytest.mark.parametrize(("fw", "reads"), [("0.1.0", False), ("0.2.0", True), ("0.10.1", True), ("1.0", True),
                                           ("0.2.0-dirty", True), ("manual", False), ("", False), (None, False)])
def test_which_firmware_reads_the_echo(fw: str | None, reads: bool) -> None:
    assert firmware.reads_echo(fw) is reads
