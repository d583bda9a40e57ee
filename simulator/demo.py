"""`redbutton demo`: broker, gateway and a simulated venue in one process, and a scripted call.

The script presses table T12's button, waits for the responsible pager to show the alert, presses
the pager's key A to acknowledge, and checks that the table's button shows "acknowledged" and that
SQLite holds the incident's press, page and ack times; then the waiter resolves it on the pager's
pick-list (key A, key B to the recovery action, key A) and the button shows "resolved". Each step
is printed with its time since the finger went down. With --once the command exits 0 only if every
step happened."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.cli import sigterm_as_interrupt
from gateway.mqtt_io import parse_broker_url
from gateway.store import Store
from gateway.venue import Venue, load_venue

from .console import interact
from .venue_sim import SimulatedVenue

DEFAULT_VENUE = Path(__file__).resolve().parents[1] / "examples" / "demo-venue.toml"
STEP_TIMEOUT_S = 10.0


class Script:
    def __init__(self, out: Callable[[str], None]) -> None:
        self.out = out
        self.t0 = time.time()

    def step(self, what: str, at: float | None = None) -> None:
        ms = ((at or time.time()) - self.t0) * 1000
        self.out(f"  {ms:9.1f} ms  {what}")

    def fail(self, what: str) -> None:
        self.out(f"  FAILED     {what}")

    def expect(self, dev: Any, pattern: str, what: str, extra: Callable[[], str] = str) -> str | None:
        """Wait for a device's log line; print the step at its time, or the failure. -> the line."""
        hit = dev.wait_for(pattern, STEP_TIMEOUT_S)
        if hit is None:
            self.fail(what)
            return None
        self.step(what + extra(), hit[0])
        return str(hit[1])


def scripted_call(sim: SimulatedVenue, store: Store, venue: Venue, table_id: str,
                  out: Callable[[str], None] = print) -> bool:
    """One call from press to acknowledgement and resolution; True if every step was seen."""
    table = venue.tables[table_id]
    button = sim.button_at(table_id)
    staff_id = table.responder or next(s.id for s in venue.staff.values() if table.zone in s.zones)
    pager = sim.pager_of(staff_id)
    s = Script(out)
    out(f"Scripted call: a customer at {table_id} presses the red button ({button.id}); "
        f"{staff_id} wears {pager.id}.")
    s.step(f"finger on {button.id}")
    button.press()
    if not s.expect(button, r"PRESS seq=\d+ sent", "button sent a signed press"):
        return False
    alert = s.expect(pager, r"ALERT inc=\d+ shown", "pager buzzes and shows the call",
                     lambda: f": {' | '.join(pager.screen)}")
    if not alert:
        return False
    inc_id = int(alert.split("inc=")[1].split()[0])
    if not s.expect(button, r"FEEDBACK delivered", "button shows 'delivered' (steady blue): the call was heard"):
        return False
    s.step(f"{staff_id} presses the pager's key A to acknowledge")
    pager.press_a()
    if not (s.expect(pager, rf"ACK inc={inc_id} seq=\d+ sent", "pager sent the acknowledgement")
            and s.expect(button, r"FEEDBACK acknowledged",
                         "button shows 'acknowledged' (green pulse): someone is coming")):
        return False
    inc = store.incident(inc_id)
    if inc is None or inc.paged_at is None or inc.acked_at is None:
        s.fail(f"incident {inc_id} with press, page and ack times in SQLite")
        return False
    s.step(f"SQLite: incident {inc.id} {inc.state} by {inc.responder}: received->paged "
           f"{(inc.paged_at - inc.received_at) * 1000:.1f} ms, paged->acked {inc.acked_at - inc.paged_at:.2f} s")
    action = pager.app.choices()[0]
    s.step(f"{staff_id} resolves it on the pager's pick-list: {action}")
    trouble = pager.resolve(action)
    if trouble:
        s.fail(trouble)
        return False
    if not (s.expect(pager, rf"RESOLVE inc={inc_id} action={action} seq=\d+ sent", "pager sent the resolution")
            and s.expect(button, r"FEEDBACK resolved", "button shows 'resolved' (green for 3 s)")):
        return False
    inc = store.incident(inc_id)
    if inc is None or inc.recovery_action != action:
        s.fail(f"incident {inc_id} resolved with {action} in SQLite")
        return False
    s.step(f"SQLite: incident {inc.id} {inc.state}, recovery action {inc.recovery_action}")
    return True


def run_demo(venue_path: Path, once: bool, verbose: bool, out: Callable[[str], None] = print) -> int:
    from .stack import simulated_venue  # here: the gateway and its web framework, for this command only

    venue = load_venue(venue_path)
    logging.getLogger().setLevel(logging.INFO if verbose else logging.WARNING)
    sigterm_as_interrupt()
    try:
        with simulated_venue(venue, out=out, echo=verbose, web=True) as (sim, store, where):
            assert store is not None  # started here, with its own gateway
            ok = scripted_call(sim, store, venue, "T12", out)
            out("demo: every step happened" if ok else "demo: a step did not happen")
            if once:
                return 0 if ok else 1
            _host, port = parse_broker_url(where.split()[-1])
            out(f"\nThe venue keeps running. Watch it: mosquitto_sub -p {port} -v -t 'rb/#'")
            interact(sim)
            return 0
    except KeyboardInterrupt:
        return 0
    finally:
        out("stopped: devices, gateway, broker")


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="run broker, gateway and simulated venue with a scripted call")
    p.add_argument("--venue", type=Path, default=DEFAULT_VENUE)
    p.add_argument("--once", action="store_true", help="run the script and exit (0 only if every step happened)")
    p.set_defaults(func=lambda a: run_demo(a.venue, a.once, a.verbose))


__all__ = ["register", "run_demo", "scripted_call"]
