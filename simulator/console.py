"""A line console over a simulated venue: a person presses tables' buttons and answers pagers."""

from __future__ import annotations

import sys
import threading

from .venue_sim import SimulatedVenue

HELP = """commands:  T12          press the button on table T12 (short press: a call)
           cancel T12   long press on table T12's button (cancel the call)
           ack ana      short press on ana's pager (acknowledge)
           decline ana  long press on ana's pager (decline)
           screens      show every pager's screen
           quit         stop (Ctrl-C works too)"""


def run_command(sim: SimulatedVenue, line: str) -> str:
    words = line.split()
    if not words:
        return ""
    verb, arg = words[0], (words[1] if len(words) > 1 else "")
    try:
        if verb in sim.venue.tables:
            sim.button_at(verb).press()
            return f"pressed {verb}"
        if verb == "cancel" and arg in sim.venue.tables:
            sim.button_at(arg).press(hold_ms=1700)
            return f"long press on {arg}"
        if verb in ("ack", "decline") and arg in sim.venue.staff:
            sim.pager_of(arg).press(hold_ms=120 if verb == "ack" else 1700)
            return f"{verb} on {arg}'s pager"
        if verb == "screens":
            return "\n".join(f"{s.id:>6}: {' | '.join(sim.pager_of(s.id).screen)}" for s in sim.venue.staff.values())
    except KeyError:
        pass
    return HELP


def interact(sim: SimulatedVenue) -> None:
    """Read commands until 'quit' or end of input; without a terminal, wait for Ctrl-C."""
    if not sys.stdin.isatty():
        threading.Event().wait()
    print(HELP, flush=True)
    for line in sys.stdin:
        if line.strip() in ("quit", "exit", "q"):
            return
        out = run_command(sim, line)
        if out:
            print(out, flush=True)
