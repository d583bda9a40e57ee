"""The pin maps in hardware/pins are complete for their board code and agree with hardware/README.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PINS = ROOT / "hardware" / "pins"
# the signals board.py / base_board.py read for each role
NEEDED = {"button": {"button", "led", "battery_adc"},
          "pager": {"button_a", "button_b", "motor", "sda", "scl", "battery_adc"},
          "base": {"led"}}


@pytest.mark.parametrize("role", sorted(NEEDED))
def test_pin_map_has_what_the_board_reads_and_the_readme_agrees(role: str) -> None:
    doc = json.loads((PINS / f"{role}.json").read_text())
    assert doc["role"] == role and doc["board"]
    pins = doc["pins"]
    assert NEEDED[role] <= set(pins), f"{role}.json lacks {NEEDED[role] - set(pins)}"
    assert len(set(pins.values())) == len(pins), f"{role}.json uses a GPIO twice"
    readme = (ROOT / "hardware" / "README.md").read_text()
    for signal, gpio in pins.items():
        assert f"| `{signal}` | {gpio} |" in readme, f"hardware/README.md does not show {signal} on GPIO {gpio}"
        assert signal in doc.get("notes", {}), f"{role}.json has no note for {signal}"
