"""`utime`: MicroPython's older name for `time`, for firmware (or libraries such as umqtt) that import it.

MicroPython ports ship `utime` as an alias of `time`, including ticks_ms/ticks_add/ticks_diff/sleep_ms;
CPython has no `utime` at all. Every name is looked up on the real `time` module at call time, after
shims.install() has added the ticks functions to it, so both names always agree on one clock."""

from __future__ import annotations

import time as _time
from typing import Any


def __getattr__(name: str) -> Any:
    return getattr(_time, name)
