"""`machine` for the simulator: Pin, ADC and I2C, with levels a simulated person can set; reset
cause, RTC memory, watchdog and deep sleep per simulated chip.

Differences covered: there are no pins on the host, so a Pin holds its level in memory; an input
with PULL_UP reads 1 until sim_level() sets it; ADC.read_uv() returns the chip's battery_uv
(a full battery through the board's 1:2 divider unless a scenario changes it). Many devices share this one module
in one process, so the chip-wide state (reset cause, RTC memory, watchdog) lives on a Chip bound to
the device's thread. deepsleep() cannot power the host down: it raises DeepSleep, and the virtual
device waits for its wake pin or timer and boots the firmware again, as the board would."""

from __future__ import annotations

import threading
import time
from typing import Any

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5
EXT0_WAKE = 2
EXT1_WAKE = 3
TIMER_WAKE = 4
GPIO_WAKE = 7


class DeepSleep(BaseException):  # not Exception: the firmware's `except Exception` must let it through
    """Raised by deepsleep(): the virtual device sleeps `ms` or until its wake pin is pulled."""

    def __init__(self, ms: int) -> None:
        super().__init__(ms)
        self.ms = ms


class Chip:
    """What survives on one ESP32 between boots (RTC memory) and what the ROM reports at boot."""

    def __init__(self) -> None:
        self.reset_cause = PWRON_RESET
        self.wake_reason = 0
        self.rtc_memory = b""
        self.wake_pins: list[Pin] = []
        self.levels: dict[Any, int] = {}  # pin id -> level
        self.battery_uv = 2_050_000  # at the ADC pin: a 4.1 V cell through the board's 1:2 divider
        self.wdt_timeout_ms: int | None = None
        self.wdt_fed = 0.0

    def wdt_starved(self) -> bool:
        """True when the firmware has not fed its watchdog within the timeout (the board would reset)."""
        return self.wdt_timeout_ms is not None and time.monotonic() - self.wdt_fed > self.wdt_timeout_ms / 1000


_bound = threading.local()


def bind(chip: Chip) -> None:
    """Make `chip` the one this thread's firmware sees (each virtual device runs on its own thread)."""
    _bound.chip = chip


def chip() -> Chip:
    c: Chip | None = getattr(_bound, "chip", None)
    if c is None:
        c = Chip()
        bind(c)
    return c


def reset_cause() -> int:
    return chip().reset_cause


def wake_reason() -> int:
    return chip().wake_reason


def deepsleep(ms: int = 0) -> None:
    raise DeepSleep(ms)


class RTC:
    def memory(self, data: bytes | None = None) -> bytes | None:
        if data is None:
            return chip().rtc_memory
        chip().rtc_memory = bytes(data[:2048])  # the ESP32's RTC user memory is 2 KB
        return None


class WDT:
    def __init__(self, id: int = 0, timeout: int = 5000) -> None:
        self.chip = chip()
        self.chip.wdt_timeout_ms = timeout
        self.feed()

    def feed(self) -> None:
        self.chip.wdt_fed = time.monotonic()


class Pin:
    IN = 1
    OUT = 3
    PULL_UP = 1
    PULL_DOWN = 2

    def __init__(self, pin_id: Any, mode: int = -1, pull: int = -1, *, value: int | None = None) -> None:
        self.id = pin_id
        self.mode = mode
        # Levels live on the chip, so a pin made again after a deep-sleep wake reads what a finger
        # is still holding.
        self.chip = chip()
        if value is not None:
            self.chip.levels[pin_id] = value
        else:
            self.chip.levels.setdefault(pin_id, 1 if pull == Pin.PULL_UP else 0)

    @property
    def level(self) -> int:
        return self.chip.levels[self.id]

    def value(self, v: int | None = None) -> int | None:
        if v is None:
            return self.level
        self.chip.levels[self.id] = 1 if v else 0
        return None

    def sim_level(self, level: int) -> None:
        """Drive an input as the outside world would (a finger on a button to GND gives 0)."""
        self.chip.levels[self.id] = level


class ADC:
    ATTN_0DB = 0
    ATTN_11DB = 3

    def __init__(self, pin: Pin, **_kw: Any) -> None:
        self.pin = pin

    def atten(self, _attn: int) -> None:
        pass

    def read_uv(self) -> int:
        return self.pin.chip.battery_uv


class I2C:
    def __init__(self, bus_id: int, **_kw: Any) -> None:
        self.id = bus_id
