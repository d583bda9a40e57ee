"""`python -m bench` (what `make bench` runs): every measurement in one unattended run, then
bench/results/latest.json, latest.md, latest.svg, latest.png and the profile summaries.

    python -m bench [--quick] [--only baseline,e2e,...] [--out DIR] [--no-profile] [--keep-work]

A measurement that fails is reported as failed and the others still run; the exit status is 1 then.
Goals that do not hold do not change the exit status: the bench measures, it does not gate."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from simulator.load import raise_fd_limit

from . import baseline, e2e, escalation, firmware, plot, report, restart, throughput
from .rig import Context, Section

SECTIONS: dict[str, Callable[[Context], Section]] = {
    "baseline": baseline.run,
    "e2e": e2e.run,
    "throughput": throughput.run,
    "escalation": escalation.run,
    "restart": restart.run,
    "firmware": firmware.run,
}
RESULTS = Path(__file__).resolve().parent / "results"


def sections(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown section {', '.join(unknown) or '(none)'}; "
                                         f"choose from {', '.join(SECTIONS)}")
    return names


def versions() -> dict[str, str]:
    """What the figures depend on beyond the code: the interpreter, the MQTT client, the broker."""
    from importlib.metadata import version

    from gateway.broker import find_mosquitto

    try:
        broker = subprocess.run([find_mosquitto(), "-h"], capture_output=True, text=True, timeout=10).stdout
        mosquitto = broker.splitlines()[0].strip() if broker else "?"
    except Exception as e:  # the broker section will fail with a clearer message of its own
        mosquitto = f"? ({e})"
    return {"python": sys.version.split()[0], "paho-mqtt": version("paho-mqtt"), "mosquitto": mosquitto}


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes: shows the bench works, in seconds")
    p.add_argument("--only", type=sections, default=list(SECTIONS), metavar="NAMES",
                   help=f"comma-separated subset of: {', '.join(SECTIONS)}")
    p.add_argument("--out", type=Path, default=RESULTS, help=f"where the results go (default {RESULTS})")
    p.add_argument("--no-profile", action="store_true", help="skip the cProfile runs (on by default unless --quick)")
    p.add_argument("--keep-work", action="store_true", help="keep the scratch folder (databases, gateway logs)")
    a = p.parse_args(argv)
    # The light devices and the broker need a socket each per device; mosquitto inherits this limit.
    raise_fd_limit(8192)
    logging.getLogger("redbutton").setLevel(logging.WARNING)
    started = time.perf_counter()
    chosen = [n for n in SECTIONS if n in a.only]
    meta: dict[str, object] = {"started": datetime.now(UTC).isoformat(timespec="seconds"), "quick": a.quick,
                               "cpus": os.cpu_count(), "loadavg_before": loadavg(), "versions": versions(),
                               "sections": chosen}
    work = Path(tempfile.mkdtemp(prefix="rb-bench-"))
    a.out.mkdir(parents=True, exist_ok=True)
    ctx = Context(quick=a.quick, work=work, results=a.out, profile=not (a.no_profile or a.quick))
    found: dict[str, Section] = {}
    errors: dict[str, str] = {}
    try:
        for name in chosen:
            print(f"== {name}", flush=True)
            t0 = time.perf_counter()
            try:
                found[name] = SECTIONS[name](ctx)
            except Exception as e:  # one failed measurement must not cost the others
                traceback.print_exc()
                errors[name] = f"{type(e).__name__}: {e}"
            print(f"   ({time.perf_counter() - t0:.1f} s)", flush=True)
    finally:
        if a.keep_work:
            print(f"scratch files kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    curves = {label: samples for sec in found.values() for label, samples in sec.curves.items()}
    try:
        _svg, png = plot.draw(curves, a.out)
        meta["plot"] = png.name
    except Exception as e:
        traceback.print_exc()
        errors["plot"] = f"{type(e).__name__}: {e}"
    meta.update(errors=errors, loadavg_after=loadavg(), wall_s=round(time.perf_counter() - started, 1))
    written = report.write(a.out, found, meta)
    print((a.out / "latest.md").read_text())
    for g in written["goals"]:
        print(f"{g['mark']:>14}  {g['name']}: {g['measured']} (goal {g['target']})")
    print(f"wrote {a.out}/latest.json, latest.md{', latest.png' if 'plot' in meta else ''} "
          f"in {meta['wall_s']} s")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
