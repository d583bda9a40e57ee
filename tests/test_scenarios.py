"""Every shipped scenario, played self-contained (real mosquitto, real gateway process, the firmware on
simulated boards), must meet all its expectations; a false expectation must fail the CLI clearly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from simulator.scenario import SCENARIOS, run_scenario, shipped

ROOT = Path(__file__).resolve().parents[1]


def test_the_required_scenarios_ship() -> None:
    names = {p.stem for p in shipped()}
    assert {"normal-service", "nobody-answers", "pager-dies", "table-loses-wifi", "broker-restart", "gateway-crash",
            "prankster", "low-battery", "device-reboot", "rush-hour"} <= names


@pytest.mark.parametrize("path", shipped(), ids=lambda p: p.stem)
def test_shipped_scenario_passes(path: Path) -> None:
    lines: list[str] = []
    outcome = run_scenario(path, out=lines.append)
    assert outcome.passed, "\n".join(lines)
    if path.stem == "rush-hour":
        f = outcome.figures
        assert f.presses_sent == f.presses_stored > 0
        assert f.presses_reached == f.presses_stored  # every press reached a person
        p95 = f.pct(95)
        assert p95 is not None and p95 <= 45
        print(f.summary())


def test_a_false_expectation_fails_the_cli_with_exit_code_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text((SCENARIOS / "normal-service.toml").read_text() + """
[[expect]]
by = 2
check = "pager_shows"
staff = "ben"
text = "T12"
""")
    done = subprocess.run([sys.executable, "-m", "gateway.cli", "sim", "--scenario", str(bad), "--check"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 expectation(s) failed" in done.stdout
    assert "pager_shows staff=ben text=T12: pgr-ben screen:" in done.stdout


def test_an_unknown_check_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "typo.toml"
    bad.write_text('[[expect]]\ncheck = "pager_show"\nstaff = "ana"\n')
    done = subprocess.run([sys.executable, "-m", "gateway.cli", "sim", "--scenario", str(bad), "--check"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "expect[0].check: 'pager_show' is not one of" in done.stdout
