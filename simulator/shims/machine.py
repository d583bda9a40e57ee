"""`machine` for the simulator: Pin, ADC and I2C, with levels a simulated person can set.

Differences covered: there are no pins on the host, so a Pin holds its level in memory; an input
with PULL_UP reads 1 until sim_level() sets it; ADC.read_uv() returns sim_uv (a full battery
through the board's 1:2 divider unless a scenario changes it)."""

from __future__ import annotations

from typing import Any


class Pin:
    IN = 1
    OUT = 3
    PULL_UP = 1
    PULL_DOWN = 2

    def __init__(self, pin_id: Any, mode: int = -1, pull: int = -1, *, value: int | None = None) -> None:
        self.id = pin_id
        self.mode = mode
        self.level = value if value is not None else (1 if pull == Pin.PULL_UP else 0)

    def value(self, v: int | None = None) -> int | None:
        if v is None:
            return self.level
        self.level = 1 if v else 0
        return None

    def sim_level(self, level: int) -> None:
        """Drive an input as the outside world would (a finger on a button to GND gives 0)."""
        self.level = level


class ADC:
    ATTN_0DB = 0
    ATTN_11DB = 3

    def __init__(self, pin: Pin, **_kw: Any) -> None:
        self.pin = pin
        self.sim_uv = 2_050_000  # 4.1 V battery through the 1:2 divider

    def atten(self, _attn: int) -> None:
        pass

    def read_uv(self) -> int:
        return self.sim_uv


class I2C:
    def __init__(self, bus_id: int, **_kw: Any) -> None:
        self.id = bus_id
