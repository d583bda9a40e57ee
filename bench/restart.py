"""Restart: from starting the gateway to all of 10,000 open incidents restored.

The database holds 10,000 paged incidents with their ack timers an hour out (bench/incidents.py).
The figure is the real command's: `python -m gateway.cli gateway` spawned on that database, until
its log says it is up with 10,000 timers restored (Gateway.start: the venue read, the store opened,
every deadline loaded into the scheduler, the broker connected, the first tick done). The median of
three starts. Beside it, what the same start costs without the process around it (in this
process: load_venue, Store, Gateway, start) and what the process pays before it restores anything
(the interpreter, and `python -m gateway.cli --help`, which imports everything `gateway` does)."""

from __future__ import annotations

import math
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from gateway.service import Gateway
from gateway.store import Store
from gateway.venue import load_venue, parse_venue
from simulator.load import synthetic_doc

from . import profiling
from .escalation import gateway_log
from .incidents import build_open_incidents
from .rig import REPO, Context, GatewayProcess, Section, broker, write_venue


def seconds_to_run(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    return time.perf_counter() - t0


def run(ctx: Context) -> Section:
    n = 300 if ctx.quick else 10_000
    starts = 1 if ctx.quick else 3
    doc = synthetic_doc(n, 10 if ctx.quick else 100, ctx.site("restart"))
    venue = parse_venue(doc, "<synthetic>")
    venue_file = write_venue(ctx, doc)
    db = ctx.work / f"{venue.site}.db"
    figures: dict[str, Any] = {"open_incidents": n}
    with broker(ctx, "restart") as b:
        store = Store(db)
        build_open_incidents(store, venue, n, time.time(), 3600)
        store.close()
        ups, restored = [], []
        for _ in range(starts):
            gp = GatewayProcess(ctx, venue_file, b.url, db)
            try:
                ups.append(gp.wait_up())
                restored.append(gp.restored)
            finally:
                gp.stop()
        figures["process_up_s"] = [round(u, 3) for u in ups]
        figures["restore_s"] = round(statistics.median(ups), 3)
        figures["timers_restored"] = restored
        figures["all_restored"] = all(r == n for r in restored)
        with gateway_log(ctx, "restart"):
            t0 = time.perf_counter()
            store = Store(db)
            gw = Gateway(load_venue(venue_file), store, b.url)
            gw.start()
            figures["in_process_s"] = round(time.perf_counter() - t0, 3)
            gw.stop()
        figures["in_process_restored"] = len(gw.scheduler.due(math.inf))
        figures["open_in_store"] = len(store.active_incidents())
        store.close()
    figures["interpreter_s"] = round(seconds_to_run([sys.executable, "-c", "pass"]), 3)
    figures["cli_imports_s"] = round(seconds_to_run([sys.executable, "-m", "gateway.cli", "--help"]), 3)
    ctx.say(f"  {n} open incidents: gateway process up with {restored} timers restored in "
            f"{figures['process_up_s']} s (median {figures['restore_s']} s); in-process restore "
            f"{figures['in_process_s']} s; interpreter {figures['interpreter_s']} s, CLI imports "
            f"{figures['cli_imports_s']} s")
    if ctx.profile:
        figures["profile"] = profile_run(ctx, venue_file, db)
    return Section(figures)


def import_times(top: int = 25) -> list[str]:
    """`python -X importtime -m gateway.cli --help`: the imports that take longest, nesting kept."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "gateway.cli", "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    rows = []
    for line in proc.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if not line.startswith("import time:") or len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        rows.append((int(parts[1]), parts[2].rstrip()))
    rows.sort(key=lambda r: r[0], reverse=True)
    return [f"{'cumulative ms':>14}  module (indented: imported by the one above it in import order)",
            *(f"{us / 1000:>14.1f} {name}" for us, name in rows[:top])]


def profile_run(ctx: Context, venue_file: Path, db: Path) -> str:
    """The in-process restore under cProfile, and the imports the process pays first."""
    prof = profiling.Profile()
    with broker(ctx, "restart-profile") as b, gateway_log(ctx, "restart-profile"):
        def restore() -> tuple[Gateway, Store]:
            store = Store(db)
            gw = Gateway(load_venue(venue_file), store, b.url)
            gw.start()
            return gw, store

        t0 = time.perf_counter()
        gw, store = prof.runcall(restore)
        took = time.perf_counter() - t0
        gw.stop()
        store.close()
    out = ctx.results / "profile-restart.txt"
    head = [f"load_venue + Store + Gateway + start on {db.name}, in this process under cProfile: {took:.3f} s.",
            "", "Import times of the command before it does anything (python -X importtime -m gateway.cli --help):",
            *import_times()]
    profiling.write_summary(out, "Where a restart's time goes", head,
                            [profiling.part("Main thread: the restore", profiling.stats_of(prof), None, "restart",
                                            top=30)])
    return str(out.name)
