#!/usr/bin/env python3
"""Wiring diagrams (SVG) drawn from the pin maps, hardware/pins/<role>.json.

Why generated: the pin map is the one place a pin number is written (the firmware and the simulator
read it). A hand-drawn diagram would drift from it the first time someone rewires a board; this one
is redrawn from it, and `--check` (run by the tests) fails when a committed SVG is stale.

Every GPIO number and board label in a drawing comes from the JSON: the number from "pins", the
board label (D1, D10, ...) from the start of the signal's note. What this file adds is how each
signal's parts are drawn (keyed by signal name: a switch, a WS2812B, a divider, a motor driver, an
OLED) and the physical header order of the XIAO boards, so a technician sees where to solder.

    python hardware/wiring.py            # writes hardware/wiring/<role>.svg
    python hardware/wiring.py --check    # exit 1 when a committed SVG differs from a fresh one

Standard library only; the output depends on nothing but the JSON files (no dates, no randomness).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

HERE = Path(__file__).resolve().parent
PINS = HERE / "pins"
OUT = HERE / "wiring"

WIDTH = 1200
BOARD_X, BOARD_W = 500, 200  # the board's box; parts go left and right of it
ANCHOR_LEFT, ANCHOR_RIGHT = 400, 800  # where a part's signal terminal sits
PITCH = 44  # header pin spacing in the drawing
TOP = 120  # the board's top edge

SIGNAL = "#1f5fa8"
RAIL = {"BAT+": "#c0392b", "3V3": "#d35400", "GND": "#222222"}
PART = "#333333"
MUTED = "#9a9a9a"

# The XIAO boards' header, top view with USB-C up: labels only (the GPIO behind a label comes from
# the pin map). Seeed Studio's XIAO pinout: D0-D6 down the left, 5V GND 3V3 D10-D7 down the right.
XIAO_LEFT = ("D0", "D1", "D2", "D3", "D4", "D5", "D6")
XIAO_RIGHT = ("5V", "GND", "3V3", "D10", "D9", "D8", "D7")

# How each signal is wired outside the board, by signal name ("<role>.<signal>" overrides). Refs
# and values match hardware/bom/<role>.csv.
PARTS: dict[str, dict[str, str]] = {
    "button": {"kind": "switch", "ref": "SW1", "value": "arcade pushbutton (BOM: 30 mm), normally open",
               "note": "to GND, internal pull-up; wakes the board"},
    "button_a": {"kind": "switch", "ref": "SW1", "value": "key A, 6 x 6 mm tactile",
                 "note": "to GND, internal pull-up"},
    "button_b": {"kind": "switch", "ref": "SW2", "value": "key B, 6 x 6 mm tactile",
                 "note": "to GND, internal pull-up"},
    "led": {"kind": "ws2812", "ref": "LED1", "value": "WS2812B", "r": "R3", "r_value": "330 Ω",
            "c": "C2", "c_value": "100 nF"},
    "battery_adc": {"kind": "divider", "r1": "R1", "r2": "R2", "r_value": "220 kΩ", "c": "C1", "c_value": "100 nF"},
    "motor": {"kind": "motor", "rb": "R3", "rb_value": "470 Ω", "rpd": "R4", "rpd_value": "100 kΩ",
              "q": "Q1", "q_value": "2N3904 NPN", "d": "D1", "d_value": "1N4148", "m": "M1",
              "m_value": "10 mm coin motor"},
    "sda": {"kind": "oled", "pin": "SDA", "ref": "DS1", "value": "SSD1306 OLED module"},
    "scl": {"kind": "oled", "pin": "SCL", "ref": "DS1", "value": "SSD1306 OLED module"},
    "base.led": {"kind": "onboard_led", "ref": "LED1", "value": "WS2812 RGB LED, on the board"},
}
# Vertical room each kind of part takes around its first input (above, below), and the offset of
# each further input (the OLED takes two signals).
EXTENT: dict[str, tuple[int, int]] = {
    "switch": (34, 44), "ws2812": (80, 96), "divider": (96, 100), "motor": (130, 78), "oled": (74, 88),
    "onboard_led": (30, 40),
}
INPUT_STEP = 24
# The cell on the XIAO's BAT pads, by role (hardware/bom/<role>.csv, BT1).
CELL = {"button": "LiPo 503450, 1000 mAh, protected", "pager": "LiPo 503450, 1000 mAh, protected"}


class Svg:
    """A list of SVG elements with a few drawing helpers; coordinates are rounded to integers."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.rails: set[str] = set()  # the rails drawn, for the legend

    def line(self, x1: float, y1: float, x2: float, y2: float, color: str = PART, width: float = 1.6,
             dash: str = "") -> None:
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        self.items.append(f'<line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" stroke="{color}" '
                          f'stroke-width="{width:g}"{extra}/>')

    def poly(self, points: list[tuple[float, float]], color: str = PART, width: float = 1.6, fill: str = "none",
             dash: str = "") -> None:
        pts = " ".join(f"{x:.0f},{y:.0f}" for x, y in points)
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        self.items.append(f'<polyline points="{pts}" fill="{fill}" stroke="{color}" stroke-width="{width:g}"{extra}/>')

    def rect(self, x: float, y: float, w: float, h: float, fill: str = "#ffffff", stroke: str = PART,
             rx: float = 0) -> None:
        x, w = (x + w, -w) if w < 0 else (x, w)
        self.items.append(f'<rect x="{x:.0f}" y="{y:.0f}" width="{w:.0f}" height="{h:.0f}" rx="{rx:g}" '
                          f'fill="{fill}" stroke="{stroke}" stroke-width="1.6"/>')

    def circle(self, x: float, y: float, r: float, fill: str = "#ffffff", stroke: str = PART) -> None:
        self.items.append(f'<circle cx="{x:.0f}" cy="{y:.0f}" r="{r:g}" fill="{fill}" stroke="{stroke}" '
                          'stroke-width="1.6"/>')

    def text(self, x: float, y: float, s: str, anchor: str = "middle", size: int = 12, color: str = "#111111",
             weight: str = "normal") -> None:
        self.items.append(f'<text x="{x:.0f}" y="{y:.0f}" font-size="{size}" text-anchor="{anchor}" fill="{color}" '
                          f'font-weight="{weight}">{escape(s)}</text>')

    def outer_text(self, x: float, y: float, s: str, d: int, size: int = 11, color: str = "#111111") -> None:
        """Text that reads away from the board: left-side parts end at x, right-side ones start there."""
        self.text(x, y, s, "end" if d < 0 else "start", size, color)

    # --- symbols ---
    def dot(self, x: float, y: float, color: str = PART) -> None:
        self.circle(x, y, 3, fill=color, stroke=color)

    def ground(self, x: float, y: float) -> None:
        """A ground symbol hanging from (x, y)."""
        c = RAIL["GND"]
        self.rails.add("GND")
        self.line(x, y, x, y + 8, c)
        for i, half in enumerate((9, 6, 3)):
            self.line(x - half, y + 8 + 4 * i, x + half, y + 8 + 4 * i, c, 1.8)

    def flag(self, x: float, y: float, name: str) -> None:
        """A rail flag standing on (x, y): the same name is the same wire."""
        c = RAIL[name]
        self.rails.add(name)
        self.line(x, y, x, y - 8, c)
        self.poly([(x - 16, y - 8), (x + 16, y - 8), (x + 16, y - 24), (x - 16, y - 24), (x - 16, y - 8)], c, 1.4,
                  fill="#fff7f0")
        self.text(x, y - 12, name, size=10, color=c, weight="bold")

    def resistor_h(self, x1: float, x2: float, y: float, label: str, label_dy: int = -10) -> None:
        mid = (x1 + x2) / 2
        self.line(x1, y, mid - 15, y)
        self.line(mid + 15, y, x2, y)
        self.rect(mid - 15, y - 5, 30, 10)
        self.text(mid, y + label_dy, label, size=10)

    def resistor_v(self, x: float, y1: float, y2: float, label: str, d: int) -> None:
        mid = (y1 + y2) / 2
        self.line(x, y1, x, mid - 15)
        self.line(x, mid + 15, x, y2)
        self.rect(x - 5, mid - 15, 10, 30)
        self.outer_text(x + d * 10, mid + 4, label, d, 10)

    def capacitor_v(self, x: float, y1: float, y2: float, label: str, d: int) -> None:
        mid = (y1 + y2) / 2
        self.line(x, y1, x, mid - 3)
        self.line(x, mid + 3, x, y2)
        self.line(x - 9, mid - 3, x + 9, mid - 3, PART, 2.2)
        self.line(x - 9, mid + 3, x + 9, mid + 3, PART, 2.2)
        self.outer_text(x + d * 12, mid + 4, label, d, 10)

    def wire(self, points: list[tuple[float, float]], color: str = PART, dash: str = "") -> None:
        self.poly(points, color, dash=dash)

    def render(self, height: int) -> str:
        head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
                f'viewBox="0 0 {WIDTH} {height}" font-family="DejaVu Sans, Arial, Helvetica, sans-serif">')
        return "\n".join([head, f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>',
                          *self.items, "</svg>"]) + "\n"


