"""Property test of the incident lifecycle: whatever customers, staff, timers and restarts do, in any
order, no incident reaches an invalid state, no press is lost or counted twice, and every open call
is with a person or raising the alarm."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import rbproto
from conftest import demo_doc
from gateway import escalation, incidents
from gateway_rig import Rig, rules_doc

TABLES = ("T1", "T2", "T12", "T14")
PAGERS = ("pgr-ana", "pgr-ben", "pgr-flo", "pgr-mia")
KINDS = ("complaint", "allergy", "help", "happy")
# the timer each active state must have running, so nothing waits for ever
TIMER_OF = {incidents.PAGED: (escalation.ACK, escalation.REPEAT), incidents.ACKNOWLEDGED: (escalation.RESOLVE,),
            incidents.UNREACHED: (escalation.RETRY,)}


class Venue(RuleBasedStateMachine):
    @initialize()
    def open_venue(self) -> None:
        self.dir = tempfile.TemporaryDirectory()
        doc = rules_doc(demo_doc())
        doc["site"] = "prop"
        self.rig = Rig(doc, Path(self.dir.name) / "p.db")
        self.rig.online(*PAGERS)
        self.presses: list[tuple[str, int, int]] = []  # (button, ep, seq) of every press sent

    def teardown(self) -> None:
        if hasattr(self, "rig"):
            self.rig.store.close()
            self.dir.cleanup()

    def incidents(self) -> list[Any]:
        out = []
        i = 1
        while (inc := self.rig.store.incident(i)) is not None:
            out.append(inc)
            i += 1
        return out

    # ---- what people and time do ---------------------------------------------------------------

    @rule(table=st.sampled_from(TABLES), kind=st.sampled_from(KINDS))
    def press(self, table: str, kind: str) -> None:
        button = self.rig.venue.tables[table].button
        self.rig.press(table, kind)
        self.presses.append((button, self.rig.ep, self.rig.seq[button]))

    @rule(table=st.sampled_from(TABLES))
    def press_again_the_same_message(self, table: str) -> None:
        """A QoS 1 duplicate or a device retry of the table's last press."""
        button = self.rig.venue.tables[table].button
        mine = [p for p in self.presses if p[0] == button]
        if mine:
            _b, ep, seq = mine[-1]
            body: dict[str, int | str] = {"ep": ep, "seq": seq, "ts": 1, "kind": "complaint", "bat": 3900}
            # a different ts: a replayed number with other content must not open anything either
            topic, payload = rbproto.encode(self.rig.venue.devices[button].key, self.rig.venue.site, button,
                                            "press", body)
            self.rig.gw.handle(topic, payload)

    @rule(table=st.sampled_from(TABLES))
    def cancel(self, table: str) -> None:
        self.rig.send(self.rig.venue.tables[table].button, "cancel", bat=3900)

    @rule(pager=st.sampled_from(PAGERS), answer=st.sampled_from(("ack", "decline")), pick=st.integers(0, 5))
    def answer(self, pager: str, answer: str, pick: int) -> None:
        incs = self.incidents()
        if incs:
            self.rig.send(pager, answer, inc=incs[pick % len(incs)].id)

    @rule(pager=st.sampled_from(PAGERS), pick=st.integers(0, 5), action=st.sampled_from(("apology", "fixed")))
    def resolve(self, pager: str, pick: int, action: str) -> None:
        incs = self.incidents()
        if incs:
            self.rig.send(pager, "resolve", inc=incs[pick % len(incs)].id, action=action)

    @rule(pager=st.sampled_from(PAGERS), on=st.booleans())
    def duty(self, pager: str, on: bool) -> None:
        self.rig.send(pager, "duty", on=int(on))

    @rule(seconds=st.sampled_from((1, 9, 10, 29, 30, 60, 600, 900)), quiet=st.booleans())
    def time_passes(self, seconds: int, quiet: bool) -> None:
        """Time passes; the devices send their heartbeats, unless they have all gone quiet."""
        left = seconds
        while left > 0:
            step = min(left, 60)
            if not quiet:
                for device in self.rig.venue.devices:
                    self.rig.heartbeat(device)
            self.rig.advance(step)
            left -= step

    @rule()
    def restart(self) -> None:
        self.rig = self.rig.restart()
        self.rig.ep += 1  # devices keep their epochs; the gateway's own restarts

    # ---- what must always hold -----------------------------------------------------------------

    @invariant()
    def every_press_is_recorded_once(self) -> None:
        if not hasattr(self, "rig"):
            return
        for button, ep, seq in self.presses:
            assert self.rig.store.press_incident(button, ep, seq) is not None, (button, ep, seq)

    @invariant()
    def every_history_follows_the_lifecycle(self) -> None:
        if not hasattr(self, "rig"):
            return
        for inc in self.incidents():
            state = None
            for _at, frm, to, _actor, _cause in self.rig.store.transitions(inc.id):
                assert frm == state, f"incident {inc.id}: history jumps from {state} to a step from {frm}"
                assert to == frm or state is None or to in incidents.TRANSITIONS[frm], f"{frm} -> {to}"
                state = to
            assert state == inc.state

    @invariant()
    def each_open_call_is_with_someone_or_raising_the_alarm(self) -> None:
        if not hasattr(self, "rig"):
            return
        active: dict[str, int] = {}
        for inc in self.incidents():
            if inc.state not in incidents.ACTIVE:
                continue
            assert inc.table_id not in active, f"two open incidents at {inc.table_id}"
            active[inc.table_id] = inc.id
            if inc.state == incidents.PAGED:
                assert self.rig.store.outstanding_pages(inc.id), f"incident {inc.id} paged but nobody holds it"
            elif inc.state == incidents.ACKNOWLEDGED:
                assert inc.responder is not None
            assert inc.state != incidents.OPEN, f"incident {inc.id} left open: nobody paged, no alarm"
            assert inc.deadline_kind in TIMER_OF[inc.state], f"incident {inc.id} {inc.state} has no timer"


TestIncidentLifecycle = Venue.TestCase
TestIncidentLifecycle.settings = settings(max_examples=100, stateful_step_count=30, deadline=None,
                                          suppress_health_check=[HealthCheck.too_slow])
