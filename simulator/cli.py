"""`redbutton sim`: run a simulated venue against a broker (a gateway must be running there)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.cli import DEFAULT_BROKER, sigterm_as_interrupt
from gateway.venue import load_venue

from .console import interact
from .venue_sim import SimulatedVenue


def run_sim(venue_path: Path, broker: str, verbose: bool) -> int:
    sim = SimulatedVenue(load_venue(venue_path), broker, echo=True)
    sigterm_as_interrupt()
    try:
        sim.start()
        print(f"{len(sim.buttons)} buttons and {len(sim.pagers)} pagers connected to {broker}")
        interact(sim)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("sim", help="run the venue's buttons and pagers as simulated devices")
    p.add_argument("--venue", required=True, type=Path)
    p.add_argument("--broker", default=DEFAULT_BROKER)
    p.set_defaults(func=lambda a: run_sim(a.venue, a.broker, a.verbose))
