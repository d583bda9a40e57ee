"""latest.json, latest.md and the plot: every figure beside the baseline measured in the same run, the
ratio or difference between them, and the goal it is held to with a pass or fail mark.

The headline keys of latest.json are flat (e2e_p99_ms, presses_per_s, ...) so a script can compare
runs; `sections` keeps everything each measurement found. A figure not measured in this run (a
subset with --only, or a measurement that failed) is null and its goal reads "not measured"."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .rig import Section


def dig(data: Mapping[str, Any], path: str) -> Any:
    """data["a"]["b"]... for "a.b...", or None where any step is missing."""
    cur: Any = data
    for part in path.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur


def headline(sections: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The flat figures a run is compared by; e2e_* is under background load, e2e_idle_* at idle."""
    s = sections
    lost_parts = [dig(s, "e2e.idle.lost"), dig(s, "e2e.load.lost"), dig(s, "throughput.lost")]
    measured_lost = [x for x in lost_parts if x is not None]
    return {
        "e2e_p50_ms": dig(s, "e2e.load.press_to_alert.p50_ms"),
        "e2e_p90_ms": dig(s, "e2e.load.press_to_alert.p90_ms"),
        "e2e_p99_ms": dig(s, "e2e.load.press_to_alert.p99_ms"),
        "e2e_max_ms": dig(s, "e2e.load.press_to_alert.max_ms"),
        "baseline_p50_ms": dig(s, "e2e.load.two_hop.p50_ms"),
        "baseline_p99_ms": dig(s, "e2e.load.two_hop.p99_ms"),
        "e2e_over_baseline_p50": dig(s, "e2e.load.over_two_hop_p50"),
        "e2e_over_baseline_p99": dig(s, "e2e.load.over_two_hop_p99"),
        "e2e_added_p99_ms": dig(s, "e2e.load.added_p99_ms"),
        "e2e_idle_p50_ms": dig(s, "e2e.idle.press_to_alert.p50_ms"),
        "e2e_idle_p99_ms": dig(s, "e2e.idle.press_to_alert.p99_ms"),
        "baseline_idle_p99_ms": dig(s, "e2e.idle.two_hop.p99_ms"),
        "e2e_idle_over_baseline_p99": dig(s, "e2e.idle.over_two_hop_p99"),
        "e2e_idle_added_p99_ms": dig(s, "e2e.idle.added_p99_ms"),
        "one_hop_p99_ms": dig(s, "baseline.one_hop_press.p99_ms"),
        "two_hop_p99_ms": dig(s, "baseline.two_hop_press.p99_ms"),
        "presses_per_s": dig(s, "throughput.presses_per_s"),
        "broker_msgs_per_s": dig(s, "throughput.broker_one_hop.msgs_per_s"),
        "relay_msgs_per_s": dig(s, "throughput.broker_two_hop_relay.msgs_per_s"),
        "presses_over_broker": dig(s, "throughput.over_broker"),
        "lost": sum(measured_lost) if measured_lost else None,
        "escalation_lateness_p50_ms": dig(s, "escalation.lateness.p50_ms"),
        "escalation_lateness_p99_ms": dig(s, "escalation.lateness.p99_ms"),
        "escalation_lateness_max_ms": dig(s, "escalation.lateness.max_ms"),
        "escalations_missed": dig(s, "escalation.missed"),
        "restore_10k_s": dig(s, "restart.restore_s"),
        "restore_in_process_s": dig(s, "restart.in_process_s"),
        "button_heap_kb": dig(s, "firmware.button.heap_kb"),
        "pager_heap_kb": dig(s, "firmware.pager.heap_kb"),
        "button_per_message_b": dig(s, "firmware.button.per_message_b"),
        "pager_per_message_b": dig(s, "firmware.pager.per_message_b"),
        "button_mpy_kb": dig(s, "firmware.button.mpy_kb"),
        "pager_mpy_kb": dig(s, "firmware.pager.mpy_kb"),
    }


@dataclass(frozen=True)
class Goal:
    name: str
    measured: str  # as shown
    target: str
    passed: bool | None  # None: not measured

    @property
    def mark(self) -> str:
        return "not measured" if self.passed is None else "pass" if self.passed else "**FAIL**"


def _fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        text = f"{v:,.3f}".rstrip("0").rstrip(".") if abs(v) < 100 else f"{v:,.0f}"
    elif isinstance(v, int):
        text = f"{v:,}"
    else:
        text = str(v)
    return f"{text} {unit}".strip()