@dataclass
class Pin:
    signal: str
    gpio: int
    label: str  # the board's label (D1) from the note, or "GPIO<n>" when the note names none
    note: str
    side: int = 1  # -1: left edge of the board, +1: right
    y: int = 0


@dataclass
class Slot:
    """One part, fed by one signal or more (the OLED takes SDA and SCL)."""

    kind: str
    spec: dict[str, str]
    pins: list[Pin] = field(default_factory=list)
    y: int = 0  # the first input's row


def part_spec(role: str, signal: str) -> dict[str, str]:
    spec = PARTS.get(f"{role}.{signal}", PARTS.get(signal))
    if spec is None:
        raise ValueError(f"hardware/wiring.py knows no part for signal '{signal}' ({role}): add it to PARTS")
    return spec


def board_label(note: str, gpio: int) -> str:
    """The board's name for the pin, written at the start of its note ("D1: ..."), else GPIO<n>."""
    m = re.match(r"\s*(D\d+)\s*:", note)
    return m.group(1) if m else f"GPIO{gpio}"


def is_xiao(doc: dict[str, Any]) -> bool:
    return "XIAO" in str(doc.get("board", ""))


def layout_pins(doc: dict[str, Any]) -> list[Pin]:
    """Each used signal with its side and row on the board's edge."""
    notes: dict[str, str] = doc.get("notes", {})
    pins = [Pin(s, int(g), board_label(notes.get(s, ""), int(g)), notes.get(s, "")) for s, g in doc["pins"].items()]
    if is_xiao(doc):
        for p in pins:
            if p.label in XIAO_LEFT:
                p.side, p.y = -1, TOP + 50 + PITCH * XIAO_LEFT.index(p.label)
            elif p.label in XIAO_RIGHT:
                p.side, p.y = 1, TOP + 50 + PITCH * XIAO_RIGHT.index(p.label)
            else:
                raise ValueError(f"{doc['role']}.json: '{p.signal}' is on {p.label}, which a XIAO header lacks")
    else:
        for i, p in enumerate(pins):
            p.side, p.y = 1, TOP + 50 + PITCH * i
    return sorted(pins, key=lambda p: (p.side, p.y))


