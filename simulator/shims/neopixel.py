"""`neopixel` for the simulator: keeps the colour written last, so tests can see the button's light."""

from __future__ import annotations

from .machine import Pin


class NeoPixel:
    def __init__(self, pin: Pin, n: int) -> None:
        self.pin = pin
        self.buf = [(0, 0, 0)] * n
        self.shown = list(self.buf)

    def __setitem__(self, i: int, rgb: tuple[int, int, int]) -> None:
        self.buf[i] = rgb

    def __getitem__(self, i: int) -> tuple[int, int, int]:
        return self.buf[i]

    def fill(self, rgb: tuple[int, int, int]) -> None:
        self.buf = [rgb] * len(self.buf)

    def write(self) -> None:
        self.shown = list(self.buf)