def goals(h: Mapping[str, Any], wall_s: float | None, sections: Mapping[str, Any] | None = None) -> list[Goal]:
    """The issue's goals and the firmware budgets; the sizes in the names are this run's."""
    s = sections or {}
    buttons = dig(s, "e2e.load.buttons")
    load = f"{buttons:,} buttons" if buttons else "under load"
    open_esc = dig(s, "escalation.open_incidents")
    open_restart = dig(s, "restart.open_incidents")

    def at_most(v: Any, limit: float) -> bool | None:
        return None if v is None else bool(v <= limit)

    sustained = None
    if h["presses_per_s"] is not None:
        sustained = bool(h["presses_per_s"] >= 5000 and h["lost"] == 0)
    return [
        Goal(f"gateway adds to press->alert p99 over the two-hop baseline ({load})",
             _fmt(h["e2e_added_p99_ms"], "ms"), "<= 1 ms", at_most(h["e2e_added_p99_ms"], 1.0)),
        Goal("the same at idle", _fmt(h["e2e_idle_added_p99_ms"], "ms"), "<= 1 ms",
             at_most(h["e2e_idle_added_p99_ms"], 1.0)),
        Goal("sustained presses/s with nothing lost", _fmt(h["presses_per_s"], "/s"), ">= 5,000 /s, lost 0",
             sustained),
        Goal("nothing lost in any counted run", _fmt(h["lost"]), "0", None if h["lost"] is None else h["lost"] == 0),
        Goal(f"escalation lateness p99, {open_esc or 10_000:,} open incidents",
             _fmt(h["escalation_lateness_p99_ms"], "ms"), "<= 50 ms", at_most(h["escalation_lateness_p99_ms"], 50.0)),
        Goal(f"restart: {open_restart or 10_000:,} open incidents restored", _fmt(h["restore_10k_s"], "s"), "<= 2 s",
             at_most(h["restore_10k_s"], 2.0)),
        Goal("button heap after boot (tests' budget)", _fmt(h["button_heap_kb"], "KB"), "<= 40 KB",
             at_most(h["button_heap_kb"], 40.0)),
        Goal("pager heap after boot (tests' budget)", _fmt(h["pager_heap_kb"], "KB"), "<= 64 KB",
             at_most(h["pager_heap_kb"], 64.0)),
        Goal("the whole bench", _fmt(wall_s, "s"), "< 600 s", None if wall_s is None else wall_s < 600),
    ]


def _ratio(a: Any, b: Any) -> str:
    return f"x{a / b:.2f}" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b > 0 else "-"


def _diff(a: Any, b: Any) -> str:
    return f"{a - b:+.3f} ms" if isinstance(a, (int, float)) and isinstance(b, (int, float)) else "-"


