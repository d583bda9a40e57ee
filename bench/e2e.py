"""Press -> pager alert through the gateway, at idle and under background load, each next to a
two-hop baseline measured in the same run.

A run is `redbutton load`'s own LoadRun (simulator/load.py: light devices with the firmware's
Messenger, one MQTT connection each, presses as a Poisson process, pagers acknowledging after ~1 s
and resolving ~2 s later, the store as ground truth) against the gateway as a process of its own.
The press is stamped when the light button publishes it, the alert when the light pager's client
receives it, both in this process. While it runs, a relay probe (publisher -> broker -> bench.relay
-> broker -> subscriber, payload of a press's size, 20 a second) rides on the load's own selector
threads; only its samples sent between the first and the last press count, so it saw the same load.
LoadRun's own one-hop probe is reported too."""

from __future__ import annotations

import json
import time
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from typing_extensions import override

from gateway.broker import Mosquitto
from gateway.venue import parse_venue
from simulator.load import LoadRun, Options, recorded_presses, synthetic_doc

from . import profiling
from .rig import (
    Context,
    GatewayProcess,
    RelayProcess,
    RoundTrip,
    Section,
    broker,
    cpu_seconds,
    message_sizes,
    write_venue,
)
from .stats import Summary, ratio, summarize_ms

RELAY_IN, RELAY_OUT = "bench/relay/in", "bench/relay/out"
RELAY_EVERY_S = 0.05
SETTLE_WINDOW_S, SETTLE_CPU, SETTLE_MAX_S = 0.25, 0.05, 20.0


