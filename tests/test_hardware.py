"""hardware/: the wiring diagrams follow the pin maps, the BOMs add up to the README's totals, and the
power budget computes what its cited figures say (and refuses figures it cannot trust)."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
HW = ROOT / "hardware"
ROLES = ("button", "pager", "base")
FIGURES = HW / "power" / "figures.toml"


def _module(name: str) -> ModuleType:
    """hardware/ holds scripts, not a package: load one by its path."""
    spec = importlib.util.spec_from_file_location(f"hw_{name}", HW / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)
    return mod


wiring = _module("wiring")
power = _module("power_budget")


def run(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(HW / script), *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=60)


def pin_map(role: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((HW / "pins" / f"{role}.json").read_text())
    return doc


def svg_text(svg: str) -> str:
    """All the text a viewer of the SVG reads (it must also parse as XML)."""
    return "\n".join("".join(el.itertext()) for el in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}text"))


# --- wiring ----------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", ["1", "2"])
def test_committed_svgs_are_what_the_pin_maps_draw(seed: str) -> None:
    # two hash seeds: the drawing must not depend on set or dict ordering between runs
    r = run("wiring.py", "--check", env={**os.environ, "PYTHONHASHSEED": seed})
    assert r.returncode == 0, r.stderr


def test_check_fails_on_a_stale_svg(tmp_path: Path) -> None:
    assert run("wiring.py", "--out", str(tmp_path)).returncode == 0
    svg = tmp_path / "pager.svg"
    svg.write_text(svg.read_text().replace("GPIO4", "GPIO40"))
    r = run("wiring.py", "--check", "--out", str(tmp_path))
    assert r.returncode == 1
    assert "pager.svg is out of date" in r.stderr and "button.svg" not in r.stderr


@pytest.mark.parametrize("role", ROLES)
def test_svg_shows_every_signal_with_its_gpio_and_board_label(role: str) -> None:
    doc = pin_map(role)
    text = svg_text((HW / "wiring" / f"{role}.svg").read_text())
    assert doc["board"] in text
    for signal, gpio in doc["pins"].items():
        assert re.search(rf"(^|\s){re.escape(signal)}(\s|$)", text, re.M), f"{role}.svg does not name {signal}"
        assert f"GPIO{gpio}" in text, f"{role}.svg does not show GPIO{gpio} ({signal})"
        label = wiring.board_label(doc["notes"][signal], gpio)
        assert f"{signal}  GPIO{gpio}" in text
        if label.startswith("D"):
            assert f"{label}  GPIO{gpio}" in text, f"{role}.svg does not put GPIO{gpio} on {label}"


def test_a_rewired_pin_map_moves_the_wire() -> None:
    doc = pin_map("button")
    doc["pins"]["led"] = 9
    doc["notes"]["led"] = "D9: WS2812B data"
    text = svg_text(wiring.render(doc))
    assert "D9  GPIO9" in text and "GPIO10" not in text
    assert "D10" in text  # still drawn, as an unused pin of the header


def test_a_signal_without_a_part_drawing_is_refused() -> None:
    doc = pin_map("button")
    doc["pins"]["buzzer"] = 4
    doc["notes"]["buzzer"] = "D2: piezo"
    with pytest.raises(ValueError, match="buzzer"):
        wiring.render(doc)


# The XIAO pinouts (Seeed Studio's wiki): which GPIO sits behind each D label. The pin maps' notes
# name the label; this catches a note left behind when a GPIO is changed.
XIAO_PINOUT = {
    "Seeed Studio XIAO ESP32C3": {"D0": 2, "D1": 3, "D2": 4, "D3": 5, "D4": 6, "D5": 7, "D6": 21, "D7": 20,
                                  "D8": 8, "D9": 9, "D10": 10},
    "Seeed Studio XIAO ESP32S3": {"D0": 1, "D1": 2, "D2": 3, "D3": 4, "D4": 5, "D5": 6, "D6": 43, "D7": 44,
                                  "D8": 7, "D9": 8, "D10": 9},
}


@pytest.mark.parametrize("role", ["button", "pager"])
def test_board_labels_in_the_notes_match_the_xiao_pinout(role: str) -> None:
    doc = pin_map(role)
    pinout = XIAO_PINOUT[doc["board"]]
    for signal, gpio in doc["pins"].items():
        label = wiring.board_label(doc["notes"][signal], gpio)
        assert pinout.get(label) == gpio, f"{role}.json: {signal} is GPIO{gpio} but its note says {label}"


# --- bills of materials ------------------------------------------------------------------------

COLUMNS = ["ref", "qty", "part", "manufacturer", "mpn", "unit_usd", "notes"]


def bom(role: str) -> list[dict[str, str]]:
    with (HW / "bom" / f"{role}.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COLUMNS
        return list(reader)


@pytest.mark.parametrize("role", ROLES)
def test_bom_lines_are_complete(role: str) -> None:
    refs: list[str] = []
    for line in bom(role):
        assert int(line["qty"]) > 0, line
        assert float(line["unit_usd"]) > 0, line
        assert line["part"] and line["manufacturer"] and line["mpn"], line
        refs += line["ref"].split()
    assert len(refs) == len(set(refs)), f"{role}.csv names a ref twice"
    assert "U1" in refs


@pytest.mark.parametrize("role", ROLES)
def test_every_part_in_the_wiring_is_in_the_bom(role: str) -> None:
    refs = {r for line in bom(role) for r in line["ref"].split()}
    for signal in pin_map(role)["pins"]:
        spec = wiring.part_spec(role, signal)
        if spec["kind"] == "onboard_led":
            continue  # part of the board, U1
        drawn = {v for k, v in spec.items() if k in ("ref", "r", "c", "r1", "r2", "rb", "rpd", "q", "d", "m")}
        assert drawn <= refs, f"{role}: {signal} draws {drawn - refs}, missing from bom/{role}.csv"
    if role in wiring.CELL:
        assert "BT1" in refs


@pytest.mark.parametrize(("role", "name"), [("button", "button"), ("pager", "pager"), ("base", "base station")])
def test_readme_totals_match_the_boms(role: str, name: str) -> None:
    lines = bom(role)
    total = sum(int(x["qty"]) * float(x["unit_usd"]) for x in lines)
    readme = (HW / "README.md").read_text()
    row = re.search(rf"^\| {name} \| \[bom/{role}\.csv\]\(bom/{role}\.csv\) \| (\d+) \| USD ([\d.]+) \|$", readme, re.M)
    assert row, f"hardware/README.md has no BOM total row for {role}"
    assert int(row.group(1)) == len(lines)
    assert row.group(2) == f"{total:.2f}", f"README says USD {row.group(2)}, bom/{role}.csv adds up to {total:.2f}"


# --- power budget ----------------------------------------------------------------------------

def with_figure(text: str, name: str, value: str) -> str:
    """The figures file with one figure's value replaced."""
    new, n = re.subn(rf"(^\[{name}\]\nvalue = )[^\n]+", rf"\g<1>{value}", text, flags=re.M)
    assert n == 1, f"no figure {name}"
    return new


