"""`micropython` for the simulator: const() is a compile-time hint on the device, identity here."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


def const(value: T) -> T:
    return value
