"""A line console over a simulated venue: a person presses tables' buttons and answers pagers."""

from __future__ import annotations

import sys

from gateway.cli import wait_for_interrupt

from .devices import VirtualPager
from .venue_sim import SimulatedVenue

HELP = """commands:  T12                 press the button on table T12 (short press: a call)
           cancel T12          long press on table T12's button (cancel the call)
           ack ana             key A on ana's pager (acknowledge the alert on top)
           decline ana         hold key A on ana's pager (decline: the next person is paged)
           next ana            key B on ana's pager (the next alert on top)
           resolve ana apology resolve ana's acknowledged alert with a recovery action (pick-list)
           duty ana            hold key B on ana's pager (on duty / off duty)
           screen ana          ana's pager screen, as drawn
           screens             every pager's screen on one line each
           quit                stop (Ctrl-C works too)"""


def boxed(staff: str, pager: VirtualPager) -> str:
    """A pager's screen drawn as a box of 16 columns, its rows as the OLED shows them."""
    edge = "+" + "-" * 16 + "+"
    rows = [f"|{row:<16}|" for row in pager.screen]
    return "\n".join([f"{staff} ({pager.id}){'  buzzing' if pager.buzzing else ''}", edge, *rows, edge])


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
        if arg in sim.venue.staff:
            pager = sim.pager_of(arg)
            if verb in ("ack", "decline"):
                pager.press_a(hold_ms=120 if verb == "ack" else VirtualPager.LONG_A_MS)
                return f"{verb} on {arg}'s pager"
            if verb == "next":
                pager.press_b()
                return f"next on {arg}'s pager"
            if verb == "duty":
                pager.duty()
                return f"duty toggled on {arg}'s pager"
            if verb == "resolve" and len(words) == 3:
                trouble = pager.resolve(words[2])
                return trouble or f"resolve {words[2]} on {arg}'s pager"
            if verb == "screen":
                return boxed(arg, pager)
        if verb == "screens":
            return "\n".join(f"{s.id:>6}: {' | '.join(sim.pager_of(s.id).screen)}" for s in sim.venue.staff.values())
    except KeyError:
        pass
    return HELP


def interact(sim: SimulatedVenue) -> None:
    """Read commands until 'quit' or end of input; without a terminal, wait for Ctrl-C."""
    if not sys.stdin.isatty():
        wait_for_interrupt()
    print(HELP, flush=True)
    for line in sys.stdin:
        if line.strip() in ("quit", "exit", "q"):
            return
        out = run_command(sim, line)
        if out:
            print(out, flush=True)