def budget_of(text: str, tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "figures.toml"
    path.write_text(text)
    r = run("power_budget.py", "--figures", str(path), "--json")
    assert r.returncode == 0, r.stderr
    out: dict[str, Any] = json.loads(r.stdout)
    return out


def row(out: dict[str, Any], role: str, link: str, variant: str) -> dict[str, Any]:
    found: dict[str, Any] = next(r for r in out["rows"]
                                 if (r["role"], r["link"], r["variant"]) == (role, link, variant))
    return found


def test_life_is_usable_capacity_over_daily_charge() -> None:
    # 1000 mAh at an average 1 mA: 24 mAh a day, 41.7 days, of which 80 % usable
    assert power.life(1000.0, 1.0, 24.0) == pytest.approx(41.667, abs=1e-3)
    assert power.life(1000.0, 0.8, 24.0) == pytest.approx(33.333, abs=1e-3)
    assert power.mah(75.0, 3600.0) == 75.0


def test_a_button_drawing_only_a_steady_1_ma_lasts_the_hand_computed_days(tmp_path: Path) -> None:
    text = FIGURES.read_text()
    for name in ("c3_board_deep_sleep", "c3_board_modem_sleep", "c3_board_radio_on", "ws2812b_channel",
                 "presses_per_day", "cell_nominal"):
        text = with_figure(text, name, "0")
    text = with_figure(with_figure(text, "ws2812b_idle", "1.0"), "lipo_usable", "0.8")
    out = budget_of(with_figure(text, "button_cell", "1000"), tmp_path)
    for link, variant in (("espnow", ""), ("mqtt", "static-ip"), ("mqtt", "dhcp")):
        r = row(out, "button", link, variant)
        assert r["per_period_mah"] == pytest.approx(24.0)
        assert r["average_ma"] == pytest.approx(1.0)
        assert r["life"] == pytest.approx(1000 / 24 * 0.8)


def test_pager_shift_by_hand() -> None:
    figs = power.load_figures(FIGURES)
    v = {n: f.working for n, f in figs.items()}
    hours = v["shift"] / 3600
    buzzing_s = v["pager_alerts_per_shift"] * v["vibration_per_alert"]
    by_hand = ((v["s3_modem_sleep"] + v["oled_on"] + v["cell_nominal"] / v["divider_total"]) * hours
               + (v["motor_on"] + v["motor_base_drive"]) * buzzing_s / 3600)
    r = next(r for r in power.budget(figs) if (r.role, r.link, r.variant) == ("pager", "mqtt", "oled-on"))
    assert r.per_period_mah == pytest.approx(by_hand)
    assert r.life == pytest.approx(v["pager_cell"] * v["lipo_usable"] / by_hand)


def test_changing_a_figure_changes_the_life(tmp_path: Path) -> None:
    text = FIGURES.read_text()
    base = budget_of(text, tmp_path)
    busier = budget_of(with_figure(text, "presses_per_day", "12"), tmp_path)
    dark = budget_of(with_figure(text, "ws2812b_idle", "0"), tmp_path)
    bigger = budget_of(with_figure(text, "pager_cell", "2000"), tmp_path)
    for variant in ("static-ip", "dhcp"):
        life = row(base, "button", "mqtt", variant)["life"]
        assert row(busier, "button", "mqtt", variant)["life"] < life
        assert row(dark, "button", "mqtt", variant)["life"] > life
    pager = ("pager", "mqtt", "oled-on")
    assert row(bigger, *pager)["life"] == pytest.approx(2 * row(base, *pager)["life"])
    assert row(bigger, "button", "espnow", "")["life"] == row(base, "button", "espnow", "")["life"]


def test_dhcp_costs_more_than_a_static_ip_and_espnow_waits_cost_most() -> None:
    rows = power.budget(power.load_figures(FIGURES))
    life = {(r.role, r.link, r.variant): r.life for r in rows}
    assert life[("button", "mqtt", "static-ip")] > life[("button", "mqtt", "dhcp")]
    # ESP-NOW wakes in 119 ms, but its receiver listens the whole time a customer waits
    assert life[("button", "mqtt", "static-ip")] > life[("button", "espnow", "")]


def test_the_acknowledged_wait_is_capped_as_in_the_firmware(tmp_path: Path) -> None:
    text = FIGURES.read_text()
    long_wait = budget_of(with_figure(text, "ack_to_resolve", "30"), tmp_path)
    longer_wait = budget_of(with_figure(text, "ack_to_resolve", "90"), tmp_path)
    shorter = budget_of(with_figure(text, "ack_to_resolve", "2"), tmp_path)
    key = ("button", "mqtt", "static-ip")
    assert row(long_wait, *key)["per_period_mah"] == row(longer_wait, *key)["per_period_mah"]
    assert row(shorter, *key)["per_period_mah"] < row(long_wait, *key)["per_period_mah"]


def test_a_figure_without_a_source_is_refused(tmp_path: Path) -> None:
    text = FIGURES.read_text()
    unsourced, n = re.subn(r"(\[motor_on\]\nvalue = [^\n]+\nunit = [^\n]+\n)source = [^\n]+\n", r"\1", text)
    assert n == 1
    path = tmp_path / "figures.toml"
    path.write_text(unsourced)
    r = run("power_budget.py", "--figures", str(path))
    assert r.returncode == 2 and r.stdout == ""
    assert "figure 'motor_on' has no source" in r.stderr
    path.write_text(text.replace('source = "Adafruit product 1201', 'source = "  "\nnot_source = "'))
    assert "figure 'motor_on' has no source" in run("power_budget.py", "--figures", str(path)).stderr


@pytest.mark.parametrize(("name", "value", "unit", "message"), [
    ("motor_on", "75", "mAh", "must be a current"),
    ("motor_on", "75", "amps", "unit 'amps'"),
    ("motor_on", "-1", "mA", "a number >= 0"),
    ("lipo_usable", "1.5", "1", "at most 1"),
    ("button_heartbeat_interval", "0", "s", "greater than 0"),
])
def test_a_mistyped_figure_is_refused(tmp_path: Path, name: str, value: str, unit: str, message: str) -> None:
    text, n = re.subn(rf"(\[{name}\]\n)value = [^\n]+\nunit = [^\n]+\n", rf'\g<1>value = {value}\nunit = "{unit}"\n',
                      FIGURES.read_text())
    assert n == 1
    with pytest.raises(power.FigureError, match=re.escape(message)):
        path = tmp_path / "f.toml"
        path.write_text(text)
        power.load_figures(path)


def test_missing_and_misspelt_figures_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "f.toml"
    path.write_text(FIGURES.read_text().replace("[oled_dimmed]", "[oled_dimed]"))
    with pytest.raises(power.FigureError, match="unknown figure 'oled_dimed'"):
        power.load_figures(path)


def test_json_carries_every_figure_with_its_source() -> None:
    r = run("power_budget.py", "--json")
    out = json.loads(r.stdout)
    assert set(out["figures"]) == set(power.REQUIRED)
    assert all(f["source"] for f in out["figures"].values())
    assert {(x["role"], x["link"]) for x in out["rows"]} >= {("button", "espnow"), ("button", "mqtt"),
                                                             ("pager", "mqtt"), ("pager", "espnow"), ("base", "usb")}


def test_readme_table_is_what_the_script_computes(tmp_path: Path) -> None:
    assert run("power_budget.py", "--check-readme").returncode == 0
    stale = tmp_path / "README.md"
    stale.write_text((HW / "README.md").read_text().replace("| button | WiFi/MQTT, static IP | 1000 mAh |",
                                                            "| button | WiFi/MQTT, static IP | 900 mAh |"))
    r = run("power_budget.py", "--check-readme", "--readme", str(stale))
    assert r.returncode == 1 and "--write-readme" in r.stderr
    assert run("power_budget.py", "--write-readme", "--readme", str(stale)).returncode == 0
    assert stale.read_text() == (HW / "README.md").read_text()


def test_firmware_timings_in_the_figures_are_the_firmwares() -> None:
    # in a child process: importing firmware/lib here would shadow module names other tests use
    code = ("import json, sys; sys.path.insert(0, 'firmware/lib'); import button_app as b, settings, rbproto\n"
            "ack = b.PATTERNS[rbproto.ACKNOWLEDGED][0]\n"
            "print(json.dumps({'awake': b.AWAKE_MS, 'linger': b.LINGER_MS, 'ack_max': b.ACK_SHOW_MS,\n"
            "  'resolved': sum(t for _, t in b.PATTERNS[rbproto.RESOLVED][0]),\n"
            "  'duty': sum(t for c, t in ack if c != b.OFF) / sum(t for _, t in ack), 'hb': settings.DEFAULTS['hb'],\n"
            "  'low_mv': b.LOW_BATTERY_MV}))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    fw = json.loads(r.stdout)
    v = {n: f.working for n, f in power.load_figures(FIGURES).items()}
    assert v["button_awake_after_activity"] * 1000 == fw["awake"]
    assert v["button_heartbeat_linger"] * 1000 == fw["linger"]
    assert v["button_ack_show_max"] * 1000 == fw["ack_max"]
    assert v["button_resolved_show"] * 1000 == fw["resolved"]
    assert v["button_ack_pulse_duty"] == pytest.approx(fw["duty"])
    assert v["button_heartbeat_interval"] == fw["hb"]
    assert "3.45 V" in power.load_figures(FIGURES)["lipo_usable"].source and fw["low_mv"] == 3450