def board_height(doc: dict[str, Any], pins: list[Pin]) -> int:
    if is_xiao(doc):
        return 50 + PITCH * (len(XIAO_LEFT) - 1) + 74  # room at the bottom for the BAT pads
    return 50 + PITCH * (max(len(pins), 2) - 1) + 50


def draw_board(s: Svg, doc: dict[str, Any], pins: list[Pin], height: int) -> None:
    x, w = BOARD_X, BOARD_W
    s.rect(x, TOP, w, height, fill="#eef3ea", stroke="#335533", rx=10)
    s.text(x + w / 2, TOP - 34, doc["board"], size=13, weight="bold")
    s.text(x + w / 2, TOP - 18, "top view" + (", USB-C up" if is_xiao(doc) else ""), size=10, color="#555555")
    if is_xiao(doc):
        s.rect(x + w / 2 - 22, TOP - 8, 44, 16, fill="#cccccc", rx=4)
        s.text(x + w / 2, TOP + 4, "USB-C", size=9)
        s.text(x + w / 2, TOP + 24, "U.FL antenna: keep metal", size=9, color="#555555")
        s.text(x + w / 2, TOP + 35, "and the cell away from it", size=9, color="#555555")
    else:
        s.rect(x - 8, TOP + 42, 16, 16, fill="#cccccc", rx=3)
        s.text(x + 14, TOP + 54, "USB (native)", "start", 10)
    used = {p.label: p for p in pins}
    if is_xiao(doc):
        for side, labels in ((-1, XIAO_LEFT), (1, XIAO_RIGHT)):
            edge = x if side < 0 else x + w
            for i, label in enumerate(labels):
                y = TOP + 50 + PITCH * i
                p = used.get(label)
                s.rect(edge - 5, y - 5, 10, 10, fill="#d4a017" if p else "#e6e0c8", stroke="#8a6d0b")
                inner = edge + 12 if side < 0 else edge - 12
                anchor = "start" if side < 0 else "end"
                if p is not None:
                    s.text(inner, y + 4, f"{label}  GPIO{p.gpio}", anchor, 11, weight="bold")
                elif label in RAIL or label == "5V":
                    s.text(inner, y + 4, label, anchor, 11, color="#333333")
                else:
                    s.text(inner, y + 4, label, anchor, 11, color=MUTED)
                stub = edge + side * 22
                if label == "GND":
                    s.line(edge, y, stub, y, RAIL["GND"])
                    s.ground(stub, y)
                elif label == "3V3":
                    s.line(edge, y, stub, y, RAIL["3V3"])
                    s.flag(stub, y, "3V3")
                elif label == "5V":
                    s.outer_text(edge + side * 10, y - 8, "USB 5 V in", side, 9, "#777777")
    else:
        for p in pins:
            s.rect(x + w - 5, p.y - 5, 10, 10, fill="#d4a017", stroke="#8a6d0b")
            s.text(x + w - 12, p.y + 4, f"GPIO{p.gpio}", "end", 11, weight="bold")
        s.text(x + w / 2, TOP + height - 16, "5 V and 3.3 V from USB", size=10, color="#555555")


