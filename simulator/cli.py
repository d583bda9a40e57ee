"""`redbutton sim`: run a simulated venue against a broker (a gateway must be running there), or play
a scenario file (simulator/scenarios/*.toml) and, with --check, exit 1 when an expectation fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.cli import DEFAULT_BROKER, sigterm_as_interrupt
from gateway.venue import load_venue

from .console import interact
from .venue_sim import SimulatedVenue


def run_sim(venue_path: Path | None, broker: str, verbose: bool) -> int:
    if venue_path is None:
        print("redbutton sim: --venue is needed without --scenario")
        return 2
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


def play(a: Any) -> int:
    """A scenario: self-contained when the file or --self-contained says so, else against --broker."""
    from .scenario import ScenarioError, run_scenario  # the engine is only loaded for a scenario

    try:
        outcome = run_scenario(a.scenario, broker_url=a.broker, venue_path=a.venue, db=a.db,
                               self_contained=True if a.self_contained else None, echo=a.verbose)
    except ScenarioError as e:
        print(f"redbutton sim: {e}")
        return 2
    if outcome.passed:
        print(f"scenario {outcome.name}: every expectation met")
        return 0
    print(f"scenario {outcome.name}: {len(outcome.failures)} expectation(s) failed:")
    for failure in outcome.failures:
        print(f"  {failure}")
    return 1 if a.check else 0


def register(sub: Any) -> None:
    p = sub.add_parser("sim", help="run the venue's buttons and pagers as simulated devices, or play a scenario")
    p.add_argument("--venue", type=Path, help="venue file (a scenario names its own)")
    p.add_argument("--broker", default=DEFAULT_BROKER)
    p.add_argument("--scenario", type=Path, help="play this scenario file instead of the interactive console")
    p.add_argument("--check", action="store_true", help="exit 1 when an expectation of the scenario fails")
    p.add_argument("--self-contained", action="store_true",
                   help="start a private broker and gateway for the scenario (scenarios default to this)")
    p.add_argument("--db", type=Path,
                   help="the running gateway's SQLite file, for store checks without --self-contained")
    p.set_defaults(func=lambda a: play(a) if a.scenario else run_sim(a.venue, a.broker, a.verbose))
