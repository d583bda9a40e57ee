"""Host stand-ins for the MicroPython modules the firmware imports, installed into sys.modules.

Each shim is as small as the firmware's use of it and says which MicroPython difference it covers.
Hardware state (pin levels, LED colour, OLED text) lives on the shim objects, so a simulated
person presses a button by setting a pin and reads a pager by reading its display."""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path

from . import esp32, espnow, framebuf, machine, micropython, neopixel, network, ssd1306, tls, utime

FIRMWARE_LIB = Path(__file__).resolve().parents[2] / "firmware" / "lib"

_T0 = time.monotonic_ns()
_TICKS_PERIOD = 1 << 30  # ESP32 ticks_ms wraps at 2**30 ms; the firmware must use ticks_diff


def ticks_ms() -> int:
    return ((time.monotonic_ns() - _T0) // 1_000_000) % _TICKS_PERIOD


def ticks_add(t: int, delta: int) -> int:
    return (t + delta) % _TICKS_PERIOD


def ticks_diff(later: int, earlier: int) -> int:
    """MicroPython's signed, wrap-aware difference."""
    half = _TICKS_PERIOD // 2
    return ((later - earlier + half) % _TICKS_PERIOD) - half


def sleep_ms(ms: int) -> None:
    time.sleep(ms / 1000)


def install() -> None:
    """Make `import machine` (and friends) and firmware modules importable. Idempotent.

    CPython's `time` lacks ticks_ms/ticks_diff/ticks_add/sleep_ms; they are added to the real module
    (as micropython-mqtt's no-hardware tests do) rather than replacing it, which the rest of the
    process still needs."""
    for name, module in (("machine", machine), ("esp32", esp32), ("network", network), ("neopixel", neopixel),
                         ("ssd1306", ssd1306), ("framebuf", framebuf), ("micropython", micropython), ("tls", tls),
                         ("espnow", espnow), ("utime", utime)):
        sys.modules.setdefault(name, module)
    for name, fn in (("ticks_ms", ticks_ms), ("ticks_add", ticks_add), ("ticks_diff", ticks_diff),
                     ("sleep_ms", sleep_ms)):
        if not hasattr(time, name):
            setattr(time, name, fn)
    if not hasattr(gc, "mem_free"):  # the host has no MicroPython heap to report on
        gc.mem_free = lambda: 0  # type: ignore[attr-defined]
        gc.mem_alloc = lambda: 0  # type: ignore[attr-defined]
    if str(FIRMWARE_LIB) not in sys.path:
        sys.path.insert(0, str(FIRMWARE_LIB))