def draw_battery(s: Svg, doc: dict[str, Any], height: int) -> int:
    """The LiPo on the XIAO's BAT+/BAT- pads (underside); returns the lowest y drawn."""
    x0, y0 = BOARD_X, TOP + height
    plus, minus, yb = x0 + 60, x0 + 140, y0 + 60
    s.rect(plus - 14, y0 - 16, 28, 12, fill="#d4a017", stroke="#8a6d0b")
    s.rect(minus - 14, y0 - 16, 28, 12, fill="#d4a017", stroke="#8a6d0b")
    s.text(plus, y0 - 20, "BAT+", size=9)
    s.text(minus, y0 - 20, "BAT-", size=9)
    s.text(x0 + 100, y0 - 36, "pads on the underside", size=9, color="#555555")
    s.wire([(plus, y0 - 4), (plus, yb), (x0 + 94, yb)], RAIL["BAT+"])
    s.wire([(minus, y0 - 4), (minus, yb), (x0 + 106, yb)], RAIL["GND"])
    s.line(x0 + 94, yb - 14, x0 + 94, yb + 14, PART, 2.4)
    s.line(x0 + 106, yb - 7, x0 + 106, yb + 7, PART, 3.2)
    s.text(x0 + 86, yb - 14, "+", size=11)
    s.line(plus, y0 + 24, plus - 30, y0 + 24, RAIL["BAT+"])
    s.flag(plus - 30, y0 + 24, "BAT+")
    s.line(minus, y0 + 24, minus + 30, y0 + 24, RAIL["GND"])
    s.ground(minus + 30, y0 + 24)
    cell = CELL.get(doc["role"], "LiPo cell, 3.7 V, with protection circuit")
    s.text(x0 + 100, yb + 30, f"BT1 {cell}", size=11, weight="bold")
    s.text(x0 + 100, yb + 45, "charged by the board from USB-C", size=10, color="#555555")
    return yb + 50


