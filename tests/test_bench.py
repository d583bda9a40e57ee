"""The bench's arithmetic and report (nearest-rank percentiles, goals, the table beside its baselines,
the plot), and a tiny real run of `python -m bench` that writes its files."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from simulator.load import figures

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # bench/ runs from the repository (python -m bench), it is not installed

from bench import plot, report  # noqa: E402
from bench.stats import Summary, percentile, ratio, summarize_ms  # noqa: E402

REQUIRED = ("e2e_p50_ms", "e2e_p99_ms", "baseline_p99_ms", "e2e_over_baseline_p99", "presses_per_s",
            "broker_msgs_per_s", "lost", "escalation_lateness_p99_ms", "restore_10k_s", "button_heap_kb",
            "pager_heap_kb")


def test_percentiles_are_nearest_rank() -> None:
    s = [float(x) for x in range(1, 101)]
    assert [percentile(s, p) for p in (0, 1, 50, 90, 99, 99.5, 100)] == [1, 1, 50, 90, 99, 100, 100]
    assert percentile([7.0], 99) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0  # rank ceil(0.5 * 4) = 2: a measured value, not 2.5
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile(s, 101)


def test_summary_matches_the_load_generators_figures() -> None:
    rng = random.Random(7)
    seconds = [rng.expovariate(500) for _ in range(1234)]
    mine, theirs = summarize_ms(x * 1000 for x in seconds), figures(seconds)
    assert (mine.n, mine.p50_ms, mine.p90_ms, mine.p99_ms, mine.max_ms) == \
        (theirs.n, theirs.p50_ms, theirs.p90_ms, theirs.p99_ms, theirs.max_ms)
    assert summarize_ms([3.0, 1.0, 2.0]) == Summary(3, 2.0, 3.0, 3.0, 3.0, 2.0)
    assert summarize_ms([]) == Summary()
    assert ratio(3.0, 1.5) == 2.0 and ratio(1.0, 0.0) is None and ratio(None, 1.0) is None


def sections(added_ms: float, presses: float) -> dict[str, Any]:
    """What the measurements report, cut down to the figures the report reads."""
    def dist(p50: float, p99: float) -> dict[str, float]:
        return {"n": 100, "p50_ms": p50, "p90_ms": p50, "p99_ms": p99, "max_ms": p99 * 2, "mean_ms": p50}

    run = {"buttons": 1000, "pagers": 100, "rate_asked": 20.0, "lost": 0,
           "press_to_alert": dist(1.5, 0.8 + added_ms), "two_hop": dist(0.5, 0.8), "one_hop": dist(0.2, 0.4),
           "press_to_feedback": dist(1.4, 1.6), "over_two_hop_p50": 3.0,
           "over_two_hop_p99": round((0.8 + added_ms) / 0.8, 2), "added_p99_ms": added_ms}
    return {"e2e": {"idle": run, "load": run},
            "throughput": {"presses_per_s": presses, "lost": 0, "p99_limit_ms": 100.0, "stop": "p99 over 100 ms",
                           "broker_one_hop": {"msgs_per_s": 10000}, "broker_two_hop_relay": {"msgs_per_s": 8000},
                           "over_broker": presses / 10000, "steps": []}}


def test_goals_hold_or_fail_on_the_measured_figures() -> None:
    good = {g.name: g for g in report.goals(report.headline(sections(0.9, 6000)), 300.0, sections(0.9, 6000))}
    bad = {g.name: g for g in report.goals(report.headline(sections(1.2, 400)), 700.0, sections(1.2, 400))}
    added = "gateway adds to press->alert p99 over the two-hop baseline (1,000 buttons)"
    assert good[added].passed is True and bad[added].mark == "**FAIL**"
    assert good["sustained presses/s with nothing lost"].passed is True
    assert bad["sustained presses/s with nothing lost"].passed is False
    assert bad["the whole bench"].passed is False
    unmeasured = [g for g in good.values() if g.passed is None]
    assert {g.name for g in unmeasured} >= {"escalation lateness p99, 10,000 open incidents",
                                            "restart: 10,000 open incidents restored"}
    assert all(g.mark == "not measured" for g in unmeasured)


def test_the_table_puts_each_figure_beside_its_baseline() -> None:
    s = sections(1.2, 400)
    meta = {"started": "now", "cpus": 2, "loadavg_before": "0", "loadavg_after": "0", "wall_s": 1.0,
            "sections": ["e2e", "throughput"]}
    md = report.markdown({"headline": report.headline(s), "sections": s, "meta": meta})
    row = next(line for line in md.splitlines() if line.startswith("| press -> pager alert p99, load"))
    assert "| 2 | two hop 0.8 | x2.50 | +1.200 ms |" in row
    assert "| 400 | broker one hop 10,000 msg/s" in md
    assert "| sustained presses/s with nothing lost | 400 /s | >= 5,000 /s, lost 0 | **FAIL** |" in md


def test_the_plot_draws_every_distribution_on_a_tail_axis() -> None:
    assert plot.tail_x(0) == 0 and round(plot.tail_x(0.99), 9) == 2
    text = plot.svg([("latency", {"a: press -> pager alert": [1.0, 2.0, 30.0], "a: two hops": [0.5, 0.6]}),
                     ("lateness", {})])
    assert text.count("<polyline") == 2 and "not measured in this run" in text
    assert "p99 30.00" in text and "stroke-dasharray=\"6,3\"" in text  # the baseline is dashed


def test_a_tiny_run_writes_the_results(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--only", "baseline,escalation,firmware",
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads((tmp_path / "latest.json").read_text())
    assert set(REQUIRED) <= set(data)
    assert data["e2e_p99_ms"] is None and data["presses_per_s"] is None  # not in this subset
    assert data["two_hop_p99_ms"] > 0 and 0 <= data["escalation_lateness_p99_ms"] < 1000
    assert data["escalations_missed"] == 0 and 0 < data["button_heap_kb"] < data["pager_heap_kb"]
    marks = {g["name"]: g["mark"] for g in data["goals"]}
    assert marks["sustained presses/s with nothing lost"] == "not measured"
    assert "## Goals" in (tmp_path / "latest.md").read_text()
    assert (tmp_path / "latest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<polyline" in (tmp_path / "latest.svg").read_text()
