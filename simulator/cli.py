"""`redbutton sim`: run a simulated venue against a broker (a gateway must be running there), or play
a scenario file (simulator/scenarios/*.toml) and, with --check, exit 1 when an expectation fails."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gateway.cli import DEFAULT_BROKER, sigterm_as_interrupt, wait_for_interrupt
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


def run_device(a: Any) -> int:
    """One simulated board behind a serial console (simulator/serial_console.py) until Ctrl-C: its
    config from --flash when a provisioned config.json is there, else made from the venue file."""
    import tempfile

    from .devices import VirtualButton, VirtualDevice, VirtualPager, broker_url_of, device_config
    from .serial_console import SerialConsole

    flash: Path | None = a.flash
    if flash is not None and (flash / "config.json").exists():
        try:
            dev = VirtualDevice.from_flash(flash, echo=a.verbose)
        except (ValueError, KeyError) as e:  # not JSON, no role or device: not a board's config
            print(f"redbutton sim device: {flash / 'config.json'}: {e}")
            return 2
    else:
        if a.venue is None or a.device is None:
            print("redbutton sim device: --venue and --device are needed without a provisioned --flash folder")
            return 2
        venue = load_venue(a.venue)
        if a.device not in venue.devices or venue.devices[a.device].role not in ("button", "pager"):
            print(f"redbutton sim device: {a.device!r} is not a button or pager of {a.venue}")
            return 2
        cfg = device_config(venue, a.device, a.broker)
        folder = flash or Path(tempfile.mkdtemp(prefix="rb-board-")) / a.device
        board = VirtualButton if cfg["role"] == "button" else VirtualPager
        dev = board(cfg, folder.parent, a.verbose, flash=folder)
        (folder / "config.json").write_text(json.dumps(cfg))  # kept: the next run resumes this flash
    dev.awake_ms = a.awake_ms
    console = SerialConsole(dev)
    sigterm_as_interrupt()
    try:
        print(f"console {console.port}", flush=True)
        print(f"{dev.role} {dev.id} (site {dev.cfg['site']}) on {broker_url_of(dev.cfg)}, flash {dev.flash}; "
              "type `help` on the console",
              flush=True)
        console.start()
        wait_for_interrupt()
    except KeyboardInterrupt:
        pass
    finally:
        console.stop()
    return 0


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
    d = p.add_subparsers(dest="sim_command").add_parser(
        "device", help="one simulated button or pager behind a serial console (a pseudo-terminal)")
    d.add_argument("--venue", type=Path, help="venue file (not needed with a provisioned --flash folder)")
    d.add_argument("--device", help="the device id in the venue file")
    d.add_argument("--broker", default=DEFAULT_BROKER, help=f"broker URL (default {DEFAULT_BROKER})")
    d.add_argument("--flash", type=Path, help="the board's flash folder: kept between runs; a config.json "
                                               "there (as provisioning writes it) is used as it is")
    d.add_argument("--awake-ms", type=int, metavar="MS",
                   help="a button stays awake this long after the last activity (default: its config's, 8000)")
    d.set_defaults(func=run_device)