def draw_switch(s: Svg, x: int, y: int, d: int, spec: dict[str, str], pins: list[Pin]) -> None:
    s.line(x, y, x + d * 30, y)
    s.circle(x + d * 30, y, 3.5)
    s.circle(x + d * 70, y, 3.5)
    s.line(x + d * 32, y - 2, x + d * 68, y - 16, PART, 2)
    s.wire([(x + d * 74, y), (x + d * 100, y), (x + d * 100, y + 12)], RAIL["GND"])
    s.ground(x + d * 100, y + 12)
    s.text(x + d * 50, y - 22, spec["ref"], size=11, weight="bold")
    s.outer_text(x + d * 116, y - 2, spec["value"], d)
    s.outer_text(x + d * 116, y + 12, spec["note"], d, 10, "#555555")


def draw_ws2812(s: Svg, x: int, y: int, d: int, spec: dict[str, str], pins: list[Pin], doc: dict[str, Any]) -> None:
    s.resistor_h(x, x + d * 66, y, f"{spec['r']} {spec['r_value']}")
    s.line(x + d * 66, y, x + d * 84, y)
    bx = x + d * 84
    s.rect(bx, y - 30, d * 112, 82, fill="#fbfbfb")
    count = int(doc.get("led_count", 1))
    title = f"{spec['ref']} {spec['value']}" + (f" x {count}" if count > 1 else "")
    s.text(bx + d * 56, y + 14, title, size=11, weight="bold")
    s.text(bx + d * 56, y + 30, "5050 RGB, from BAT+", size=9, color="#555555")
    s.outer_text(bx + d * 6, y + 4, "DIN", d, 9)
    vdd_x, gnd_x = bx + d * 40, bx + d * 40
    s.text(vdd_x, y - 20, "VDD", size=9)
    s.text(gnd_x, y + 46, "GND", size=9)
    s.outer_text(bx + d * 106, y + 4, "DOUT", d * -1, 9)
    s.outer_text(bx + d * 118, y + 4, "ring: to next LED" if count > 1 else "n.c.", d, 9, "#777777")
    s.wire([(vdd_x, y - 30), (vdd_x, y - 50)], RAIL["BAT+"])
    s.flag(vdd_x, y - 50, "BAT+")
    s.wire([(gnd_x, y + 52), (gnd_x, y + 74)], RAIL["GND"])
    s.ground(gnd_x, y + 74)
    cx = bx + d * 150
    s.wire([(vdd_x, y - 40), (cx, y - 40), (cx, y - 4)], RAIL["BAT+"])
    s.capacitor_v(cx, y - 4, y + 40, f"{spec['c']} {spec['c_value']}", d)
    s.line(cx, y + 40, cx, y + 62, RAIL["GND"])
    s.ground(cx, y + 62)
    s.dot(vdd_x, y - 40, RAIL["BAT+"])


def draw_divider(s: Svg, x: int, y: int, d: int, spec: dict[str, str], pins: list[Pin], doc: dict[str, Any]) -> None:
    n = x + d * 40
    s.line(x, y, n, y)
    s.dot(n, y)
    s.resistor_v(n, y - 66, y, f"{spec['r1']} {spec['r_value']}", d)
    s.line(n, y - 66, n, y - 78, RAIL["BAT+"])
    s.flag(n, y - 78, "BAT+")
    s.resistor_v(n, y, y + 66, f"{spec['r2']} {spec['r_value']}", d)
    s.line(n, y + 66, n, y + 76, RAIL["GND"])
    s.ground(n, y + 76)
    c = x + d * 130
    s.line(n, y, c, y)
    s.dot(c, y)
    s.capacitor_v(c, y, y + 66, f"{spec['c']} {spec['c_value']}", d)
    s.line(c, y + 66, c, y + 76, RAIL["GND"])
    s.ground(c, y + 76)
    ratio = doc.get("battery_divider", 2)
    s.outer_text(x + d * 196, y - 4, f"the ADC reads BAT+ / {ratio}", d, 10, "#555555")
    s.outer_text(x + d * 196, y + 10, "(11 dB attenuation)", d, 10, "#555555")