def markdown(data: Mapping[str, Any]) -> str:
    h, s, meta = data["headline"], data["sections"], data["meta"]
    lines = ["# Red Button bench", ""]
    if meta.get("quick"):
        lines += ["**Quick run** (the test's sizes): the figures only show the bench works; they are not "
                  "comparable with a full run.", ""]
    lines += [f"{meta['started']} · {meta['cpus']} cores · load average {meta['loadavg_before']} before, "
              f"{meta['loadavg_after']} after · {meta['wall_s']} s · sections: {', '.join(meta['sections'])}", ""]
    if meta.get("errors"):
        lines += ["Failed sections: " + "; ".join(f"{k}: {v}" for k, v in meta["errors"].items()), ""]
    lines += ["## Goals", "", "| goal | measured | target | |", "|---|---|---|---|"]
    lines += [f"| {g.name} | {g.measured} | {g.target} | {g.mark} |" for g in goals(h, meta.get("wall_s"), s)]
    lines += ["", "## Figures beside their same-run baselines", "",
              "Latencies in ms, nearest-rank percentiles. Two hop: publisher -> broker -> bench.relay (the "
              "gateway's MQTT client doing nothing) -> broker -> subscriber, measured in the same run under the "
              "same load.", "",
              "| figure | measured | baseline | ratio | difference |", "|---|---|---|---|---|"]
    for key in ("idle", "load"):
        run = dig(s, f"e2e.{key}")
        if run is None:
            continue
        label = f"{key}, {run['buttons']:,} buttons, {run['pagers']} pagers"
        pa, th, oh = run["press_to_alert"], run["two_hop"], run["one_hop"]
        for p in ("p50_ms", "p90_ms", "p99_ms", "max_ms"):
            lines.append(f"| press -> pager alert {p[:-3]}, {label} ({run['rate_asked']:g} presses/s) | "
                         f"{_fmt(pa[p])} | two hop {_fmt(th[p])} | {_ratio(pa[p], th[p])} | {_diff(pa[p], th[p])} |")
        fb = run["press_to_feedback"]
        lines.append(f"| press -> button feedback p99, {label} | {_fmt(fb['p99_ms'])} | one hop {_fmt(oh['p99_ms'])} | "
                     f"{_ratio(fb['p99_ms'], oh['p99_ms'])} | {_diff(fb['p99_ms'], oh['p99_ms'])} |")
    base = s.get("baseline")
    if base:
        for name in ("one_hop_press", "one_hop_alert", "two_hop_press"):
            f = base[name]
            size = base["payload_bytes"][name[-5:]]
            lines.append(f"| {name.replace('_', ' ')} round trip p50 / p99, quiet broker ({size} B) "
                         f"| {_fmt(f['p50_ms'])} / {_fmt(f['p99_ms'])} | - | - | - |")
    t = s.get("throughput")
    if t:
        lines.append(f"| sustained presses/s, nothing lost, p99 <= {t['p99_limit_ms']:g} ms | "
                     f"{_fmt(t['presses_per_s'])} | broker one hop {_fmt(t['broker_one_hop']['msgs_per_s'])} msg/s; "
                     f"relay {_fmt(t['broker_two_hop_relay']['msgs_per_s'])} msg/s | "
                     f"{_ratio(t['presses_per_s'], t['broker_one_hop']['msgs_per_s'])} | {t['stop']} |")
    e = s.get("escalation")
    if e and e.get("lateness"):
        late = e["lateness"]
        lines.append(f"| escalation lateness p50 / p99 / max ({e['open_incidents']:,} open, {e['due']:,} due at "
                     f"{e['escalations_per_s_asked']:g}/s) | {_fmt(late['p50_ms'])} / {_fmt(late['p99_ms'])} / "
                     f"{_fmt(late['max_ms'])} | deadline on the row | - | missed {e['missed']}, done at "
                     f"{_fmt(e['escalations_per_s_done'])}/s |")
    r = s.get("restart")
    if r:
        lines.append(f"| restart to {r['open_incidents']:,} incidents restored (process, median) | "
                     f"{_fmt(r['restore_s'])} s | in-process {_fmt(r['in_process_s'])} s; interpreter "
                     f"{_fmt(r['interpreter_s'])} s; CLI imports {_fmt(r['cli_imports_s'])} s | - | "
                     f"runs {r['process_up_s']}, restored {r['timers_restored']} |")
    fw = s.get("firmware")
    if fw:
        for role in ("button", "pager"):
            f = fw[role]
            lines.append(f"| {role} heap after boot / per handled message | {_fmt(f['heap_kb'])} KB / "
                         f"{_fmt(f['per_message_b'])} B | budget {f['budget_kb']} KB | "
                         f"{_ratio(f['heap_kb'], f['budget_kb'])} | {_fmt(f['retained_after_100_b'])} B kept "
                         f"after 100 |")
        lines.append("| .mpy per role: button / pager / base | " +
                     " / ".join(f"{_fmt(fw[r]['mpy_kb'])} KB" for r in ("button", "pager", "base")) +
                     " | - | - | - |")
    if t and t.get("steps"):
        lines += ["", "## Throughput ramp", "",
                  "Most presses at high rates join an incident already open at their table (1,000 tables, each "
                  "incident open ~3 s until resolved): new incidents per second are shown apart.", "",
                  "| asked /s | pressed /s | new incidents /s | lost | alerted | p50 | p99 | two-hop p99 | "
                  "gateway CPU | |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for st in t["steps"]:
            mark = "held" if st["passed"] else f"**{st['why']}**"
            if st.get("attempt", 1) > 1:
                mark += " (second attempt)"
            if st.get("generator_limited"):
                mark += " (load generator's limit)"
            incidents = round(st["incidents"] / st["seconds"], 1) if st.get("incidents") is not None else "-"
            pa = st["press_to_alert"]
            lines.append(f"| {st['rate_asked']:g} | {st['presses_per_s']} | {incidents} | {st['lost']} | "
                         f"{st['alerted']} | {_fmt(pa['p50_ms'])} | {_fmt(pa['p99_ms'])} | "
                         f"{_fmt(st['two_hop']['p99_ms'])} | {_fmt(st['cpu_percent']['gateway'])} % | {mark} |")
    profiles = sorted(p for p in (dig(s, "e2e.profile"), dig(s, "throughput.profile"), dig(s, "escalation.profile"),
                                  dig(s, "restart.profile")) if p)
    if profiles:
        lines += ["", "Profiles: " + ", ".join(f"[{p}]({p})" for p in profiles)]
    if meta.get("plot"):
        lines += ["", f"![Latency distributions]({meta['plot']})"]
    return "\n".join(lines) + "\n"


def write(out: Path, sections: Mapping[str, Section], meta: dict[str, Any]) -> dict[str, Any]:
    """latest.json and latest.md into `out`; -> what was written to latest.json."""
    figures = {name: sec.figures for name, sec in sections.items()}
    data = {"headline": headline(figures), "meta": meta, "sections": figures}
    flat = {**data["headline"], "goals": [g.__dict__ | {"mark": g.mark} for g in goals(data["headline"],
                                                                                        meta.get("wall_s"), figures)],
            "meta": meta, "sections": figures}
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(flat, indent=2) + "\n")
    (out / "latest.md").write_text(markdown(data))
    return flat
