"""`ssd1306` for the simulator: instead of pixels it keeps the text drawn since the last fill(),
ordered top to bottom, which is what a person reads off the pager's OLED."""

from __future__ import annotations

from typing import Any


class SSD1306_I2C:
    def __init__(self, width: int, height: int, i2c: Any, addr: int = 0x3C) -> None:
        self.width = width
        self.height = height
        self._draft: list[tuple[int, int, str]] = []
        self.lines: list[str] = []

    def fill(self, _colour: int) -> None:
        self._draft = []

    def text(self, s: str, x: int, y: int, _colour: int = 1) -> None:
        self._draft.append((y, x, s[: max(0, (self.width - x) // 8)]))

    def show(self) -> None:
        self.lines = [s for _y, _x, s in sorted(self._draft)]