def draw_motor(s: Svg, x: int, y: int, d: int, spec: dict[str, str], pins: list[Pin]) -> None:
    s.resistor_h(x, x + d * 60, y, f"{spec['rb']} {spec['rb_value']}")
    b = x + d * 72
    s.line(x + d * 60, y, x + d * 92, y)
    s.dot(b, y)
    s.resistor_v(b, y, y + 60, f"{spec['rpd']} {spec['rpd_value']}", -d)
    s.line(b, y + 60, b, y + 66, RAIL["GND"])
    s.ground(b, y + 66)
    q = x + d * 108  # the transistor's centre
    s.circle(q, y, 18)
    s.line(x + d * 98, y - 11, x + d * 98, y + 11, PART, 2.6)
    cx = x + d * 116
    s.line(x + d * 98, y - 5, cx, y - 16)
    s.line(x + d * 98, y + 5, cx, y + 16)
    s.poly([(cx, y + 16), (cx - d * 8, y + 15), (cx - d * 4, y + 9)], PART, 1.4, fill=PART)
    s.outer_text(x + d * 132, y + 4, f"{spec['q']} {spec['q_value']}", d, 11)
    s.wire([(cx, y + 16), (cx, y + 40)], RAIL["GND"])
    s.ground(cx, y + 40)
    s.line(cx, y - 16, cx, y - 44)
    s.dot(cx, y - 44)
    s.circle(cx, y - 64, 14)
    s.text(cx, y - 60, "M", size=12, weight="bold")
    s.line(cx, y - 78, cx, y - 100)
    s.dot(cx, y - 100, RAIL["BAT+"])
    s.line(cx, y - 100, cx, y - 110, RAIL["BAT+"])
    s.flag(cx, y - 110, "BAT+")
    s.outer_text(cx - d * 20, y - 60, f"{spec['m']} {spec['m_value']}", -d, 10)
    dx = x + d * 160  # the flyback diode, across the motor, cathode to BAT+
    s.wire([(cx, y - 44), (dx, y - 44), (dx, y - 56)])
    s.wire([(dx, y - 76), (dx, y - 100), (cx, y - 100)], RAIL["BAT+"])
    s.poly([(dx - 8, y - 56), (dx + 8, y - 56), (dx, y - 70), (dx - 8, y - 56)], PART, 1.4, fill=PART)
    s.line(dx - 8, y - 72, dx + 8, y - 72, PART, 2.4)
    s.line(dx, y - 72, dx, y - 76)
    s.outer_text(dx + d * 14, y - 60, f"{spec['d']} {spec['d_value']}", d, 10)
    s.outer_text(dx + d * 14, y - 46, "flyback, cathode to BAT+", d, 9, "#555555")


def draw_oled(s: Svg, x: int, y: int, d: int, spec: dict[str, str], pins: list[Pin], doc: dict[str, Any]) -> None:
    bx = x + d * 40
    bottom = y + INPUT_STEP * (len(pins) - 1) + 44
    s.rect(bx, y - 40, d * 210, bottom - (y - 40), fill="#f4f4fb")
    oled = doc.get("oled", {})
    size = f"{oled.get('width', 128)}x{oled.get('height', 64)}"
    addr = f"I2C 0x{int(oled.get('address', 0x3C)):02X}"
    mid = bx + d * 105
    s.text(mid, y - 22, f"{spec['ref']} {spec['value']}", size=11, weight="bold")
    s.text(mid, y - 8, f"0.96 in, {size}, {addr}", size=10, color="#555555")
    for i, p in enumerate(pins):
        yy = y + INPUT_STEP * i
        s.line(x, yy, bx, yy, SIGNAL, 1.8)
        s.outer_text(bx + d * 6, yy + 4, part_spec(doc["role"], p.signal)["pin"], d, 10)
    vcc_x, gnd_x = bx + d * 150, bx + d * 175
    s.text(vcc_x, y - 46, "VCC", size=9)
    s.wire([(vcc_x, y - 40), (vcc_x, y - 56)], RAIL["3V3"])
    s.flag(vcc_x, y - 56, "3V3")
    s.text(gnd_x, bottom + 12, "GND", size=9)
    s.wire([(gnd_x, bottom), (gnd_x, bottom + 18)], RAIL["GND"])
    s.ground(gnd_x, bottom + 18)
    s.text(mid, bottom - 10, "the module carries the I2C pull-ups", size=9, color="#555555")