class SettledLoadRun(LoadRun):
    """LoadRun, pressing only once the gateway has worked off the connection storm: every light
    device sends its status and, once configured, a heartbeat, ~2,200 messages that the gateway is
    still handling when LoadRun would start pressing. The first presses would queue behind them and
    measure the storm, not the gateway; a venue's devices do not all boot in the same second."""

    def __init__(self, *args: Any, gateway_pid: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gateway_pid = gateway_pid
        self.settle_s = 0.0

    @override
    def _connect(self, out: Callable[[str], None]) -> None:
        super()._connect(out)
        t0 = time.perf_counter()
        self.settle_s = settle(self.gateway_pid)
        out(f"gateway settled {self.settle_s:.1f} s after the devices were configured"
            + ("" if time.perf_counter() - t0 < SETTLE_MAX_S else " (gave up waiting: still busy)"))


def settle(pid: int) -> float:
    """Wait until the process uses under 5 % of a core over a quarter second (at most 20 s); -> seconds waited."""
    t0 = time.perf_counter()
    before = cpu_seconds(pid)
    while time.perf_counter() - t0 < SETTLE_MAX_S:
        time.sleep(SETTLE_WINDOW_S)
        now = cpu_seconds(pid)
        if now - before < SETTLE_CPU * SETTLE_WINDOW_S:
            break
        before = now
    return time.perf_counter() - t0


@dataclass
class RunResult:
    """One LoadRun against one gateway process, with its same-run baselines."""

    label: str
    buttons: int
    pagers: int
    rate: float  # asked, presses per second
    seconds: float
    report: dict[str, Any]  # LoadRun's Report, as `redbutton load --json` writes it
    latency: Summary  # press publish -> first alert of its incident on a pager, ms
    two_hop: Summary  # the relay probe over the same window, ms
    two_hop_lost: int
    gateway_cpu_s: float
    wall_s: float
    samples: list[float] = field(default_factory=list)
    two_hop_samples: list[float] = field(default_factory=list)

    @property
    def achieved(self) -> float:
        """Presses per second the broker acknowledged over the pressing time."""
        return round(self.report["presses_sent"] / self.seconds, 1) if self.seconds else 0.0

    @property
    def lost(self) -> int | None:
        lost = self.report["lost"]
        return None if lost is None else int(lost)

    @property
    def complete(self) -> bool:
        """Nothing lost, every press answered on its button and alerted on a pager."""
        r = self.report
        return (self.lost == 0 and r["presses_sent"] == r["presses_published"] == r["answered"] == r["alerted"]
                and r["presses_sent"] > 0)

    def figures(self) -> dict[str, Any]:
        r = self.report
        added = (round(self.latency.p99_ms - self.two_hop.p99_ms, 3)
                 if self.latency.p99_ms is not None and self.two_hop.p99_ms is not None else None)
        return {
            "buttons": self.buttons, "pagers": self.pagers, "rate_asked": self.rate, "seconds": self.seconds,
            "presses_per_s": self.achieved, "presses_sent": r["presses_sent"],
            "presses_recorded": r["presses_recorded"], "lost": self.lost, "incidents": r["incidents"],
            "joined": r["joined"], "alerted": r["alerted"], "answered": r["answered"], "complete": self.complete,
            "press_to_alert": self.latency.as_dict(),
            "press_to_feedback": _summary(r["feedback_latency"]).as_dict(),
            "two_hop": {**self.two_hop.as_dict(), "lost": self.two_hop_lost},
            "one_hop": _summary(r["baseline"]).as_dict(),
            "over_two_hop_p50": ratio(self.latency.p50_ms, self.two_hop.p50_ms),
            "over_two_hop_p99": ratio(self.latency.p99_ms, self.two_hop.p99_ms),
            "added_p99_ms": added,
            "cpu_percent": self.cpu_percent(),
        }


    def cpu_percent(self) -> dict[str, float | None]:
        """Share of one core over the measured phase: the gateway process, this process (the light
        devices and probes), mosquitto."""
        def pct(v: float | None) -> float | None:
            return round(100 * v / self.wall_s, 1) if v is not None and self.wall_s else None

        cpu = self.report["cpu"]
        return {"gateway": pct(self.gateway_cpu_s), "load_generator": pct(cpu.get("process")),
                "mosquitto": pct(cpu.get("mosquitto"))}


def _summary(f: dict[str, Any]) -> Summary:
    """LoadRun's Figures (the same nearest-rank percentiles) as a Summary."""
    return Summary(f["n"], f["p50_ms"], f["p90_ms"], f["p99_ms"], f["max_ms"], None)


def press_to_alert_ms(run: LoadRun) -> list[float]:
    """Each recorded press's delay to the first alert of its incident after it, in ms: the samples
    behind LoadRun's report.latency (which keeps only their percentiles), matched the same way."""
    assert run.db_path is not None
    recorded = recorded_presses(run.db_path, run.epoch, {b.id for b in run.buttons})
    with run.tally.lock:
        pressed = dict(run.tally.pressed)
        alerts = {k: sorted(v) for k, v in run.tally.alerts.items()}
    out = []
    for key, at in pressed.items():
        inc = recorded.get(key)
        if inc is None:
            continue
        times = alerts.get(inc, [])
        i = bisect_left(times, at)
        if i < len(times):
            out.append((times[i] - at) * 1000)
    return out


def measured_run(ctx: Context, b: Mosquitto, label: str, buttons: int, pagers: int, rate: float, seconds: float,
                 drain_s: float = 30.0, profile: Path | None = None, timings: Path | None = None) -> RunResult:
    """A fresh site, venue file, database and gateway process; one LoadRun with the relay probe."""
    site = ctx.site(label[:8])
    doc = synthetic_doc(buttons, pagers, site)
    venue = parse_venue(doc, "<synthetic>")
    db = ctx.work / f"{site}.db"
    gw = GatewayProcess(ctx, write_venue(ctx, doc), b.url, db, profile, timings)
    try:
        gw.wait_up()
        opts = Options(seconds=seconds, rate=rate, ack_after=1.0, resolve_after=2.0, drain_s=drain_s)
        run = SettledLoadRun(venue, b.url, opts, str(db), None, b.proc.pid if b.proc else None,
                             gateway_pid=gw.proc.pid)
        probe = RoundTrip(b.url, RELAY_IN, RELAY_OUT, run.workers[0], run.workers[-1], message_sizes()["press"],
                          f"{site}-relay")
        probe.connect()
        probe.start(RELAY_EVERY_S)  # from the connection on; only the pressing window's samples count
        cpu0, t0 = cpu_seconds(gw.proc.pid), time.perf_counter()
        report = run.run(out=lambda line: ctx.say(f"    {line}"))
        cpu1 = cpu_seconds(gw.proc.pid)
        wall = report.wall_s or (time.perf_counter() - t0)
        probe.stop()
    finally:
        gw.stop()
    samples = press_to_alert_ms(run)
    latency = summarize_ms(samples)
    if latency.n != report.latency.n or latency.p99_ms != report.latency.p99_ms:
        ctx.say(f"    note: recomputed press->alert ({latency.n}, p99 {latency.p99_ms}) differs from "
                f"LoadRun's ({report.latency.n}, p99 {report.latency.p99_ms})")
    with run.tally.lock:
        times = list(run.tally.pressed.values())
    two_hop, missing = probe.within(min(times), max(times)) if times else ([], 0)
    result = RunResult(label, buttons, pagers, rate, seconds, asdict(report), latency, summarize_ms(two_hop),
                       missing, cpu1 - cpu0, wall, samples, two_hop)
    ctx.say(f"    {label}: {result.achieved}/s sent, lost {result.lost}, press->alert p50 {latency.p50_ms} "
            f"p99 {latency.p99_ms} ms; two-hop p50 {result.two_hop.p50_ms} p99 {result.two_hop.p99_ms} ms; "
            f"gateway CPU {result.cpu_percent()['gateway']} %")
    return result


def run(ctx: Context) -> Section:
    # (buttons, pagers, presses/s, seconds): idle is a small venue with nothing else going on;
    # background load is 1,000 buttons and 100 pagers connected, heartbeating, pressing at 20/s
    # (a table pressing every 50 s: well above a real evening, still far from saturation).
    idle = (20, 4, 10.0, 3.0) if ctx.quick else (100, 10, 10.0, 30.0)
    load = (100, 10, 20.0, 3.0) if ctx.quick else (1000, 100, 20.0, 45.0)
    figures: dict[str, Any] = {}
    curves: dict[str, list[float]] = {}
    with broker(ctx, "e2e") as b:
        relay = RelayProcess(ctx, b.url, RELAY_IN, RELAY_OUT)
        try:
            for label, (buttons, pagers, rate, seconds) in (("idle", idle), ("load", load)):
                ctx.say(f"  {label}: {buttons} buttons, {pagers} pagers, {rate:g} presses/s for {seconds:g} s")
                r = measured_run(ctx, b, label, buttons, pagers, rate, seconds)
                figures[label] = r.figures()
                curves[f"{label} run: press -> pager alert"] = r.samples
                curves[f"{label} run: two hops via relay, same run"] = r.two_hop_samples
            if ctx.profile:
                figures["profile"] = profile_run(ctx, b, idle[:3], load[:3], 15.0)
        finally:
            relay.stop()
    return Section(figures, curves)


def breakdown(r: RunResult, timings: dict[str, Any]) -> list[str]:
    """The timed run's figures as lines: where the milliseconds between press and alert are."""
    def row(label: str, s: Summary) -> str:
        return f"{label:<58}{s.n:>7}{_ms(s.p50_ms):>9}{_ms(s.p90_ms):>9}{_ms(s.p99_ms):>9}{_ms(s.max_ms):>9}"

    def of(key: str) -> Summary:
        return summarize_ms(x * 1000 for x in timings.get(key, []))

    commits = timings.get("commit", [])
    messages = len(timings.get("handle", [])) + len(timings.get("press_handle", []))
    ticks = timings.get("tick", [])
    seconds = timings.get("seconds") or 1.0
    return [f"{'(ms)':<58}{'n':>7}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}",
            row("press -> pager alert, end to end", r.latency),
            row("two hops via the relay, same run", r.two_hop),
            row("gateway: press handling starts -> its alert is published", of("press_to_alert")),
            row("gateway: a press's whole handling (alert, then bookkeeping)", of("press_handle")),
            row("gateway: any other message's handling", of("handle")),
            row("gateway: a tick (holds the gateway's lock)", of("tick")),
            row("gateway: a SQLite commit", of("commit")),
            f"ticks: {len(ticks)} in {seconds:.0f} s ({len(ticks) / seconds:.1f}/s); commits: {len(commits)} for "
            f"{messages} messages handled ({len(commits) / max(1, messages):.1f} each; the devices' statuses and "
            f"heartbeats included), {sum(c > 0.002 for c in commits)} of them over 2 ms"]


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def profile_run(ctx: Context, b: Mosquitto, idle: tuple[int, int, float], load: tuple[int, int, float],
                seconds: float) -> str:
    """The idle and the loaded run again with the gateway's timings stamped (no profiler: where the
    added milliseconds are), then the idle run under cProfile (what a press's handling calls);
    profile-e2e.txt."""
    head: list[str] = ["Each run again with the gateway as bench.gateway_proc, timed (perf_counter stamps, no "
                       "profiler): where the milliseconds between press and alert are.", ""]
    for label, (buttons, pagers, rate) in (("idle", idle), ("load", load)):
        stamps = ctx.work / f"e2e-{label}.timings.json"
        ctx.say(f"  timings: the {label} run for {seconds:g} s with the gateway's handling and ticks timed")
        timed = measured_run(ctx, b, f"time{label}", buttons, pagers, rate, seconds, timings=stamps)
        timings: dict[str, Any] = json.loads(stamps.read_text()) if stamps.exists() else {}
        head += [f"{label}: {buttons} buttons, {pagers} pagers, {rate:g} presses/s for {seconds:g} s",
                 *breakdown(timed, timings), ""]
    buttons, pagers, rate = idle
    prefix = ctx.work / "e2e.prof"
    ctx.say(f"  profile: the idle run for {seconds:g} s with the gateway under cProfile")
    r = measured_run(ctx, b, "profile", buttons, pagers, rate, seconds, profile=prefix)
    handle = profiling.load([prefix.with_name(prefix.name + ".handle")])
    tick = profiling.load([prefix.with_name(prefix.name + ".tick")])
    if handle is None:
        return "no profile was written"
    presses = profiling.calls_of(handle, "gateway/service.py", "on_press")
    ticks = profiling.calls_of(tick, "gateway/service.py", "tick") if tick is not None else 0
    head += [f"The idle run under cProfile: {presses} presses handled, press->alert p50 {r.latency.p50_ms} p99 "
             f"{r.latency.p99_ms} ms under the profiler.",
             "On the way to the alert: Gateway.handle (verify, replay window) -> on_press (press_incident, "
             "active_incident, open_incident, the button's feedback) -> _escalate (incident, paged_staff, busy, "
             "the online set, router) -> _page -> _alert (publish); after it: add_page, move, _set_deadline, "
             "_aggregate, save_replay.",
             f"The escalation thread ran Gateway.tick {ticks} times ({ticks / max(1, presses):.2f} per press), "
             "each under the gateway's lock."]
    parts = [profiling.part("MQTT thread: Gateway.handle", handle, presses, "press", top=25),
             ["Where on_press, _escalate and _page spend their time (callees, cumulative):",
              profiling.callees(handle, r"service.py:\d+\((on_press|_escalate|_page)\)")]]
    if tick is not None:
        parts.append(profiling.part("Escalation thread: Gateway.tick", tick, presses, "press", top=10))
    out = ctx.results / "profile-e2e.txt"
    profiling.write_summary(out, "What a press costs the gateway before and after its alert", head, parts)
    return str(out.name)