def draw_onboard_led(s: Svg, x: int, y: int, d: int, spec: dict[str, str], pins: list[Pin]) -> None:
    s.rect(x, y - 22, d * 250, 44, fill="#fbfbfb", stroke=MUTED)
    s.text(x + d * 125, y - 4, f"{spec['ref']} {spec['value']}", size=11, weight="bold")
    s.text(x + d * 125, y + 12, "nothing to wire: a trace on the board", size=9, color="#555555")


def draw_host(s: Svg, doc: dict[str, Any]) -> None:
    """The base station's USB cable to the gateway host (its `usb` note)."""
    note = doc.get("notes", {}).get("usb", "")
    host = BOARD_X - 340  # the host's box, left of the board
    s.line(host + 180, TOP + 50, BOARD_X - 8, TOP + 50, "#555555", 3)
    s.text((host + 180 + BOARD_X) / 2, TOP + 42, "USB cable, 1 m", size=10, color="#555555")
    s.rect(host, TOP + 15, 180, 70, fill="#f2f2f2")
    s.text(host + 90, TOP + 37, "gateway host", size=11, weight="bold")
    s.text(host + 90, TOP + 53, "redbutton bridge", size=10)
    s.text(host + 90, TOP + 69, "USB CDC serial", size=10, color="#555555")
    for i, line in enumerate(textwrap.wrap(note, 40)):
        s.text(host + 90, TOP + 104 + 14 * i, line, size=9, color="#555555")


def render(doc: dict[str, Any]) -> str:
    """The whole diagram of one pin map, as SVG text."""
    role = doc["role"]
    pins = layout_pins(doc)
    slots: list[Slot] = []
    for p in pins:  # top to bottom on each side; the OLED's two signals share one slot
        spec = part_spec(role, p.signal)
        same = [sl for sl in slots if spec["kind"] == "oled" and sl.kind == "oled" and sl.pins[0].side == p.side]
        if same:
            same[0].pins.append(p)
        else:
            slots.append(Slot(spec["kind"], spec, [p]))
    s = Svg()
    s.text(WIDTH / 2, 28, f"Red Button {role}: wiring", size=18, weight="bold")
    s.text(WIDTH / 2, 48, f"generated by hardware/wiring.py from hardware/pins/{role}.json; "
                          f"parts: hardware/bom/{role}.csv. Do not edit by hand.", size=11, color="#555555")
    height = board_height(doc, pins)
    draw_board(s, doc, pins, height)
    bottom = TOP + height + 20
    if is_xiao(doc):
        bottom = draw_battery(s, doc, height)
    if "usb" in doc.get("notes", {}):
        draw_host(s, doc)
        bottom = max(bottom, TOP + 200)
    for side in (-1, 1):
        side_slots = [sl for sl in slots if sl.pins[0].side == side]
        wires = [p for sl in side_slots for p in sl.pins]
        edge = BOARD_X if side < 0 else BOARD_X + BOARD_W
        anchor = ANCHOR_LEFT if side < 0 else ANCHOR_RIGHT
        lanes = {p.signal: anchor - side * (12 + 12 * i) for i, p in enumerate(wires)}  # upper pins, outer lanes
        floor = 70
        for sl in side_slots:
            above, below = EXTENT[sl.kind]
            sl.y = max(max(p.y - INPUT_STEP * i for i, p in enumerate(sl.pins)), floor + above)
            floor = sl.y + INPUT_STEP * (len(sl.pins) - 1) + below
            for i, p in enumerate(sl.pins):
                row = sl.y + INPUT_STEP * i
                lane = lanes[p.signal]
                on_board = "5,4" if sl.kind == "onboard_led" else ""  # a trace of the board, not a wire
                s.wire([(edge, p.y), (lane, p.y), (lane, row), (anchor, row)], SIGNAL, on_board)
                s.text((edge + lane) / 2, p.y - 5, p.signal, size=10, color=SIGNAL, weight="bold")
            draw_part(s, sl, anchor, side, doc)
        bottom = max(bottom, floor)
    return s.render(legend(s, doc, pins, bottom + 30))


def draw_part(s: Svg, sl: Slot, x: int, d: int, doc: dict[str, Any]) -> None:
    y, spec, pins = sl.y, sl.spec, sl.pins
    if sl.kind == "switch":
        draw_switch(s, x, y, d, spec, pins)
    elif sl.kind == "ws2812":
        draw_ws2812(s, x, y, d, spec, pins, doc)
    elif sl.kind == "divider":
        draw_divider(s, x, y, d, spec, pins, doc)
    elif sl.kind == "motor":
        draw_motor(s, x, y, d, spec, pins)
    elif sl.kind == "oled":
        draw_oled(s, x, y, d, spec, pins, doc)
    elif sl.kind == "onboard_led":
        draw_onboard_led(s, x, y, d, spec, pins)
    else:
        raise ValueError(f"no drawing for part kind '{sl.kind}'")


def legend(s: Svg, doc: dict[str, Any], pins: list[Pin], y: int) -> int:
    """Rails, then every signal with its GPIO, board label and the pin map's note; returns the height."""
    s.line(20, y - 14, WIDTH - 20, y - 14, "#dddddd", 1)
    x = 30
    for name, color, what in (("signal", SIGNAL, "a signal of the pin map"),
                              ("BAT+", RAIL["BAT+"], "the cell's + (3.0-4.2 V)"),
                              ("3V3", RAIL["3V3"], "the board's 3.3 V regulator"),
                              ("GND", RAIL["GND"], "ground")):
        if name != "signal" and name not in s.rails:
            continue
        s.line(x, y, x + 30, y, color, 2.4)
        s.text(x + 38, y + 4, f"{name}: {what}", "start", 11)
        x += 235
    if s.rails:
        y += 22
        s.text(30, y, "A rail's name is one wire: every BAT+ flag joins the cell's +, every 3V3 flag the board's "
                      "3V3 pin, every ground symbol GND.", "start", 11, "#333333")
    y += 24
    s.text(30, y, f"Signals (hardware/pins/{doc['role']}.json)", "start", 12, weight="bold")
    for p in sorted(pins, key=lambda p: p.gpio):
        where = f"GPIO{p.gpio}" + ("" if p.label == f"GPIO{p.gpio}" else f" ({p.label})")
        note = re.sub(rf"^\s*{p.label}\s*:\s*", "", p.note)  # the label is already in `where`
        lines = textwrap.wrap(f"{p.signal}  {where}: {note}", 160)
        for i, line in enumerate(lines):
            y += 16
            s.text(40 if i == 0 else 60, y, line, "start", 11)
    for key, note in doc.get("notes", {}).items():
        if key not in doc["pins"]:
            y += 16
            s.text(40, y, f"{key}: {note}", "start", 11)
    return y + 20


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def generate(pins_dir: Path = PINS) -> dict[str, str]:
    """role -> SVG text, for every pin map."""
    out = {}
    for path in sorted(pins_dir.glob("*.json")):
        doc = load(path)
        out[str(doc["role"])] = render(doc)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when a committed SVG differs from a fresh one")
    ap.add_argument("--pins", type=Path, default=PINS, help="the pin maps (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=OUT, help="where the SVGs go (default: %(default)s)")
    args = ap.parse_args(argv)
    stale = []
    for role, svg in generate(args.pins).items():
        path = args.out / f"{role}.svg"
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != svg:
                stale.append(path)
        else:
            args.out.mkdir(parents=True, exist_ok=True)
            path.write_text(svg, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        for path in stale:
            print(f"{path} is out of date: run python hardware/wiring.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
